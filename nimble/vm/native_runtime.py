"""The native VM's runtime, emitted as LLVM IR into every native program's module.

Reference counting (``incref``/``decref`` inline, ``nvm_release`` frees with a worklist, so a
long list is freed without deep recursion), the storage pool (free lists per size class, four
classes per power of two as ``nimble.vm.storage``; blocks handed to Python come back through
an atomic deferred stack, so a numpy array released on another thread never races the VM),
tensor, ADT and closure constructors, scalar reads for ``if``, and the entry points Python
calls once per run: building the inputs and describing the outputs.

Errors set ``ctx.err_code`` (and details) and make the function return null or nonzero; the
generated VM code unwinds from there.

The emitters live in ``native_rt_memory`` (refcounting, pool), ``native_rt_values`` (tensors,
ADTs, closures, scalars), ``native_rt_boundary`` (build, describe), ``native_rt_python`` (inputs read
from Python objects) and ``native_rt_pyout`` (outputs built as Python objects); this module assembles them
into ``Runtime``, compiles it once per process (``RuntimeLibrary``) and declares it in programs
(``RuntimeRef``).
"""
from __future__ import annotations

import hashlib
import threading

import llvmlite.ir as ir

from . import native_layout as L
from .native_ir import I1, I8, I32, I64, PTR, VOID, c64, const_array, declare
from .native_ir import function as _function
from .native_rt_boundary import BoundaryRuntime
from .native_rt_helpers import PREFIX, function, set_detail, set_error
from .native_rt_memory import MemoryRuntime
from .native_rt_python import PythonInputRuntime
from .native_rt_pyout import PYTHON_SYMBOLS, PythonOutputRuntime
from .native_rt_values import ValueRuntime

__all__ = ["PREFIX", "Runtime", "RuntimeLibrary", "RuntimeRef", "function", "register_python_symbols",
           "runtime_library", "set_detail", "set_error"]


class Runtime(MemoryRuntime, ValueRuntime, BoundaryRuntime, PythonInputRuntime, PythonOutputRuntime):
    """Emits the runtime into ``module``; its functions are attributes of this object."""

    def __init__(self, module: ir.Module):
        self.m = module
        m = module
        self.malloc = declare(m, "malloc", PTR, [I64])
        self.free = declare(m, "free", VOID, [PTR])
        self.memalign = declare(m, "posix_memalign", I32, [PTR, I64, I64])
        self.memcpy = declare(m, "llvm.memcpy.p0.p0.i64", VOID, [PTR, PTR, I64, I1])
        self.memset = declare(m, "llvm.memset.p0.i64", VOID, [PTR, I8, I64, I1])
        self.ctlz = declare(m, "llvm.ctlz.i64", I64, [I64, I1])
        self.smul = declare(m, "llvm.smul.with.overflow.i64", ir.LiteralStructType([I64, I1]), [I64, I64])
        sizes = [0] * (max(L.ITEMSIZE_OF_CODE) + 1)
        for code, size in L.ITEMSIZE_OF_CODE.items():
            sizes[code] = size
        self.itemsizes = const_array(m, "nvm_itemsizes", I64, sizes)
        self.type_num_codes = const_array(m, "nvm_type_num_codes", I32, list(L.DTYPE_CODE_BY_TYPE_NUM))
        self._pool()
        self._refcounting()
        self._tensors()
        self._objects()
        self._scalars()
        self._entry_points()

    set_error = staticmethod(set_error)
    set_detail = staticmethod(set_detail)


class RuntimeRef:
    """The runtime as seen from a program module: declarations of the shared runtime's functions
    (same attribute names as ``Runtime``), ``incref`` inline, and the intrinsics programs use."""

    set_error = staticmethod(set_error)
    set_detail = staticmethod(set_detail)

    def __init__(self, module: ir.Module, library: RuntimeLibrary):
        for attr, fn in library.functions.items():
            if attr != "incref":
                setattr(self, attr, declare(module, library.prefix + fn.name[len(PREFIX):], fn.function_type.return_type,
                                            list(fn.function_type.args)))
        self.malloc = declare(module, "malloc", PTR, [I64])
        self.free = declare(module, "free", VOID, [PTR])
        self.memset = declare(module, "llvm.memset.p0.i64", VOID, [PTR, I8, I64, I1])
        self.smul = declare(module, "llvm.smul.with.overflow.i64", ir.LiteralStructType([I64, I1]), [I64, I64])
        self.incref, b = _function(module, "incref", VOID, [PTR], inline=True)
        o = self.incref.args[0]
        b.store(b.add(b.load(o, typ=I64), c64(1)), o)
        b.ret_void()


class RuntimeLibrary:
    """The runtime compiled once per process (disk-cached object), its symbols registered for
    the JIT linker under a prefix that carries the hash of its code (a program built against
    another runtime never links against this one)."""

    def __init__(self, object_code: bytes | None = None, version: str | None = None):
        import llvmlite.binding as llvm

        from ..codegen import jit

        module = ir.Module(name="nimble_vm_runtime")
        module.triple = jit.host().triple
        module.data_layout = str(jit.target_machine().target_data)
        rt = Runtime(module)
        text = str(module)
        self.version = hashlib.sha256(text.encode()).hexdigest()[:12]
        self.prefix = f"nvm{self.version}_"
        self.functions = {attr: fn for attr, fn in vars(rt).items()
                          if isinstance(fn, ir.Function) and fn.name.startswith(PREFIX)}
        final = text.replace(f'@"{PREFIX}', f'@"{self.prefix}')
        if object_code is None or version != self.version:  # (a saved executable may carry it)
            object_code = jit.compile_object(final, speed_level=2, vectorize=False)
        self.object_code = object_code
        register_python_symbols()  # nvm_build_py and nvm_to_py call CPython's C API
        self.object = jit.LoadedObject(object_code)
        self.addresses = {}
        for attr, fn in self.functions.items():
            name = self.prefix + fn.name[len(PREFIX):]
            self.addresses[attr] = self.object.address(name)
            llvm.add_symbol(name, self.addresses[attr])


_library: list = []
_library_lock = threading.Lock()


def register_python_symbols() -> None:
    """Tell the JIT linker where this process's CPython C API functions are."""
    import ctypes

    import llvmlite.binding as llvm

    api = ctypes.pythonapi
    for name in ("PyObject_GetAttr", "Py_DecRef", "PyLong_AsLongLong", "PyErr_Occurred", "PyErr_Clear", *PYTHON_SYMBOLS):
        llvm.add_symbol(name, ctypes.cast(getattr(api, name), ctypes.c_void_p).value)


def runtime_library(object_code: bytes | None = None, version: str | None = None) -> RuntimeLibrary:
    """The process's runtime library: compiled (or read from the object cache) on first use, or
    taken from ``object_code`` when that is the same runtime (``version``)."""
    if not _library:
        with _library_lock:
            if not _library:
                _library.append(RuntimeLibrary(object_code, version))
    return _library[0]
