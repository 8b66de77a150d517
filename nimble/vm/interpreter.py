"""The register VM: each instruction is precompiled once into a closure ``step(regs, pc) -> next pc``
with its fields bound, so the hot loop is ``pc = code[pc](regs, pc)``: no decoding, no attribute
lookups, no allocation for the cheap instructions. Calls and returns leave a request in a mailbox
and return -1; the loop then switches frames on an explicit stack (no Python recursion), so
recursion depth is bounded by ``MAX_CALL_DEPTH``, not by Python's recursion limit.

A VM is not thread-safe: use one per thread (they may share an ``Executable``).
"""
from __future__ import annotations

import math
import threading

import numpy as np

from ..debug import debug_level, debug_logger
from ..dtypes import numpy_dtype
from ..errors import FormatError, NimbleError, ShapeError
from . import bytecode as bc
from .executable import Executable, LinkedHostFunc
from .machine import VirtualMachine
from .storage import StoragePool
from .values import ADT, Closure, check_inputs, to_python

log = debug_logger("nimble.vm")
MAX_CALL_DEPTH = 1_000_000
REGISTER_FIELDS = frozenset({"src", "dst", "result", "args", "closure", "size", "storage", "shape_reg", "fields",
                             "captured", "obj", "test", "target", "tensor", "newshape", "reg"})
_SMALL_INTS = [np.array(i, dtype=np.int64) for i in range(256)]
for _a in _SMALL_INTS:
    _a.flags.writeable = False


def int_scalar(value: int) -> np.ndarray:
    """A read-only 0-d int64 array (shared for 0..255)."""
    if 0 <= value < 256:
        return _SMALL_INTS[value]
    a = np.array(value, dtype=np.int64)
    a.flags.writeable = False
    return a


class PythonVM(VirtualMachine):
    """The reference VM: the bytecode interpreted in Python (``VirtualMachine(exe, backend="python")``)."""

    backend = "python"

    def __init__(self, exe: Executable, backend: str | None = None):
        self.exe = exe
        self.pool = StoragePool()
        self._busy = threading.Lock()
        self.kernel_calls = [0] * len(exe.packed)
        self._library = exe.library()
        self._box = [0, None, 0, 0]  # call/return mailbox: callee (-1: return), values, dst, return pc
        self._register_counts = [f.register_count for f in exe.functions]
        self._param_counts = [len(f.params) for f in exe.functions]
        self.code = [[self._step(ins, pc, f, f.dead_after[pc] if f.dead_after else ())
                      for pc, ins in enumerate(f.instructions)]
                     for f in (self._validate(f) for f in exe.functions)]
        if debug_level() >= 2:
            log.debug("bytecode:\n%s", exe.disassemble())

    # ------------------------------------------------------------ public API

    def invoke(self, name: str, *inputs):
        """Call entry function ``name``; outputs come back as numpy arrays / tuples / ``ADT``."""
        return self._call(name, inputs, self.code)

    def shape_histogram(self) -> dict:
        """Per dispatch table: {value of its dispatched dim: calls} over this process's runs."""
        from .linked_dispatch import LinkedDispatch

        return {fn.name: dict(sorted(fn.histogram.items())) for fn in self._library if isinstance(fn, LinkedDispatch)}

    def profile(self, *inputs, name: str = "main"):
        """Run once, timing every instruction and kernel: a ``ProfileReport``."""
        from .profile import profile_run

        return profile_run(self, name, inputs)

    def _call(self, name: str, inputs: tuple, code: list):
        fi = self.exe.function_index(name)
        func = self.exe.functions[fi]
        types = self.exe.metadata.get("inputs", {}).get(name)
        args = check_inputs(name, func.params, inputs, types)
        if not self._busy.acquire(blocking=False):
            raise NimbleError("this VirtualMachine is running on another thread; use one VirtualMachine per "
                              "thread (they may share the Executable)")
        try:
            result = self._execute(fi, args, code)
        finally:
            self._busy.release()
        return to_python(result, self.exe.metadata.get("outputs", {}).get(name))

    # ------------------------------------------------------------ the loop

    def _execute(self, fi: int, args: list, code_table: list):
        box, counts, nparams = self._box, self._register_counts, self._param_counts
        stack = []
        code = code_table[fi]
        regs = args + [None] * (counts[fi] - len(args))
        pc = 0
        while True:
            try:
                while pc >= 0:
                    pc = code[pc](regs, pc)
            except Exception as exc:
                self._annotate(exc, fi, pc, stack)
                raise
            callee = box[0]
            values, box[1] = box[1], None
            if callee >= 0:
                if len(values) != nparams[callee]:
                    self._annotate_arity(callee, len(values), fi, box[3] - 1, stack)
                if len(stack) >= MAX_CALL_DEPTH:
                    raise NimbleError(f"call depth exceeds {MAX_CALL_DEPTH} frames (runaway recursion?) "
                                      f"in @{self.exe.functions[callee].name}")
                stack.append((code, regs, box[3], box[2], fi))
                regs = values + [None] * (counts[callee] - len(values))
                code, fi, pc = code_table[callee], callee, 0
            else:
                if not stack:
                    return values
                code, regs, pc, dst, fi = stack.pop()
                regs[dst] = values

    def _annotate(self, exc: Exception, fi: int, pc: int, stack: list) -> None:
        funcs = self.exe.functions
        notes = [f"  in @{funcs[fi].name}[{pc}]: {self._text(fi, pc)}"]
        for _, _, ret_pc, _, caller in reversed(stack[-20:]):
            notes.append(f"  called from @{funcs[caller].name}[{ret_pc - 1}]: {self._text(caller, ret_pc - 1)}")
        if len(stack) > 20:
            notes.append(f"  ... {len(stack) - 20} more frames")
        exc.add_note("\n".join(["VM call stack (innermost first):"] + notes))

    def _annotate_arity(self, callee, got, fi, pc, stack):
        exc = NimbleError(f"@{self.exe.functions[callee].name} takes {self._param_counts[callee]} arguments, got {got}")
        self._annotate(exc, fi, pc, stack)
        raise exc

    def _text(self, fi: int, pc: int) -> str:
        ins = self.exe.functions[fi].instructions
        if not 0 <= pc < len(ins):
            return "<outside the function>"
        return bc.format_instruction(ins[pc], pc, [f.name for f in self.exe.functions],
                                     [p.name for p in self.exe.packed])

    # ------------------------------------------------------------ precompilation

    def _validate(self, func: bc.VMFunction) -> bc.VMFunction:
        return validate_function(self.exe, func)

    @staticmethod
    def _text_of(func, pc):
        ins = func.instructions
        return bc.format_instruction(ins[pc], pc) if 0 <= pc < len(ins) and isinstance(ins[pc], bc.Instruction) else "-"

    def _step(self, ins: bc.Instruction, pc: int, func: bc.VMFunction, dead: tuple = ()):
        """The closure executing ``ins`` at ``pc``, then dropping the registers in ``dead`` (the
        function's liveness metadata): ``step(regs, pc) -> next pc`` (-1: call/return)."""
        if isinstance(ins, bc.InvokePacked):
            return self._invoke_packed_step(ins.packed_index, ins.args, ins.output_count, pc + 1, tuple(dead))
        step = self._plain_step(ins, pc, func)
        return _releasing(step, tuple(dead)) if dead else step

    def _plain_step(self, ins: bc.Instruction, pc: int, func: bc.VMFunction):
        box, nxt = self._box, pc + 1
        match ins:
            case bc.Move(src, dst):
                def step(regs, pc):
                    regs[dst] = regs[src]
                    return nxt
            case bc.Ret(result):
                def step(regs, pc):
                    box[0] = -1
                    box[1] = regs[result]
                    return -1
            case bc.Invoke(callee, args, dst):
                def step(regs, pc):
                    box[0] = callee
                    box[1] = [regs[a] for a in args]
                    box[2] = dst
                    box[3] = nxt
                    return -1
            case bc.InvokeClosure(clo, args, dst):
                def step(regs, pc):
                    closure = regs[clo]
                    if closure.__class__ is not Closure:
                        raise NimbleError(f"invoke_closure: register ${clo} holds {type(closure).__name__}, not a closure")
                    box[0] = closure.func_index
                    box[1] = [*closure.captured, *[regs[a] for a in args]]
                    box[2] = dst
                    box[3] = nxt
                    return -1
            case bc.AllocStorage(size, align, _, dst):
                alloc = self.pool.alloc

                def step(regs, pc):
                    regs[dst] = alloc(regs[size], align)
                    return nxt
            case bc.AllocTensor(storage, offset, shape, dtype, dst):
                shape, dtype = tuple(shape), numpy_dtype(dtype)

                def step(regs, pc):
                    regs[dst] = regs[storage].tensor(offset, shape, dtype)
                    return nxt
            case bc.AllocTensorReg(storage, offset, shape_reg, dtype, dst):
                dtype = numpy_dtype(dtype)

                def step(regs, pc):
                    regs[dst] = regs[storage].tensor(offset, tuple(regs[shape_reg].tolist()), dtype)
                    return nxt
            case bc.AllocADT(tag, fields, dst):
                def step(regs, pc):
                    regs[dst] = ADT(tag, tuple([regs[f] for f in fields]))
                    return nxt
            case bc.AllocClosure(callee, captured, dst):
                def step(regs, pc):
                    regs[dst] = Closure(callee, tuple([regs[c] for c in captured]))
                    return nxt
            case bc.GetField(obj, index, dst):
                def step(regs, pc):
                    try:
                        regs[dst] = regs[obj].fields[index]
                    except (AttributeError, IndexError):
                        raise NimbleError(f"get_field: register ${obj} holds {regs[obj]!r}, which has no "
                                          f"field {index}") from None
                    return nxt
            case bc.GetTag(obj, dst):
                def step(regs, pc):
                    value = regs[obj]
                    if value.__class__ is not ADT:
                        raise NimbleError(f"get_tag: register ${obj} holds {type(value).__name__}, not an ADT")
                    regs[dst] = int_scalar(value.tag)
                    return nxt
            case bc.If(test, target, t, f):
                step = _if_step(test, target, pc + t, pc + f)
            case bc.Goto(offset):
                to = pc + offset

                def step(regs, pc):
                    return to
            case bc.LoadConst(index, dst):
                const = self.exe.constants[index]

                def step(regs, pc):
                    regs[dst] = const
                    return nxt
            case bc.LoadConsti(value, dst):
                const = int_scalar(value)

                def step(regs, pc):
                    regs[dst] = const
                    return nxt
            case bc.DeviceCopy(src, _, _, dst):
                def step(regs, pc):
                    regs[dst] = np.array(regs[src], copy=True)
                    return nxt
            case bc.ShapeOf(tensor, dst):
                def step(regs, pc):
                    regs[dst] = np.array(regs[tensor].shape, dtype=np.int64)
                    return nxt
            case bc.ReshapeTensor(tensor, newshape, dst):
                def step(regs, pc):
                    regs[dst] = reshape_view(regs[tensor], regs[newshape])
                    return nxt
            case bc.KillRegister(reg):
                def step(regs, pc):
                    regs[reg] = None
                    return nxt
            case bc.Fatal(message):
                where = f"@{func.name}[{pc}]"

                def step(regs, pc):
                    raise NimbleError(f"fatal at {where}: {message}")
            case _:
                raise FormatError(f"unknown instruction {ins!r}")
        return step

    def _invoke_packed_step(self, index: int, args: tuple, n_out: int, nxt: int, dead: tuple = ()):
        fn, calls = self._library[index], self.kernel_calls
        if isinstance(fn, LinkedHostFunc):
            def step(regs, pc):
                fn([regs[a] for a in args], n_out)
                calls[index] += 1
                return nxt
            return _releasing(step, dead) if dead else step
        fn = fn.call  # the kernel's specialised entry
        if not dead:
            def step(regs, pc):
                fn([regs[a] for a in args])
                calls[index] += 1
                return nxt
        elif len(dead) == 1:
            (r,) = dead

            def step(regs, pc):
                fn([regs[a] for a in args])
                calls[index] += 1
                regs[r] = None
                return nxt
        else:
            def step(regs, pc):
                fn([regs[a] for a in args])
                calls[index] += 1
                for r in dead:
                    regs[r] = None
                return nxt
        return step


def _releasing(step, dead: tuple):
    """``step`` followed by dropping the registers in ``dead``."""
    if len(dead) == 1:
        (r,) = dead

        def released(regs, pc):
            nxt = step(regs, pc)
            regs[r] = None
            return nxt
        return released

    def released_all(regs, pc):
        nxt = step(regs, pc)
        for r in dead:
            regs[r] = None
        return nxt
    return released_all


def _if_step(test: int, target: int, on_true: int, on_false: int):
    ndarray = np.ndarray

    def step(regs, pc):
        a, b = regs[test], regs[target]
        if a.__class__ is ndarray:
            a = a.item()
        if b.__class__ is ndarray:
            b = b.item()
        return on_true if a == b else on_false
    return step


def reshape_view(tensor, newshape) -> np.ndarray:
    """A view of ``tensor`` with the shape in the 1-D int64 array ``newshape``; never a copy."""
    shape = tuple(newshape.tolist())
    if math.prod(shape) != tensor.size or any(d < 0 for d in shape):
        raise ShapeError(f"reshape_tensor: cannot view a tensor of shape {tensor.shape} ({tensor.size} elements) "
                         f"as shape {shape}")
    return tensor.reshape(shape, copy=False)


def validate_function(exe, func: bc.VMFunction) -> bc.VMFunction:
    """``func`` after checking its registers, jumps, indices and arities (``FormatError`` naming the
    instruction otherwise): both VMs run only validated bytecode."""
    n = len(func.instructions)
    param_counts = [len(f.params) for f in exe.functions]

    def bad(pc, why):
        raise FormatError(f"malformed bytecode in @{func.name}[{pc}] ({_text_of(func, pc)}): {why}")

    if n == 0 or not isinstance(func.instructions[-1], (bc.Ret, bc.Goto, bc.If, bc.Fatal)):
        bad(n - 1, "the last instruction must be ret, goto, if or fatal")
    if len(func.params) > func.register_count:
        bad(0, f"{len(func.params)} parameters but {func.register_count} registers")
    for pc, ins in enumerate(func.instructions):
        if not isinstance(ins, bc.Instruction):
            bad(pc, f"not an instruction: {ins!r}")
        for name in REGISTER_FIELDS & set(type(ins).__dataclass_fields__):
            value = getattr(ins, name)
            for r in value if isinstance(value, tuple) else (value,):
                if not 0 <= r < func.register_count:
                    bad(pc, f"register ${r} outside the {func.register_count} registers")
        offsets = {bc.Goto: lambda i: (i.offset,), bc.If: lambda i: (i.true_offset, i.false_offset)}
        for off in offsets.get(type(ins), lambda i: ())(ins):
            if not 0 <= pc + off < n:
                bad(pc, f"jump to {pc + off} outside the function's {n} instructions")
        index_checks = [
            (bc.Invoke, "func_index", len(exe.functions)), (bc.AllocClosure, "func_index", len(exe.functions)),
            (bc.InvokePacked, "packed_index", len(exe.packed)), (bc.LoadConst, "const_index", len(exe.constants)),
        ]
        for cls, field_name, limit in index_checks:
            if isinstance(ins, cls) and not 0 <= getattr(ins, field_name) < limit:
                bad(pc, f"{field_name} {getattr(ins, field_name)} is out of range: the executable has {limit}")
        if isinstance(ins, bc.Invoke) and len(ins.args) != param_counts[ins.func_index]:
            bad(pc, f"passes {len(ins.args)} arguments to a function of {param_counts[ins.func_index]}")
        if isinstance(ins, bc.InvokePacked) and not 0 <= ins.output_count <= len(ins.args):
            bad(pc, f"output_count {ins.output_count} with {len(ins.args)} arguments")
        devices = {bc.AllocStorage: ("device",), bc.DeviceCopy: ("src_device", "dst_device")}
        for field_name in devices.get(type(ins), ()):
            if getattr(ins, field_name) != 0:
                bad(pc, f"{field_name} {getattr(ins, field_name)}: this VM runs on the CPU (device 0) only")
    if func.dead_after and len(func.dead_after) != n:
        bad(0, f"dead_after has {len(func.dead_after)} entries for {n} instructions")
    for pc, dead in enumerate(func.dead_after):
        if any(not 0 <= r < func.register_count for r in dead):
            bad(pc, f"dead_after names a register outside the {func.register_count} registers: {list(dead)}")
    return func



def _text_of(func, pc):
    ins = func.instructions
    return bc.format_instruction(ins[pc], pc) if 0 <= pc < len(ins) and isinstance(ins[pc], bc.Instruction) else "-"
