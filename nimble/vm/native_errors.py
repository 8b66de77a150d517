"""Errors left by native code in a VM's context, raised as the nimble exceptions the Python VM
raises: naming the VM function, the instruction, the shapes, with the VM call stack as a note."""
from __future__ import annotations

import ctypes as _c

import numpy as np

from ..errors import NimbleError, OutOfRangeError, ShapeError
from ..errors import TypeError as NimbleTypeError
from . import bytecode as bc
from . import interpreter
from . import native_layout as L
from .executable import KernelEntry

SHAPE_STATUS = 1 << 20
_KIND_NAMES = {0: "nothing", L.KIND_TENSOR: "ndarray", L.KIND_STORAGE: "Storage", L.KIND_ADT: "ADT",
               L.KIND_CLOSURE: "Closure"}


class NativeErrors:
    """``NativeVM``'s error translation (a mixin: it reads ``self.exe``, ``self.ctx``, ``self.program``)."""

    def _error(self, fi: int) -> BaseException:
        exe = self.exe
        code = _c.c_int32.from_address(self.ctx + L.C_ERR_CODE).value
        status = _c.c_int32.from_address(self.ctx + L.C_ERR_STATUS).value
        n = _c.c_int32.from_address(self.ctx + L.C_TRACE_N).value
        trace = [(w >> 32, w & 0xFFFFFFFF) for w in
                 (_c.c_int64 * L.TRACE_SLOTS).from_address(self.ctx + L.C_TRACE)[:min(n, L.TRACE_SLOTS)]]
        where_f, where_pc = trace[0] if trace else (fi, 0)
        func = exe.functions[where_f] if 0 <= where_f < len(exe.functions) else None
        ins = func.instructions[where_pc] if func is not None and 0 <= where_pc < len(func.instructions) else None
        detail = (_c.c_int64 * L.ERR_DETAIL_SLOTS).from_address(self.ctx + L.C_ERR_DETAIL)
        exc = self._exception(code, status, detail, func, where_pc, ins)
        notes = []
        for f, pc in trace[:20]:
            fn = exe.functions[f]
            text = bc.format_instruction(fn.instructions[pc], pc, [x.name for x in exe.functions],
                                         [p.name for p in exe.packed]) if 0 <= pc < len(fn.instructions) else "-"
            notes.append(f"  {'in' if not notes else 'called from'} @{fn.name}[{pc}]: {text}")
        if n > 20:
            notes.append(f"  ... {n - 20} more frames")
        exc.add_note("\n".join(["VM call stack (innermost first, native VM):"] + notes))
        return exc

    def _arg_values(self, detail) -> list:
        """The call's arguments kept by native code for the message (and released here)."""
        count = min(detail[0], L.ERR_DETAIL_SLOTS - 1)
        out = []
        for k in range(count):
            ptr = detail[1 + k]
            if not ptr:
                out.append(None)
                continue
            kind = _c.c_int32.from_address(ptr + L.KIND).value
            if kind == L.KIND_TENSOR:
                nd = _c.c_int32.from_address(ptr + L.T_NDIM).value
                shape = tuple((_c.c_int64 * nd).from_address(ptr + L.T_SHAPE)[:nd]) if nd <= L.MAX_RANK else ()
                code = _c.c_int32.from_address(ptr + L.AUX).value
                values = None
                if code == L.DTYPE_CODE["int64"] and len(shape) == 1 and shape[0] <= L.MAX_RANK:
                    data = _c.c_void_p.from_address(ptr + L.T_DATA).value
                    values = tuple((_c.c_int64 * shape[0]).from_address(data)[:shape[0]]) if data else None
                out.append(("tensor", shape, str(L.DTYPE_OF_CODE.get(code, "?")), values))
            else:
                out.append((_KIND_NAMES.get(kind, "?"), None, None))
            self.program.decref(self.ctx, ptr)
        detail[0] = 0
        return out

    def _exception(self, code, status, detail, func, pc, ins) -> BaseException:
        exe = self.exe
        where = f"@{func.name}[{pc}]" if func is not None else "the native VM"
        if code == L.E_HOST and self._host_error is not None:
            return self._host_error
        if code in (L.E_KERNEL, L.E_ARG) and status != 0 and (code == L.E_KERNEL or status == 100):
            packed = exe.packed[_c.c_int32.from_address(self.ctx + L.C_ERR_PACKED).value]
            args = self._arg_values(detail)
            shapes = ", ".join("?" if a is None else f"{a[0]} {a[1]} {a[2]}" if a[0] == "tensor" else a[0]
                               for a in args)

            if code == L.E_ARG:
                return self._arg_mismatch(packed, args, where)
            if status == 1:
                return MemoryError(f"{packed.name}: the kernel could not allocate its temporary buffers")
            msgs = _assert_messages(packed)
            if 2 <= status < 2 + len(msgs):
                from .executable import name_dims

                text = name_dims(msgs[status - 2], [a[1] if a is not None and a[0] == "tensor" else None for a in args])
                return OutOfRangeError(f"{packed.name}: {text} (arguments: {shapes})")
            if status >= SHAPE_STATUS:
                k = status - SHAPE_STATUS
                return ShapeError(f"{packed.name}: argument #{k} has a rank or dimension that disagrees with the "
                                  f"other arguments (arguments: {shapes}) at {where}")
            return NimbleError(f"{packed.name}: the kernel returned the unknown status {status} at {where}")
        if code == L.E_DEPTH:
            limit = interpreter.MAX_CALL_DEPTH
            if detail[0] > limit:
                return NimbleError(f"call depth exceeds {limit} frames (runaway recursion?) in {where}")
            return NimbleError(f"call depth {detail[0]} exceeds the native VM's stack (runaway recursion?) in {where}")
        if code == L.E_FATAL:
            return NimbleError(f"fatal at {where}: {ins.message if isinstance(ins, bc.Fatal) else 'fatal'}")
        if code == L.E_ALLOC:
            return MemoryError(f"{where}: could not allocate {detail[0]} bytes")
        if code == L.E_SHAPE:
            texts = {1: f"alloc_storage: size must be >= 0 bytes, got {detail[0]}",
                     2: "a tensor's element count or byte size overflows int64 (or a dim is negative)",
                     3: f"alloc_tensor: a tensor of {detail[0]} bytes at offset {detail[1]} does not fit in a storage "
                        f"of {detail[2]} bytes",
                     4: f"rank {detail[0]} is above the native VM's limit of {L.MAX_RANK}",
                     5: _reshape_text(self._arg_values(detail)) if status == 5 else "",
                     7: f"output {detail[0]} would have a negative or overflowing shape",
                     8: "a shape expression divides by zero",
                     9: "a shape expression reads an input as one int32 / int64 value, and it is not one"}
            return ShapeError(f"{where}: {texts.get(status, 'shape error')}")
        if code == L.E_FIELD:
            return NimbleError(f"get_field at {where}: the register holds no ADT with field {status}")
        if code == L.E_TAG:
            return NimbleError(f"get_tag: register ${detail[1]} holds {_KIND_NAMES.get(detail[0], '?')}, not an ADT "
                               f"(at {where})")
        if code == L.E_CLOSURE:
            return NimbleError(f"invoke_closure at {where}: the register does not hold a closure")
        if code == L.E_ARITY:
            callee = exe.functions[detail[1]].name if 0 <= detail[1] < len(exe.functions) else "?"
            return NimbleError(f"@{callee} takes {status} arguments, got {detail[0]}")
        if code == L.E_SCALAR:
            return NimbleError(f"{where}: a value compared or used as a size is not a one-element tensor")
        if code == L.E_ARG:
            return NimbleTypeError(f"{where}: an instruction got a value of the wrong kind (case {status})")
        return NimbleError(f"native VM error {code} (status {status}) at {where}")

    def _arg_mismatch(self, packed, args: list, where: str) -> BaseException:
        from .native_codegen import expected_args

        want = expected_args(packed)
        for k, (a, w) in enumerate(zip(args, want)):
            if w is None:
                continue
            if a is None or a[0] != "tensor":
                return NimbleTypeError(f"kernel {packed.name}: argument #{k} must be a tensor, got "
                                       f"{'nothing' if a is None else a[0]} at {where}")
            dtype, nd = L.DTYPE_OF_CODE[w[0]], w[1]
            if a[2] != str(dtype):
                return NimbleTypeError(f"kernel {packed.name}: argument #{k} must have dtype {dtype}, got {a[2]} "
                                       f"at {where}")
            if len(a[1]) != nd:
                return ShapeError(f"kernel {packed.name}: argument #{k} must have rank {nd}, got shape {a[1]} "
                                  f"at {where}")
        return NimbleTypeError(f"kernel {packed.name}: arguments rejected at {where}")


def _reshape_text(args: list) -> str:
    if len(args) == 2 and args[0] and args[1] and args[0][0] == "tensor" and args[1][3] is not None:
        shape = args[0][1]
        return (f"reshape_tensor: cannot view a tensor of shape {shape} ({int(np.prod(shape, dtype=np.int64))} "
                f"elements) as shape {args[1][3]}")
    return "reshape_tensor: the new shape has another element count"


def _assert_messages(packed) -> tuple:
    if isinstance(packed, KernelEntry):
        return tuple(packed.assert_messages)
    msgs = ()
    for k in getattr(packed, "kernels", ()):
        msgs = msgs or tuple(k.assert_messages)
    return msgs
