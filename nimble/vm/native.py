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
from ..errors import NimbleError, OutOfRangeError, ShapeError
from ..errors import TypeError as NimbleTypeError
from . import bytecode as bc
from . import interpreter
from . import native_layout as L
from .executable import HostFuncEntry, KernelEntry
from .native_runtime import runtime_library
from .values import ADT, Closure, check_inputs, to_python

log = logging.getLogger("nimble.vm")
STACK_MARGIN = 256 * 1024  # bytes of the thread's stack kept free below the deepest native frame
SHAPE_STATUS = 1 << 20
_KIND_NAMES = {0: "nothing", L.KIND_TENSOR: "ndarray", L.KIND_STORAGE: "Storage", L.KIND_ADT: "ADT",
               L.KIND_CLOSURE: "Closure"}
_c = ctypes


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
        self.describe = _c.CFUNCTYPE(i64, vp, vp, i64, vp)(a["describe"])
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
_stack = threading.local()
_libc_handle: list = []


def _libc():
    if not _libc_handle:
        libc = _c.CDLL(None)
        libc.free.argtypes = [_c.c_void_p]
        libc.free.restype = None
        _libc_handle.append(libc)
    return _libc_handle[0]


def _stack_floor() -> int:
    """The lowest stack address native frames may use on this thread (its base plus a margin)."""
    floor = getattr(_stack, "floor", None)
    if floor is None:
        floor = 0
        try:
            libc = _c.CDLL(None)
            libc.pthread_self.restype = _c.c_ulong
            libc.pthread_getattr_np.argtypes = [_c.c_ulong, _c.c_void_p]
            attr = _c.create_string_buffer(256)
            if libc.pthread_getattr_np(libc.pthread_self(), attr) == 0:
                addr, size = _c.c_void_p(), _c.c_size_t()
                libc.pthread_attr_getstack(attr, _c.byref(addr), _c.byref(size))
                libc.pthread_attr_destroy(attr)
                floor = (addr.value or 0) + STACK_MARGIN
        except (AttributeError, OSError):
            floor = 0
        if not floor:  # unknown: allow 1 MiB below this frame
            floor = _c.addressof(_c.c_char()) - (1 << 20)
        _stack.floor = floor
    return floor


class _Pool:
    """The VM's storage pool; outlives the VM while arrays still view its blocks."""

    def __init__(self, program: NativeProgram):
        self.program = program
        self.buf = _c.create_string_buffer(L.POOL_SIZE)
        self.address = _c.addressof(self.buf)

    def stat(self, name: str) -> int:
        return _c.c_int64.from_address(self.address + L.P_STATS + 8 * L.POOL_STATS.index(name)).value

    def __getattr__(self, name: str):
        if name in L.POOL_STATS:
            return self.stat(name)
        raise AttributeError(name)

    def stats(self):
        from .storage import PoolStats

        self.program.pool_drain(self.address)
        s = self.stat
        return PoolStats(s("bytes_in_use"), s("peak_bytes_in_use"), s("bytes_free"), s("system_allocations"),
                         s("pool_reuses"), s("peak_bytes_requested"))

    def reset_peak(self) -> None:
        """Start measuring the peak from the bytes in use now."""
        base = self.address + L.P_STATS
        for src, dst in (("bytes_in_use", "peak_bytes_in_use"), ("bytes_requested", "peak_bytes_requested")):
            v = _c.c_int64.from_address(base + 8 * L.POOL_STATS.index(src)).value
            _c.c_int64.from_address(base + 8 * L.POOL_STATS.index(dst)).value = v

    def release_free(self) -> int:
        """Give every cached free block back to the system; returns the bytes released."""
        return self.program.pool_release_free(self.address)

    def __del__(self):
        # plain libc calls: the program's machine code may be gone already (a collected cycle)
        try:
            free = _libc().free
            heads = [_c.c_void_p.from_address(self.address + L.P_DEFERRED).value]
            heads += [_c.c_void_p.from_address(self.address + 8 * k).value for k in range(L.POOL_CLASSES)]
            for s in heads:
                while s:
                    nxt = _c.c_void_p.from_address(s + L.S_NEXT).value
                    free(_c.c_void_p.from_address(s + L.S_RAW).value)
                    free(s)
                    s = nxt
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class _Lease:
    """One reference to a native storage held by the buffer numpy arrays view; gives it back when
    the buffer goes. Holds the pool: it outlives every array viewing its blocks."""

    __slots__ = ("program", "storage", "pool")

    def __init__(self, program, storage: int, pool):
        self.program, self.storage, self.pool = program, storage, pool

    def __del__(self):
        try:
            self.program.storage_release(self.storage)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class NativeVM:
    """One VM's native state: context, pool, tables; ``call(name, inputs)`` runs a function."""

    def __init__(self, exe, instrumented: bool = False):
        self.exe = exe
        self.program = instrumented_program(exe) if instrumented else native_program(exe)
        lay = self.program.layout
        self.ops = (_c.c_int64 * max(2 * len(lay.prof_kinds), 1))()
        self.pool = _Pool(self.program)
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

    # ------------------------------------------------------------ context fields
    def _put(self, offset: int, value: int, ctype=_c.c_int64) -> None:
        ctype.from_address(self.ctx + offset).value = value

    def _get(self, offset: int, ctype=_c.c_int64) -> int:
        return ctype.from_address(self.ctx + offset).value

    def _immortal_tensors(self, arrays: list):
        code = []
        for i, a in enumerate(arrays):
            code += [L.ENC_TENSOR, id(a), _dtype_code(a), -2 - i]
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
    def call(self, name: str, inputs: tuple, profiling: bool = False, phases: dict | None = None):
        """Run ``name`` on ``inputs``; ``phases``: a dict that gets the ns each boundary step took."""
        exe = self.exe
        t0 = perf_counter_ns() if phases is not None else 0
        fi = exe.function_index(name)
        func = exe.functions[fi]
        args = _checked_inputs(name, func.params, inputs, exe.metadata.get("inputs", {}).get(name))
        if phases is not None:
            t0 = _phase(phases, "check inputs", t0)
        if not self._lock.acquire(blocking=False):
            raise NimbleError("this VirtualMachine is running on another thread; use one VirtualMachine per "
                              "thread (they may share the Executable)")
        try:
            keep: list = []
            code: list = []
            careful = not _encode_fast(args, code, keep)
            if careful:
                code, keep = _encode_all(args)
            enc = np.array(code or [0], dtype=np.int64)
            argv = np.zeros(max(len(code), 1), dtype=np.uintp)
            if phases is not None:
                t0 = _phase(phases, "encode inputs", t0)
            self._put(L.C_ERR_CODE, 0, _c.c_int32)
            self._put(L.C_TRACE_N, 0, _c.c_int32)
            self._put(L.C_NTHREADS, num_threads(), _c.c_int32)
            self._put(L.C_PROFILING, 1 if profiling else 0, _c.c_int32)
            self._put(L.C_STACK_FLOOR, _stack_floor())
            self._put(L.C_DEPTH, 0, _c.c_int32)
            self._put(L.C_MAX_DEPTH, min(interpreter.MAX_CALL_DEPTH, 2**31 - 1), _c.c_int32)
            argv_address = argv.__array_interface__["data"][0]
            n = self.program.build(self.ctx, enc.__array_interface__["data"][0], len(code), argv_address)
            if n == -2 and not careful:  # an array native code does not take as it is: converted in Python
                code, keep = _encode_all(args)
                enc = np.array(code or [0], dtype=np.int64)
                argv = np.zeros(max(len(code), 1), dtype=np.uintp)
                argv_address = argv.__array_interface__["data"][0]
                n = self.program.build(self.ctx, enc.__array_interface__["data"][0], len(code), argv_address)
            if phases is not None:
                t0 = _phase(phases, "build native inputs", t0)
            if n != len(args):  # (nvm_build released what it built)
                raise self._error(fi) if self._get(L.C_ERR_CODE, _c.c_int32) else NimbleError(
                    f"{name}: could not pass the inputs to the native VM")
            self._host_error = None
            self._keep = keep
            if self.program.cycles is not None:
                self._put(L.C_OP_PREV, self.program.layout.prof_kinds.index("outside native code"), _c.c_int32)
                self._put(L.C_OP_LAST, self.program.cycles())
            result = self.program.run(self.ctx, fi, argv_address, n)
            if phases is not None:
                t0 = _phase(phases, "native run", t0)
            if not result:
                raise self._error(fi)
            try:
                value = self._to_python(result, keep)
            finally:
                self.program.decref(self.ctx, result)
            if phases is not None:
                t0 = _phase(phases, "outputs as numpy", t0)
        finally:
            self._keep = None
            self._lock.release()
        value = to_python(value, exe.metadata.get("outputs", {}).get(name))
        if phases is not None:
            _phase(phases, "outputs to Python types", t0)
        return value

    def _to_python(self, obj: int, keep: list):
        return _decode(self._describe_words(obj), lambda *t: self._tensor(*t, keep))

    def _tensor(self, data: int, code: int, shape: tuple, storage: int, owner: int, keep: list) -> np.ndarray:
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
            buf._lease = _Lease(self.program, storage, self.pool)  # dies with the last array viewing buf
            return np.frombuffer(buf, dtype).reshape(shape)
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
        return _decode(self._describe_words(obj), _view_tensor)

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

    # ------------------------------------------------------------ errors
    def _error(self, fi: int) -> BaseException:
        exe = self.exe
        code = self._get(L.C_ERR_CODE, _c.c_int32)
        status = self._get(L.C_ERR_STATUS, _c.c_int32)
        n = self._get(L.C_TRACE_N, _c.c_int32)
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
            packed = exe.packed[self._get(L.C_ERR_PACKED, _c.c_int32)]
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
                     8: "a shape expression divides by zero"}
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


def _phase(phases: dict, name: str, t0: int) -> int:
    now = perf_counter_ns()
    phases[name] = phases.get(name, 0) + now - t0
    return now


def _reshape_text(args: list) -> str:
    if len(args) == 2 and args[0] and args[1] and args[0][0] == "tensor" and args[1][3] is not None:
        shape = args[0][1]
        return (f"reshape_tensor: cannot view a tensor of shape {shape} ({int(np.prod(shape, dtype=np.int64))} "
                f"elements) as shape {args[1][3]}")
    return "reshape_tensor: the new shape has another element count"


def _view_tensor(data: int, code: int, shape: tuple, storage: int, owner: int) -> np.ndarray:
    dtype = L.DTYPE_OF_CODE[code]
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes == 0:
        return np.empty(shape, dtype)
    return np.frombuffer((_c.c_uint8 * nbytes).from_address(data), dtype).reshape(shape)


def _decode(w: list, tensor):
    """The value a prefix description holds (iteratively: long lists are fine); ``tensor(data,
    code, shape, storage, owner)`` makes each array."""
    i, n = 0, len(w)
    stack: list = []  # [kind, tag, remaining count, fields]
    result = None
    while i < n:
        kind = w[i]
        if kind == L.ENC_TENSOR:
            nd = w[i + 3]
            value = tensor(w[i + 1], w[i + 2], tuple(w[i + 6:i + 6 + nd]), w[i + 4], w[i + 5])
            i += 6 + nd
        else:
            frame = [kind, w[i + 1], w[i + 2], []]
            i += 3
            if frame[2]:
                stack.append(frame)
                continue
            value = ADT(frame[1], ()) if kind == L.ENC_ADT else Closure(frame[1], ())
        while True:  # hand the value to its parent; close parents that are complete
            if not stack:
                result = value
                break
            top = stack[-1]
            top[3].append(value)
            if len(top[3]) < top[2]:
                break
            stack.pop()
            value = ADT(top[1], tuple(top[3])) if top[0] == L.ENC_ADT else Closure(top[1], tuple(top[3]))
    return result


def _assert_messages(packed) -> tuple:
    if isinstance(packed, KernelEntry):
        return tuple(packed.assert_messages)
    msgs = ()
    for k in getattr(packed, "kernels", ()):
        msgs = msgs or tuple(k.assert_messages)
    return msgs


def _dtype_code(a: np.ndarray) -> int:
    code = L.DTYPE_CODE_BY_NUM.get(a.dtype.num)
    if code is None:
        raise NimbleTypeError(f"the native VM has no dtype {a.dtype}")
    return code


def _checked_inputs(name: str, params: tuple, inputs: tuple, types: list | None) -> list:
    """``check_inputs``, except that a value declared an ADT is passed as it is (the reference
    interpreter's ``ConstructorValue`` trees included): ``_encode`` walks it once."""
    from ..ir.values import ConstructorValue

    if types is None or len(inputs) != len(params) or not any((t or {}).get("kind") == "adt" for t in types):
        return check_inputs(name, params, inputs, types)
    direct = [(t or {}).get("kind") == "adt" and isinstance(v, (ConstructorValue, ADT)) for v, t in zip(inputs, types)]
    checked = check_inputs(name, params, tuple(ADT(0, ()) if d else v for v, d in zip(inputs, direct)), types)
    return [v if d else c for v, c, d in zip(inputs, checked, direct)]


_FAST_DEPTH = 200  # nesting the recursive encoder takes; deeper values (long lists) go the iterative way


class _Careful(Exception):
    """A value ``_encode_fast`` leaves to ``_encode``."""


def _encode_fast(args: list, code: list, keep: list) -> bool:
    """The postfix encoding of ``args`` in few Python steps: arrays of class ndarray are passed as
    ``ENC_ARRAY`` (native code checks their layout and dtype), ADTs and tuples recursively.
    False (``code`` and ``keep`` then hold a part) when a value needs ``_encode``."""
    add, hold = code.extend, keep.append
    ndarray, cv, adt = np.ndarray, _constructor_value(), ADT

    def enc(v, depth):
        cls = v.__class__
        if cls is ndarray:
            add((L.ENC_ARRAY, id(v), 0, len(keep)))
            hold(v)
        elif depth < _FAST_DEPTH and (cls is cv or cls is adt or cls is tuple):
            fields = v if cls is tuple else v.fields
            for f in fields:
                enc(f, depth + 1)
            add((L.ENC_ADT, v.constructor.tag if cls is cv else 0 if cls is tuple else v.tag, len(fields)))
        else:
            raise _Careful

    try:
        for a in args:
            enc(a, 0)
    except _Careful:
        return False
    return True


def _encode_all(args: list) -> tuple:
    """(code, keep) of ``args`` by ``_encode``: every array checked and converted in Python."""
    code: list = []
    keep: list = []
    for a in args:
        _encode(a, code, keep)
    return code, keep


def _constructor_value():
    from ..ir.values import ConstructorValue

    return ConstructorValue


class _End:
    """Marks where an ADT's fields end in ``_encode``'s work stack."""

    __slots__ = ("tag", "count")

    def __init__(self, tag: int, count: int):
        self.tag, self.count = tag, count


def _encode(value, code: list, keep: list) -> None:
    """Append the postfix encoding of a register value (numpy arrays are passed by address;
    iterative, so a long list is fine)."""
    from ..ir.values import ConstructorValue

    ndarray, codes = np.ndarray, L.DTYPE_CODE_BY_NUM
    work = [value]
    pop, push, extend = work.pop, work.append, work.extend
    while work:
        v = pop()
        cls = v.__class__
        if cls is ndarray and v.flags.c_contiguous and v.ndim <= L.MAX_RANK and v.dtype.num in codes \
                and v.dtype.isnative:
            code += (L.ENC_TENSOR, id(v), codes[v.dtype.num], len(keep))
            keep.append(v)
        elif cls is _End:
            code += (L.ENC_ADT, v.tag, v.count)
        elif cls is ConstructorValue or cls is ADT or cls is tuple:
            fields = v if cls is tuple else v.fields
            push(_End(v.constructor.tag if cls is ConstructorValue else 0 if cls is tuple else v.tag, len(fields)))
            extend(reversed(fields))
        elif isinstance(v, Closure):
            raise NimbleTypeError("the native VM does not take closures as inputs")
        else:
            v = np.ascontiguousarray(v) if isinstance(v, np.ndarray) else np.asarray(v, order="C")
            if not v.dtype.isnative:
                v = v.astype(v.dtype.newbyteorder("="))
            if v.ndim > L.MAX_RANK:
                raise ShapeError(f"the native VM takes tensors of rank <= {L.MAX_RANK}, got shape {v.shape}")
            code += (L.ENC_TENSOR, id(v), _dtype_code(v), len(keep))
            keep.append(v)
