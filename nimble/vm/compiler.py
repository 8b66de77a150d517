"""The VM compiler: a type-checked IR module -> bytecode, constants and a kernel library.

Every global function becomes a ``VMFunction``; a closure literal is lifted to one whose first
parameters are its captured variables. Operator calls are compiled by fused group
(``nimble.passes.fuse``): each group is one ``InvokePacked`` of a generated kernel, its outputs
allocated explicitly first — ``AllocStorage`` + ``AllocTensor`` for a static shape, or a host
shape function (``InvokePacked`` of a ``HostFuncEntry``) then ``AllocStorage`` +
``AllocTensorReg`` for a dynamic one. A register is killed after its last use in straight-line
code, which returns its storage to the pool for the next allocation of that size.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from ..dtypes import numpy_dtype
from ..errors import NimbleError
from ..ir.expr import (
    Call, Constant, Constructor, Function, GlobalVar, If as IRIf, Let, Match, Op, PatternConstructor, PatternTuple,
    PatternVar, PatternWildcard, Tuple, TupleGetItem, Var,
)
from ..ir.types import ADTType, TensorType, TupleType
from ..ir.visitor import deep_recursion, free_vars
from . import bytecode as bc
from .kernels import TupleField, flat_inputs_of
from .liveness import insert_kills


log = logging.getLogger("nimble.vm")


class CompileError(NimbleError, ValueError):
    """The module cannot be compiled for the VM."""


def _itemsize(dtype: str) -> int:
    return numpy_dtype(dtype).itemsize


def input_spec(t, type_defs: dict | None = None) -> dict:
    """The JSON form of a parameter's type, for the VM's argument checks. A list-shaped ADT (the prelude's
    ``List``: one constructor of (element, the list), one of none) says its tags and element type, so a Python
    list is taken for it."""
    if isinstance(t, TensorType):
        return {"shape": [d if isinstance(d, int) else None for d in t.shape], "dtype": t.dtype}
    if isinstance(t, TupleType):
        return {"kind": "tuple", "fields": [input_spec(f, type_defs) for f in t.fields]}
    if isinstance(t, ADTType):
        spec = {"kind": "adt", "name": getattr(t, "name", str(t))}
        data = (type_defs or {}).get(t.name)
        if data is not None and len(t.args) == 1 and len(data.constructors) == 2:
            by_arity = sorted(data.constructors, key=lambda c: len(c.inputs))
            nil, cons = by_arity
            if not nil.inputs and len(cons.inputs) == 2 and cons.inputs[1] == data.type:
                spec["list"] = {"cons": cons.tag, "nil": nil.tag, "elem": input_spec(t.args[0], type_defs)}
        return spec
    return {"kind": "any"}


class ModuleCompiler:
    """The ``bytecode`` pass: every function of a lowered module to a ``VMFunction``; holds the constants and adds
    the host shape functions to the packed-function table of the kernels (``nimble.vm.lower``)."""

    def __init__(self, lowered):
        self.lowered = lowered
        self.mod = lowered.fused.mod
        self.types = lowered.fused.types
        self.db = lowered.db
        self.functions: list = []
        self.func_index: dict = {name: i for i, name in enumerate(self.mod.functions)}
        self.constants: list = []
        self._const_ids: dict = {}
        self.packed: list = list(lowered.packed)
        self._host_cache: dict = {}
        self.kernels: list = lowered.kernels

    # ------------------------------------------------------------------ library entries
    def constant(self, value) -> int:
        key = id(value)
        if key not in self._const_ids:
            arr = np.array(value.value if isinstance(value, Constant) else value, order="C")
            self._const_ids[key] = len(self.constants)
            self.constants.append(arr)
            self._keep = getattr(self, "_keep", []) + [value]  # ids stay unique while compiling
        return self._const_ids[key]

    def kernel(self, group):
        """(packed index, GroupKernel) of a group; groups of the same shape share one kernel."""
        return self.lowered.kernel(group)

    def host_func(self, kind: str, **attrs) -> int:
        import json

        from .executable import HostFuncEntry

        key = (kind, json.dumps(attrs, sort_keys=True, default=str))
        if key not in self._host_cache:
            self.packed.append(HostFuncEntry(f"{kind}{len(self.packed)}", kind, attrs.pop("op", ""), attrs))
            self._host_cache[key] = len(self.packed) - 1
        return self._host_cache[key]

    # --------------------------------------------------------------------------- driver
    def compile(self) -> BytecodeModule:
        with deep_recursion():
            self.functions = [None] * len(self.func_index)
            for name, func in list(self.mod.functions.items()):
                self.functions[self.func_index[name]] = FunctionCompiler(self, func, name).compile()
        return BytecodeModule(tuple(self.functions), tuple(self.constants), tuple(self.packed),
                              dict(self.func_index), self.types, self.db, dict(self.mod.type_defs))

    def lift(self, func: Function, captured: list, hint: str) -> int:
        index = len(self.functions)
        self.functions.append(None)
        self.functions[index] = FunctionCompiler(self, func, f"{hint}.closure{index}", captured).compile()
        return index


@dataclass(frozen=True)
class BytecodeModule:
    """What the ``bytecode`` pass gives: VM functions, constants, the packed-function table, and the types."""

    functions: tuple
    constants: tuple
    packed: tuple
    func_index: dict
    types: object
    db: object = None
    type_defs: dict | None = None  # the module's ADTs (input specs of list-shaped ones)

    def summary(self) -> str:
        n = sum(len(f.instructions) for f in self.functions)
        return f"{len(self.functions)} VM functions, {n} instructions, {len(self.constants)} constants"

    def dump(self) -> str:
        names = [f.name for f in self.functions]
        packed = [getattr(p, "name", str(p)) for p in self.packed]
        return "\n".join(bc.disassemble(f, names, packed) for f in self.functions)


def to_executable(code: BytecodeModule):
    """The ``executable`` pass: bytecode + constants + packed functions + input/output specs as an Executable."""
    from .executable import Executable, host_metadata

    _report_records(code)
    names = list(code.func_index)  # the module's global functions, in order
    inputs = {n: [input_spec(t, code.type_defs) for t in code.types.function(n).arg_types] for n in names}
    outputs = {n: input_spec(code.types.function(n).ret_type, code.type_defs) for n in names}
    return Executable(code.functions, code.constants, code.packed, dict(code.func_index),
                      host_metadata(inputs=inputs, outputs=outputs))


def _report_records(code: BytecodeModule) -> None:
    from ..dispatch.table import DispatchEntry

    tables = [p for p in code.packed if isinstance(p, DispatchEntry)]
    tuned = sum(1 for t in tables if any(r.source != "fallback" for r in t.ranges))
    if code.db is not None and tables and tuned < len(tables):
        log.warning("compile: %d of %d tunable kernels have tuning records in %s; the others use the templates' "
                    "fallback configs", tuned, len(tables), code.db.url if hasattr(code.db, "url") else code.db)


class FunctionCompiler:
    """Compiles one function body to a register-machine ``VMFunction``."""

    def __init__(self, mc: ModuleCompiler, func: Function, name: str, captured: list = ()):
        self.mc = mc
        self.func = func
        self.name = name
        self.instrs: list = []
        self.nreg = 0
        self.env: dict = {}
        self.params = list(captured) + list(func.params)
        for p in self.params:
            self.env[p] = self.new_reg()
        self.groups, self.absorbed = mc.lowered.fused.groups_of(func)
        self.lets: dict = {}

    def new_reg(self) -> int:
        self.nreg += 1
        return self.nreg - 1

    def emit(self, instr) -> int:
        self.instrs.append(instr)
        return len(self.instrs) - 1

    def compile(self):
        result = self.expr(self.func.body)
        self.emit(bc.Ret(result))
        instrs = insert_kills(self.instrs, len(self.params))
        return bc.VMFunction(self.name, tuple(p.name for p in self.params), tuple(instrs), self.nreg)

    # ------------------------------------------------------------------------ expressions
    def expr(self, e) -> int:
        if isinstance(e, Var):
            if e not in self.env:
                raise CompileError(f"{self.name}: variable %{e.name} is used outside its scope")
            return self.env[e]
        if isinstance(e, Constant):
            dst = self.new_reg()
            self.emit(bc.LoadConst(self.mc.constant(e), dst))
            return dst
        if isinstance(e, Let):
            return self._let(e)
        if isinstance(e, Tuple):
            regs = tuple(self.expr(f) for f in e.fields)
            dst = self.new_reg()
            self.emit(bc.AllocADT(0, regs, dst))
            return dst
        if isinstance(e, TupleGetItem):
            obj = self.expr(e.tuple_value)
            dst = self.new_reg()
            self.emit(bc.GetField(obj, e.index, dst))
            return dst
        if isinstance(e, IRIf):
            return self._if(e)
        if isinstance(e, Match):
            return self._match(e)
        if isinstance(e, Call):
            return self._call(e)
        if isinstance(e, GlobalVar):
            dst = self.new_reg()
            self.emit(bc.AllocClosure(self.mc.func_index[e.name], (), dst))
            return dst
        if isinstance(e, Constructor):
            if e.inputs:
                raise CompileError(f"{self.name}: constructor {e.name} used as a value needs its fields")
            dst = self.new_reg()
            self.emit(bc.AllocADT(e.tag, (), dst))
            return dst
        if isinstance(e, Function):
            captured = sorted(free_vars(e), key=lambda v: v.id)
            index = self.mc.lift(e, captured, self.name)
            dst = self.new_reg()
            self.emit(bc.AllocClosure(index, tuple(self.expr(v) for v in captured), dst))
            return dst
        raise CompileError(f"{self.name}: cannot compile {type(e).__name__}")

    def _let(self, e: Let) -> int:
        while isinstance(e, Let):
            if id(e.value) in self.absorbed:
                self.lets[e.var] = e.value
            else:
                self.env[e.var] = self.expr(e.value)
            e = e.body
        return self.expr(e)

    def _if(self, e: IRIf) -> int:
        cond = self.expr(e.cond)
        one = self.new_reg()
        self.emit(bc.LoadConsti(1, one))
        branch = self.emit(None)
        dst = self.new_reg()
        saved = dict(self.env)
        self.emit(bc.Move(self.expr(e.then_branch), dst))
        goto = self.emit(None)
        self.env = dict(saved)
        else_start = len(self.instrs)
        self.emit(bc.Move(self.expr(e.else_branch), dst))
        self.env = saved
        end = len(self.instrs)
        self.instrs[branch] = bc.If(cond, one, 1, else_start - branch)
        self.instrs[goto] = bc.Goto(end - goto)
        return dst

    def _match(self, e: Match) -> int:
        data = self.expr(e.data)
        dst = self.new_reg()
        ends = []
        for clause in e.clauses:
            saved = dict(self.env)
            fails: list = []
            self._pattern(clause.pattern, data, fails)
            self.emit(bc.Move(self.expr(clause.body), dst))
            ends.append(self.emit(None))
            self.env = saved
            here = len(self.instrs)
            for f in fails:
                test, target = self.instrs[f]
                self.instrs[f] = bc.If(test, target, 1, here - f)
        self.emit(bc.Fatal(f"{self.name}: no match clause matched"))
        end = len(self.instrs)
        for g in ends:
            self.instrs[g] = bc.Goto(end - g)
        return dst

    def _pattern(self, p, reg: int, fails: list) -> None:
        if isinstance(p, PatternWildcard):
            return
        if isinstance(p, PatternVar):
            self.env[p.var] = reg
            return
        if isinstance(p, PatternConstructor):
            tag = self.new_reg()
            self.emit(bc.GetTag(reg, tag))
            want = self.new_reg()
            self.emit(bc.LoadConsti(p.constructor.tag, want))
            fails.append(self.emit((tag, want)))
        if isinstance(p, (PatternConstructor, PatternTuple)):
            for i, sub in enumerate(p.patterns):
                if isinstance(sub, PatternWildcard):
                    continue
                field = self.new_reg()
                self.emit(bc.GetField(reg, i, field))
                self._pattern(sub, field, fails)

    # -------------------------------------------------------------------------- calls
    def _call(self, e: Call) -> int:
        if isinstance(e.op, GlobalVar):
            args = tuple(self.expr(a) for a in e.args)
            dst = self.new_reg()
            self.emit(bc.Invoke(self.mc.func_index[e.op.name], args, dst))
            return dst
        if isinstance(e.op, Constructor):
            args = tuple(self.expr(a) for a in e.args)
            dst = self.new_reg()
            self.emit(bc.AllocADT(e.op.tag, args, dst))
            return dst
        if isinstance(e.op, Op):
            group = self.groups.get(id(e))
            if group is None:
                raise CompileError(f"{self.name}: operator call {e.op.name} belongs to no fused group")
            return self._group(group)
        closure = self.expr(e.op)
        args = tuple(self.expr(a) for a in e.args)
        dst = self.new_reg()
        self.emit(bc.InvokeClosure(closure, args, dst))
        return dst

    def _input(self, x) -> int:
        if isinstance(x, TupleField):
            dst = self.new_reg()
            self.emit(bc.GetField(self.expr(x.expr), x.index, dst))
            return dst
        if isinstance(x, np.ndarray):
            dst = self.new_reg()
            self.emit(bc.LoadConst(self.mc.constant(x), dst))
            return dst
        if isinstance(x, Var) and x in self.lets:
            raise CompileError(f"{self.name}: %{x.name} was fused away but is used as an input")
        return self.expr(x)

    def _group(self, group) -> int:
        index, gk = self.mc.kernel(group)
        # the kernel may have been built for another group of the same shape: take this one's inputs
        if gk.template == "dense":  # (and the dense's own weight, packed)
            gk = _with_inputs(gk, self.mc, group)
        elif gk.template == "conv2d":  # (its own weight and bias)
            from .conv_kernels import conv2d_group_inputs

            gk = replace(gk, inputs=conv2d_group_inputs(group, self.mc.types, self.mc.__dict__.setdefault("_packed", {})))
        elif gk.template in ("dense_integer", "dense_integer_amx"):  # its own weight, packed, and column sums
            from .template_kernels import dense_integer_inputs

            gk = replace(gk, inputs=dense_integer_inputs(group.calls[0], gk.weight_layouts,
                                                         self.mc.__dict__.setdefault("_packed", {})))
        elif gk.template in ("lstm_cell", "gru_cell"):  # its own recurrent weight, packed (the kernel is shared)
            from .kernels import recurrent_cell_inputs

            gk = replace(gk, inputs=recurrent_cell_inputs(group.calls[0], gk.signature, gk.weight_layouts[0],
                                                          self.mc.__dict__.setdefault("_packed", {})))
        elif gk.template != "auto":  # a lone operator through its template: its own arguments (and shape function)
            gk = replace(gk, inputs=list(group.calls[0].args), shape_op=group.root if gk.shape_op is not None else None)
        else:
            gk = replace(gk, inputs=flat_inputs_of(group, self.mc.types),
                         shape_op=group.root if gk.shape_op is not None else None)
        ins = [self._input(x) for x in gk.inputs]
        if _is_view(group, gk):
            return self._view(gk, ins)
        if gk.bounded:
            outs = self._bounded_call(index, gk, ins)
        else:
            outs = self._alloc_outputs(gk, ins)
            self.emit(bc.InvokePacked(index, tuple(ins) + tuple(outs), len(outs)))
        if len(outs) == 1 and len(gk.out_types) == 1 and not _is_tuple_root(group, self.mc.types):
            return outs[0]
        dst = self.new_reg()
        self.emit(bc.AllocADT(0, tuple(outs), dst))
        return dst

    def _static_tensor(self, shape, dtype) -> int:
        nbytes = int(np.prod(shape, dtype=np.int64)) * _itemsize(dtype)
        size = self.new_reg()
        self.emit(bc.LoadConsti(nbytes, size))
        storage = self.new_reg()
        self.emit(bc.AllocStorage(size, 64, 0, storage))
        dst = self.new_reg()
        self.emit(bc.AllocTensor(storage, 0, tuple(shape), dtype, dst))
        return dst

    def _view(self, gk, ins: list) -> int:
        """A lone reshape (squeeze, expand_dims): its input's storage with the output's shape, no copy."""
        (shape, _), = gk.out_types
        if None not in shape:
            shape_reg = self._input(np.array(shape, np.int64))
        else:
            (shape_reg, _), = self._shape_registers(gk, ins)
        dst = self.new_reg()
        self.emit(bc.ReshapeTensor(ins[0], shape_reg, dst))
        return dst

    def _alloc_outputs(self, gk, ins: list) -> list:
        if all(None not in shape for shape, _ in gk.out_types):
            return [self._static_tensor(shape, dtype) for shape, dtype in gk.out_types]
        return [t for _, t in self._dynamic_outputs(gk, ins)]

    def _bounded_call(self, index: int, gk, ins: list) -> list:
        """Call a kernel whose outputs are allocated at their upper bounds (``gk.out_shapes``, from the input dims):
        it writes each output's real shape into an int64 register after the outputs, and each result is a tensor of
        that shape on the same storage (the paper's upper-bound shape function; the allocation checks it fits)."""
        bound = self._dynamic_outputs(gk, ins)
        real = [self._static_tensor((len(shape),), "int64") for shape, _ in gk.out_types]
        self.emit(bc.InvokePacked(index, tuple(ins) + tuple(t for _, t in bound) + tuple(real), len(bound) + len(real)))
        outs = []
        for (storage, _), sreg, (_, dtype) in zip(bound, real, gk.out_types):
            dst = self.new_reg()
            self.emit(bc.AllocTensorReg(storage, 0, sreg, dtype, dst))
            outs.append(dst)
        return outs

    def _dynamic_outputs(self, gk, ins: list) -> list:
        """(storage, tensor) registers per output, sized at run time by a host shape function."""
        outs = []
        for (shape, dtype), (sreg, zreg) in zip(gk.out_types, self._shape_registers(gk, ins)):
            storage = self.new_reg()
            self.emit(bc.AllocStorage(zreg, 64, 0, storage))
            dst = self.new_reg()
            self.emit(bc.AllocTensorReg(storage, 0, sreg, dtype, dst))
            outs.append((storage, dst))
        return outs

    def _shape_registers(self, gk, ins: list) -> list:
        """(shape, byte size) registers per output, computed at run time by a host shape function."""
        if gk.shape_op is not None:
            call = gk.shape_op
            host = self.mc.host_func("op_shape", op=call.op.name, attrs=call.attrs.as_dict(),
                                     itemsizes=[_itemsize(d) for _, d in gk.out_types])
            op_args = [self.expr(a) for a in call.args]
        else:
            host = self.mc.host_func("shape_expr", shapes=gk.out_shapes, itemsizes=[_itemsize(d) for _, d in gk.out_types])
            op_args = ins
        shape_regs, size_regs = [], []
        for shape, _ in gk.out_types:
            shape_regs.append(self._static_tensor((len(shape),), "int64"))
            size_regs.append(self._static_tensor((), "int64"))
        pairs = [r for pair in zip(shape_regs, size_regs) for r in pair]
        self.emit(bc.InvokePacked(host, tuple(op_args) + tuple(pairs), len(pairs)))
        return list(zip(shape_regs, size_regs))


VIEW_OPS = ("reshape", "dyn.reshape", "reshape_like", "squeeze", "expand_dims")


def _is_view(group, gk) -> bool:
    """A group that is one reshape-like call of a tensor: its output is the input's bytes in another shape (every
    tensor of the VM is contiguous), so it becomes a view (``reshape_tensor``) instead of a copying kernel."""
    return (len(group.calls) == 1 and group.calls[0].op.name in VIEW_OPS and gk.template == "auto" and not gk.bounded
            and len(gk.out_types) == 1 and len(gk.inputs) >= 1
            and not isinstance(gk.inputs[0], (np.ndarray, Constant)))  # (a model's constants stay unaliased)


def _is_tuple_root(group, types) -> bool:
    return isinstance(types[group.root], TupleType)


def _with_inputs(gk, mc, group):
    """The dense kernel's inputs for this group: its own weight, packed (the kernel is shared)."""
    from ..schedules.dense import pack_weight

    dense = group.calls[0]
    w = dense.args[1]
    cache = mc.__dict__.setdefault("_packed", {})
    packed = []
    for bn in gk.weight_layouts:
        key = (id(w), bn)
        if key not in cache:
            cache[key] = pack_weight(np.asarray(w.value), bn, gk.signature.attr("weight_dtype"))
        packed.append(cache[key])
    bias = [a for c in group.calls[1:2] for a in c.args if isinstance(a, Constant)]
    inputs = [dense.args[0]] + packed + (bias[:1] if gk.signature.attr("bias") else []) + _residuals(group)
    return replace(gk, inputs=inputs)


def _residuals(group) -> list:
    out = []
    prev = group.calls[0]
    for c in group.calls[1:]:
        if c.op.name == "add":
            others = [a for a in c.args if not (a is prev or group.links.get(id(a)) is prev)]
            if others and not isinstance(others[0], Constant):
                out.append(others[0])
        prev = c
    return out


def compile(mod, target: str = "llvm", records=None, accept_foreign: bool = False):  # noqa: A001
    """Compile an IR module for the VM: an ``Executable``, run by ``VirtualMachine(exe).run(...)``.

    ``records``: a tuning-records database (a ``Database``, a path or an SQLAlchemy URL); each
    template-backed kernel gets a dispatch table of the best record per bucket (this host's, or
    another host's with ``accept_foreign=True``), else the templates' fallback configs.
    """
    if "main" not in mod.functions:
        raise CompileError("compile: the module has no 'main' function")
    if target.split()[0] != "llvm":
        raise CompileError(f"compile: target must be 'llvm' (the CPU), got {target!r}")
    from .pipeline import compile_pipeline

    return compile_pipeline(target, records, accept_foreign).run(mod)
