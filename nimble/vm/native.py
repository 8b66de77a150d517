"""The native VM: an executable's bytecode compiled to machine code (``native_codegen``) and run
with Python crossed twice per call: inputs encoded and built natively in one call, outputs
described in one call and returned as numpy arrays that view native storage (no copy; the
storage goes back to the VM's pool when the last array viewing it is gone).

``NativeProgram`` is per executable (compiled or loaded once, shared by every VM and thread);
``NativeVM`` holds one VM's context: its storage pool, constant and immediate tables, call
counters and histograms. One ``NativeVM`` runs one call at a time (a lock says so when two
threads try); many VMs may run one executable at once.
"""
from __future__ import annotations

import ctypes
import logging
import math
import threading
from time import perf_counter_ns

import numpy as np

from ..codegen import jit
from ..codegen.threads import num_threads
from ..errors import NimbleError
from . import interpreter
from . import native_layout as L
from .executable import KernelEntry
from .native_boundary import (
    OWNER_INPUT, checked_inputs, decode, dtype_code, encode_all, encode_fast, input_arrays, input_specs, inputs_match,
    native_outputs,
    output_table, phase, python_table, stack_floor, view_tensor,
)
from .native_errors import NativeErrors
from .native_pool import Lease, StoragePool
from .native_runtime import register_python_symbols, runtime_library
from .values import to_python

log = logging.getLogger("nimble.vm")
_c = ctypes


class _CallFields(ctypes.Structure):
    """The context fields ``call`` sets on every run (one Python attribute store each)."""

    _fields_ = [("stack_floor", ctypes.c_int64), ("err_code", ctypes.c_int32), ("err_status", ctypes.c_int32),
                ("err_packed", ctypes.c_int32), ("trace_n", ctypes.c_int32), ("_tables", ctypes.c_int64 * 5),
                ("nthreads", ctypes.c_int32), ("profiling", ctypes.c_int32), ("prof_time", ctypes.c_int64),
                ("depth", ctypes.c_int32), ("max_depth", ctypes.c_int32)]


assert (_CallFields.stack_floor.offset + 8, _CallFields.err_code.offset + 8, _CallFields.trace_n.offset + 8,
        _CallFields.nthreads.offset + 8, _CallFields.profiling.offset + 8, _CallFields.depth.offset + 8,
        _CallFields.max_depth.offset + 8) == (L.C_STACK_FLOOR, L.C_ERR_CODE, L.C_TRACE_N, L.C_NTHREADS,
                                              L.C_PROFILING, L.C_DEPTH, L.C_MAX_DEPTH)


class NativeProgram:
    """The native code of one executable, linked into this process."""

    def __init__(self, exe, object_code: bytes | None = None, layout=None, profile: bool = False):
        from .native_codegen import build_program

        self.exe = exe
        if object_code is None or layout is None:
            llvm_ir, layout = build_program(exe, profile)
            object_code = jit.compile_object(llvm_ir, speed_level=1, vectorize=False)  # calls and branches
        self.object_code = object_code
        self.layout = layout
        self.runtime = runtime_library()  # loaded first: the program links against its symbols
        self._obj = jit.LoadedObject(object_code)
        a = self.runtime.addresses
        vp, i64, i32 = _c.c_void_p, _c.c_int64, _c.c_int32
        self.run = _c.CFUNCTYPE(vp, vp, i32, vp, i64)(self._obj.address("nvm_run"))
        self.build = _c.CFUNCTYPE(i64, vp, vp, i64, vp)(a["build"])
        self.build_py = _c.PYFUNCTYPE(i64, vp, _c.py_object, vp, vp)(a["build_py"])  # with the GIL held
        self.describe = _c.CFUNCTYPE(i64, vp, vp, i64, vp)(a["describe"])
        self.to_py = _c.PYFUNCTYPE(_c.py_object, vp, vp, vp)(a["to_py"])  # with the GIL held
        self.decref = _c.CFUNCTYPE(None, vp, vp)(a["decref_export"])
        self.incref = _c.CFUNCTYPE(None, vp)(a["incref_export"])
        self.int_scalar = _c.CFUNCTYPE(vp, vp, i64)(a["int_scalar"])
        self.storage_release = _c.CFUNCTYPE(None, vp)(a["storage_release"])
        self.pool_release_free = _c.CFUNCTYPE(i64, vp)(a["pool_release_free"])
        self.pool_drain = _c.CFUNCTYPE(None, vp)(a["pool_drain"])
        self.cycles = _c.CFUNCTYPE(i64)(self._obj.address("nvm_prof_cycles")) if layout.prof_kinds else None
        self._fill_kernel_table()

    def _fill_kernel_table(self) -> None:
        from ..codegen.llvm import PYARRAY_SUFFIX
        from .linked_dispatch import LinkedDispatch

        library = self.exe.library()
        symbols = self.layout.kernel_symbols
        if not symbols:
            return
        table = (_c.c_void_p * len(symbols)).from_address(self._obj.global_address("nvm_kfn"))
        for slot, (index, entry, symbol) in enumerate(symbols):
            linked = library[index]
            if isinstance(linked, LinkedDispatch):
                linked = linked.kernels[next(k for k, e in enumerate(linked.entry.kernels) if e is entry)]
            sym = symbol if symbol.endswith(PYARRAY_SUFFIX) else symbol + PYARRAY_SUFFIX
            table[slot] = linked._address(sym)


def native_program(exe) -> NativeProgram:
    """The executable's native program (built once per executable and process; loaded from the
    executable's file when it carries one)."""
    cache = exe.__dict__.setdefault("_native_cache", [])
    if not cache:
        with _program_lock:
            if not cache:
                saved = exe.__dict__.get("_native_saved")
                if saved:
                    from .validate import object_symbols

                    register_python_symbols()  # (the runtime calls CPython's C API)
                    object_symbols(saved[3], "native VM runtime")  # checked before the linker sees it
                    runtime_library(saved[3], saved[2])
                    if saved[2] == runtime_library().version:
                        object_symbols(saved[0], "native VM program")
                if saved and saved[2] != runtime_library().version:
                    log.info("the executable's native code was built against another nimble runtime; rebuilding it")
                    saved = None
                cache.append(NativeProgram(exe, *(saved[:2] if saved else (None, None))))
    return cache[0]


def instrumented_program(exe) -> NativeProgram:
    """The executable's native program with every instruction timed by kind (``native_profile``;
    built on first use, never saved)."""
    cache = exe.__dict__.setdefault("_native_profile_cache", [])
    if not cache:
        with _program_lock:
            if not cache:
                cache.append(NativeProgram(exe, profile=True))
    return cache[0]


def native_section(exe, section) -> dict | None:
    """The header entry for the native program of ``exe`` (its object code added with
    ``section(bytes) -> index``), or None when the native VM cannot run it."""
    from .native_codegen import NativeUnsupported

    try:
        program = native_program(exe)
    except NativeUnsupported:
        return None
    lay = program.layout
    kernels = []
    for index, entry, symbol in lay.kernel_symbols:
        p = exe.packed[index]
        pos = 0 if p is entry else next(k for k, e in enumerate(p.kernels) if e is entry)
        kernels.append([index, pos, symbol])
    return {"object": section(bytes(program.object_code)), "runtime": program.runtime.version,
            "runtime_object": section(bytes(program.runtime.object_code)), "kernels": kernels,
            "immediates": list(lay.immediates), "hist_rows": [[k, v] for k, v in lay.hist_rows.items()]}


def load_native_section(exe, data: dict, sections: list) -> None:
    """Attach the native program stored in an executable file (checked, linked on first use)."""
    from ..errors import FormatError
    from .native_codegen import ProgramLayout

    layout = ProgramLayout()
    for index, pos, symbol in data["kernels"]:
        if not (isinstance(index, int) and 0 <= index < len(exe.packed) and isinstance(symbol, str)):
            raise FormatError(f"native program: kernel slot {[index, pos, symbol]} is malformed")
        p = exe.packed[index]
        kernels = [p] if isinstance(p, KernelEntry) else list(getattr(p, "kernels", ()))
        if not (isinstance(pos, int) and 0 <= pos < len(kernels)) or symbol not in [s for _, s in kernels[pos].variants]:
            raise FormatError(f"native program: kernel slot {[index, pos, symbol]} names no kernel of the executable")
        layout.kernel_symbols.append((index, kernels[pos], symbol))
    layout.immediates = [int(v) for v in data["immediates"]]
    layout.hist_rows = {int(k): int(v) for k, v in data["hist_rows"]}
    obj = data["object"]
    if not (isinstance(obj, int) and 0 <= obj < len(sections)):
        raise FormatError(f"native program: object section {obj!r} is out of range")
    robj = data["runtime_object"]
    if not (isinstance(robj, int) and 0 <= robj < len(sections)):
        raise FormatError(f"native program: runtime section {robj!r} is out of range")
    exe.__dict__["_native_saved"] = (bytes(sections[obj]), layout, str(data["runtime"]), bytes(sections[robj]))


_program_lock = threading.Lock()


class NativeVM(NativeErrors):
    """One VM's native state: context, pool, tables; ``call(name, inputs)`` runs a function."""

    def __init__(self, exe, instrumented: bool = False):
        self.exe = exe
        self.program = instrumented_program(exe) if instrumented else native_program(exe)
        lay = self.program.layout
        self.ops = (_c.c_int64 * max(2 * len(lay.prof_kinds), 1))()
        self.pool = StoragePool(self.program)
        self.ctx_buf = _c.create_string_buffer(L.CTX_SIZE)
        self.ctx = _c.addressof(self.ctx_buf)
        n_packed = len(exe.packed)
        self.calls = (_c.c_int64 * max(n_packed, 1))()
        self.prof_time = (_c.c_int64 * max(n_packed, 1))()
        self.hist = (_c.c_int64 * max(len(lay.hist_rows) * (L.HIST_BINS + 1), 1))()
        self._host = {}
        self._host_error = None
        self.host_cb = _c.CFUNCTYPE(_c.c_int32, _c.c_void_p, _c.c_int32, _c.c_void_p, _c.c_int32,
                                    _c.c_int32)(self._host_call)
        self._lock = threading.Lock()
        self._describe_bufs = ((_c.c_int64 * 256)(), (_c.c_void_p * 256)())
        self._constants = self._immortal_tensors(list(exe.constants))
        self._immediates = self._make_immediates(list(range(256)) + list(lay.immediates))
        self._put(L.C_POOL, self.pool.address)
        self._put(L.C_CONSTANTS, _c.addressof(self._constants))
        self._put(L.C_IMMEDIATES, _c.addressof(self._immediates))
        self._put(L.C_CALLS, _c.addressof(self.calls))
        self._put(L.C_HIST, _c.addressof(self.hist))
        self._put(L.C_HOST_CB, _c.cast(self.host_cb, _c.c_void_p).value)
        self._put(L.C_PROF_TIME, _c.addressof(self.prof_time))
        self._put(L.C_OPS, _c.addressof(self.ops))
        self._fields = _CallFields.from_address(self.ctx + L.C_STACK_FLOOR)
        self._entries: dict = {}
        self._argv = (_c.c_void_p * 256)()
        self._py_table = python_table()
        self._out_fallback = object()  # what nvm_to_py returns for a value Python builds
        self._out_table = output_table(self.pool, self._out_fallback)

    # ------------------------------------------------------------ context fields
    def _put(self, offset: int, value: int, ctype=_c.c_int64) -> None:
        ctype.from_address(self.ctx + offset).value = value

    def _get(self, offset: int, ctype=_c.c_int64) -> int:
        return ctype.from_address(self.ctx + offset).value

    def _immortal_tensors(self, arrays: list):
        code = []
        for i, a in enumerate(arrays):
            code += [L.ENC_TENSOR, id(a), dtype_code(a), -2 - i]
        table = (_c.c_void_p * max(len(arrays), 1))()
        if arrays:
            enc = (_c.c_int64 * len(code))(*code)
            n = self.program.build(self.ctx, enc, len(code), table)
            if n != len(arrays):
                raise NimbleError("native VM: could not build the constant table")
            for k in range(len(arrays)):
                _c.c_int64.from_address(table[k]).value = L.IMMORTAL
        return table

    def _make_immediates(self, values: list):
        table = (_c.c_void_p * len(values))()
        for k, v in enumerate(values):
            t = self.program.int_scalar(self.ctx, v)
            if not t:
                raise MemoryError("native VM: could not allocate the immediates")
            _c.c_int64.from_address(t).value = L.IMMORTAL
            table[k] = t
        return table

    # ------------------------------------------------------------ running
    def _entry(self, name: str) -> tuple:
        """(function index, parameters, declared input types, declared output type) of ``name``."""
        entry = self._entries.get(name)
        if entry is None:
            exe = self.exe
            fi = exe.function_index(name)
            params, in_types = exe.functions[fi].params, exe.metadata.get("inputs", {}).get(name)
            out_type = exe.metadata.get("outputs", {}).get(name)
            entry = self._entries[name] = (fi, params, in_types, out_type,
                                           self._out_table is not None and native_outputs(out_type),
                                           input_specs(params, in_types))
        return entry

    def call(self, name: str, inputs: tuple, profiling: bool = False, phases: dict | None = None):
        """Run ``name`` on ``inputs``; ``phases``: a dict that gets the ns each boundary step took."""
        t0 = perf_counter_ns() if phases is not None else 0
        fi, params, in_types, out_type, native_out, specs = self._entry(name)
        if specs is not None and inputs_match(specs, inputs):
            args = inputs
        else:
            args = checked_inputs(name, params, inputs, in_types)
        if phases is not None:
            t0 = phase(phases, "check inputs", t0)
        if not self._lock.acquire(blocking=False):
            raise NimbleError("this VirtualMachine is running on another thread; use one VirtualMachine per "
                              "thread (they may share the Executable)")
        try:
            f = self._fields
            f.err_code = f.trace_n = f.depth = 0
            f.nthreads = num_threads()
            f.profiling = 1 if profiling else 0
            f.stack_floor = stack_floor()
            f.max_depth = min(interpreter.MAX_CALL_DEPTH, 2**31 - 1)
            keep: list | tuple = tuple(args)
            argv = self._argv_for(len(keep))
            n = self.program.build_py(self.ctx, keep, self._py_table, argv)  # the inputs read natively
            if n == -2:  # something to convert, or deep: encoded in Python
                code: list = []
                keep = []
                careful = not encode_fast(args, code, keep)
                if careful:
                    code, keep = encode_all(args)
                enc = np.array(code or [0], dtype=np.int64)
                argv = self._argv_for(len(code))
                n = self.program.build(self.ctx, enc.ctypes.data, len(code), argv)
                if n == -2 and not careful:  # an array native code does not take as it is: converted in Python
                    code, keep = encode_all(args)
                    enc = np.array(code or [0], dtype=np.int64)
                    argv = self._argv_for(len(code))
                    n = self.program.build(self.ctx, enc.ctypes.data, len(code), argv)
            if phases is not None:
                t0 = phase(phases, "build native inputs", t0)
            if n != len(args):  # (nvm_build released what it built)
                raise self._error(fi) if self._get(L.C_ERR_CODE, _c.c_int32) else NimbleError(
                    f"{name}: could not pass the inputs to the native VM")
            self._host_error = None
            self._keep = keep
            if self.program.cycles is not None:
                self._put(L.C_OP_PREV, self.program.layout.prof_kinds.index("outside native code"), _c.c_int32)
                self._put(L.C_OP_LAST, self.program.cycles())
            result = self.program.run(self.ctx, fi, argv, n)
            if phases is not None:
                t0 = phase(phases, "native run", t0)
            if not result:
                raise self._error(fi)
            try:
                value = self.program.to_py(self.ctx, result, self._out_table) if native_out else self._out_fallback
                if value is self._out_fallback:  # described natively, built in Python
                    value = to_python(self._to_python(result, keep), out_type)
            finally:
                self.program.decref(self.ctx, result)
            if phases is not None:
                phase(phases, "outputs", t0)
        finally:
            self._keep = None
            self._lock.release()
        return value

    def _argv_for(self, n: int):
        """The VM's argument stack for ``nvm_build`` (room for ``n`` pointers; one call at a time)."""
        if len(self._argv) < n:
            self._argv = (_c.c_void_p * n)()
        return self._argv

    def _to_python(self, obj: int, keep: list):
        found: dict = {}  # input arrays by id, filled at the first output that views one
        return decode(self._describe_words(obj), lambda *t: self._tensor(*t, keep, found))

    def _tensor(self, data: int, code: int, shape: tuple, storage: int, owner: int, keep: list,
                found: dict) -> np.ndarray:
        dtype = L.DTYPE_OF_CODE[code]
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes == 0:
            return np.empty(shape, dtype)
        if owner == -3 or (storage == 0 and owner == -1):  # inline data (scalars, shapes): a copy
            raw = (_c.c_char * nbytes).from_address(data)
            return np.frombuffer(bytes(raw), dtype).reshape(shape)
        if storage:
            buf = (_c.c_uint8 * nbytes).from_address(data)
            self.program.incref(storage)
            buf._lease = Lease(self.program, storage, self.pool)  # dies with the last array viewing buf
            return np.ndarray(shape, dtype, buf)
        if owner >= OWNER_INPUT:  # an input array read natively (``keep``: the inputs)
            if not found:
                found.update(input_arrays(keep))
            base = found.get(owner - OWNER_INPUT)
            if base is None:
                raise NimbleError(f"native VM: an output views an input array at {owner - OWNER_INPUT:#x} that is "
                                  "not among the inputs")
        else:
            base = keep[owner] if owner >= 0 else self.exe.constants[-2 - owner]
        offset = data - base.__array_interface__["data"][0]
        if offset == 0 and base.shape == shape and base.dtype == dtype:
            return base  # an input or constant returned as it is
        view = np.ndarray(shape, dtype, buffer=base, offset=offset)
        return view

    # ------------------------------------------------------------ host functions (Python callbacks)
    def _host_call(self, ctx: int, index: int, argv: int, nargs: int, n_out: int) -> int:
        try:
            fn = self._host.get(index)
            if fn is None:
                fn = self._host[index] = self.exe.library()[index]
            ptrs = (_c.c_void_p * nargs).from_address(argv)
            vals = []
            for k in range(nargs):
                vals.append(self._view(ptrs[k]))
            fn(vals, n_out)
            return 0
        except BaseException as exc:  # noqa: BLE001 - re-raised by call() after unwinding
            self._host_error = exc
            self._put(L.C_ERR_CODE, L.E_HOST, _c.c_int32)
            return 1

    def _view(self, obj: int):
        """A native value as numpy arrays / ADTs viewing its memory (valid during the callback)."""
        return decode(self._describe_words(obj), view_tensor)

    def _describe_words(self, obj: int) -> list:
        buf, stack = self._describe_bufs
        n = self.program.describe(obj, buf, len(buf), stack)
        if n <= len(buf):
            return buf[:n]
        while n > len(buf):  # a large value: room for it, kept for the next call
            cap = n
            buf, stack = (_c.c_int64 * cap)(), (_c.c_void_p * cap)()
            n = self.program.describe(obj, buf, cap, stack)
        self._describe_bufs = (buf, stack)
        return buf[:n]

    # ------------------------------------------------------------ statistics
    def kernel_calls(self) -> list:
        return list(self.calls[:len(self.exe.packed)])

    def shape_histogram(self) -> dict:
        out = {}
        for index, row in self.program.layout.hist_rows.items():
            counts = self.hist[row * (L.HIST_BINS + 1):(row + 1) * (L.HIST_BINS + 1)]
            h = {n: c for n, c in enumerate(counts[:L.HIST_BINS]) if c}
            if counts[L.HIST_BINS]:
                h[f">={L.HIST_BINS}"] = counts[L.HIST_BINS]
            out[self.exe.packed[index].name] = h
        return out

    def profile(self, name: str, inputs: tuple):
        from .profile import ProfileReport

        n = len(self.exe.packed)
        calls0 = list(self.calls[:n])
        for k in range(n):
            self.prof_time[k] = 0
        self.pool.reset_peak()
        allocs0, system0 = self.pool.stat("storage_allocations"), self.pool.stat("system_allocations")
        t0 = perf_counter_ns()
        outputs = self.call(name, inputs, profiling=True)
        total = (perf_counter_ns() - t0) * 1e-9
        kernels: dict = {}
        for k, p in enumerate(self.exe.packed):
            c = self.calls[k] - calls0[k]
            if c:
                entry = kernels.setdefault(p.name, {"calls": 0, "time_s": 0.0})
                entry["calls"] += c
                entry["time_s"] += self.prof_time[k] * 1e-9
        # the native VM times packed calls only (time outside them is the VM's own) and counts allocations
        instructions = {"invoke_packed": {"count": int(sum(k["calls"] for k in kernels.values())),
                                          "time_s": sum(k["time_s"] for k in kernels.values())},
                        "alloc_storage": {"count": self.pool.stat("storage_allocations") - allocs0, "time_s": 0.0}}
        return ProfileReport(name, total, kernels, instructions,
                             self.pool.stat("storage_allocations") - allocs0,
                             self.pool.stat("system_allocations") - system0, self.pool.stat("peak_bytes_in_use"),
                             outputs)
