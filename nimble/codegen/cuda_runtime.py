"""Loading and launching compiled CUDA kernels: one small interface, three launchers behind it.

``default_device()`` picks, in this order, the first launcher that imports and finds a GPU:

* ``pycuda`` (the design card's choice), where it is installed: it builds from source only
  with the CUDA toolkit's headers and a driver library, so not on the CPU machines;
* NVIDIA's ``cuda-python`` driver bindings (``cuda.bindings.driver``, or the older
  ``cuda.cuda``): a wheel, often present on GPU machines that lack pycuda;
* ``cupy``'s module loader, the last resort on machines with cupy and neither of the others.

``NIMBLE_CUDA_LAUNCHER=pycuda|cuda-python|cupy`` forces one. Each launcher loads a cubin
(``cuModuleLoadData``), copies numpy inputs to device memory, launches with the grid and block
of ``CudaKernel.launch_dims`` and copies the outputs back; ``benchmark`` times launches on
device-resident arguments with CUDA events. Nothing here runs on a machine without a GPU:
``default_device`` then raises ``CudaUnavailable``.
"""
from __future__ import annotations

import ctypes
import os

import numpy as np

from ..errors import NimbleError
from ..te.expr import IntImm
from ..te.simplify import simplify
from ..te.visit import substitute
from .cuda import CudaKernel

LAUNCHERS = ("pycuda", "cuda-python", "cupy")


class CudaUnavailable(NimbleError, RuntimeError):
    """No launcher could be imported or no GPU was found."""


class CudaDriverError(NimbleError, RuntimeError):
    """A CUDA driver call failed."""


def buffer_shape(buf, dims: dict) -> tuple:
    """A buffer's concrete shape for symbolic dims ``dims`` (Var -> int)."""
    env = {v: IntImm(int(n)) for v, n in dims.items()}
    out = []
    for d in buf.shape:
        e = simplify(substitute(d, env))
        if not isinstance(e, IntImm):
            raise CudaDriverError(f"buffer {buf.name}: dimension {d} is not known from {dims}")
        out.append(int(e.value))
    return tuple(out)


class Device:
    """One GPU seen through one launcher; subclasses implement the driver primitives."""

    launcher = ""

    def __init__(self, name: str, capability: tuple):
        self.name, self.capability = name, capability

    @property
    def arch(self) -> str:
        return f"sm_{self.capability[0]}{self.capability[1]}"

    def __repr__(self):
        return f"Device({self.name}, {self.arch}, via {self.launcher})"

    def load(self, cubin: bytes, kernel: CudaKernel) -> "Launcher":
        return Launcher(self, self.get_function(cubin, kernel.name), kernel)

    # driver primitives: alloc(nbytes) -> handle, pointer(handle) -> int, to_device(handle, array),
    # to_host(array, handle), free(handle), launch(func, grid, block, shared, pointers, scalars),
    # synchronize(), elapsed_ms(run) -> ms of device time for run()


class Launcher:
    """A loaded kernel: numpy inputs in, numpy outputs (the buffers after the inputs) out."""

    def __init__(self, device: Device, func, kernel: CudaKernel):
        self.device, self.func, self.kernel = device, func, kernel

    def _stage(self, inputs: list, dims: dict):
        params = self.kernel.params
        if len(inputs) >= len(params):
            raise CudaDriverError(f"{self.kernel.name}: {len(inputs)} inputs for {len(params)} buffers; the outputs must follow")
        arrays = []
        for buf, a in zip(params, inputs):
            expected = buffer_shape(buf, dims)
            a = np.ascontiguousarray(a, dtype=buf.dtype)
            if a.shape != expected:
                raise CudaDriverError(f"{self.kernel.name}: input {buf.name} has shape {a.shape}, expected {expected}")
            arrays.append(a)
        for buf in params[len(inputs):]:
            arrays.append(np.zeros(buffer_shape(buf, dims), dtype=buf.dtype))
        handles = [self.device.alloc(max(a.nbytes, 4)) for a in arrays]
        for h, a in zip(handles, arrays[:len(inputs)]):
            if a.nbytes:
                self.device.to_device(h, a)
        return arrays, handles

    def _launch(self, handles, dims: dict) -> None:
        grid, block = self.kernel.launch_dims(dims)
        if min(grid) == 0:
            return  # nothing to compute (a zero-sized dim)
        scalars = [int(dims[v]) for v in self.kernel.shape_vars]
        self.device.launch(self.func, grid, block, [self.device.pointer(h) for h in handles], scalars)

    def __call__(self, inputs: list, dims: dict) -> list:
        arrays, handles = self._stage(list(inputs), dims)
        try:
            self._launch(handles, dims)
            self.device.synchronize()
            outs = arrays[len(inputs):]
            for a, h in zip(outs, handles[len(inputs):]):
                if a.nbytes:
                    self.device.to_host(a, h)
            return outs
        finally:
            for h in handles:
                self.device.free(h)

    def benchmark(self, inputs: list, dims: dict, number: int = 20) -> float:
        """Seconds per launch, device-resident arguments, timed with CUDA events after a warm-up."""
        _, handles = self._stage(list(inputs), dims)
        try:
            self._launch(handles, dims)
            self.device.synchronize()

            def run():
                for _ in range(number):
                    self._launch(handles, dims)

            return self.device.elapsed_ms(run) / 1e3 / number
        finally:
            for h in handles:
                self.device.free(h)


# ------------------------------------------------------------------------------- cuda-python
class CudaPythonDevice(Device):
    launcher = "cuda-python"

    def __init__(self, ordinal: int = 0):
        try:
            from cuda.bindings import driver
        except ImportError:
            from cuda import cuda as driver  # cuda-python < 12.6
        self.drv = driver
        self._check(driver.cuInit(0), "cuInit")
        dev = self._check(driver.cuDeviceGet(ordinal), "cuDeviceGet")
        ctx = self._check(driver.cuDevicePrimaryCtxRetain(dev), "cuDevicePrimaryCtxRetain")
        self._check(driver.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
        attr = driver.CUdevice_attribute
        major = self._check(driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev), "attr")
        minor = self._check(driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev), "attr")
        name = self._check(driver.cuDeviceGetName(128, dev), "cuDeviceGetName")
        name = name.split(b"\0", 1)[0].decode() if isinstance(name, bytes) else str(name)
        self.modules = []  # keep loaded modules alive
        super().__init__(name, (int(major), int(minor)))

    def _check(self, result, what: str):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if err != self.drv.CUresult.CUDA_SUCCESS:
            _, msg = self.drv.cuGetErrorString(err)
            raise CudaDriverError(f"{what} failed: {err}: {msg.decode() if isinstance(msg, bytes) else msg}")
        return rest[0] if len(rest) == 1 else (tuple(rest) if rest else None)

    def get_function(self, cubin: bytes, name: str):
        module = self._check(self.drv.cuModuleLoadData(cubin), "cuModuleLoadData")
        self.modules.append(module)
        return self._check(self.drv.cuModuleGetFunction(module, name.encode()), f"cuModuleGetFunction({name})")

    def alloc(self, nbytes: int):
        return self._check(self.drv.cuMemAlloc(nbytes), f"cuMemAlloc({nbytes})")

    def pointer(self, handle) -> int:
        return int(handle)

    def to_device(self, handle, array) -> None:
        self._check(self.drv.cuMemcpyHtoD(handle, array.ctypes.data, array.nbytes), "cuMemcpyHtoD")

    def to_host(self, array, handle) -> None:
        self._check(self.drv.cuMemcpyDtoH(array.ctypes.data, handle, array.nbytes), "cuMemcpyDtoH")

    def free(self, handle) -> None:
        self._check(self.drv.cuMemFree(handle), "cuMemFree")

    def launch(self, func, grid, block, pointers, scalars) -> None:
        values = [ctypes.c_uint64(p) for p in pointers] + [ctypes.c_longlong(s) for s in scalars]
        argv = (ctypes.c_void_p * len(values))(*[ctypes.addressof(v) for v in values])
        self._check(self.drv.cuLaunchKernel(func, *grid, *block, 0, 0, ctypes.addressof(argv), 0), "cuLaunchKernel")

    def synchronize(self) -> None:
        self._check(self.drv.cuCtxSynchronize(), "cuCtxSynchronize")

    def elapsed_ms(self, run) -> float:
        start = self._check(self.drv.cuEventCreate(0), "cuEventCreate")
        end = self._check(self.drv.cuEventCreate(0), "cuEventCreate")
        self._check(self.drv.cuEventRecord(start, 0), "cuEventRecord")
        run()
        self._check(self.drv.cuEventRecord(end, 0), "cuEventRecord")
        self._check(self.drv.cuEventSynchronize(end), "cuEventSynchronize")
        ms = self._check(self.drv.cuEventElapsedTime(start, end), "cuEventElapsedTime")
        self.drv.cuEventDestroy(start)
        self.drv.cuEventDestroy(end)
        return float(ms)


# ------------------------------------------------------------------------------------ pycuda
class PyCudaDevice(Device):
    launcher = "pycuda"

    def __init__(self, ordinal: int = 0):
        import pycuda.driver as drv

        self.drv = drv
        drv.init()
        dev = drv.Device(ordinal)
        self.ctx = dev.retain_primary_context()
        self.ctx.push()
        self.modules = []
        super().__init__(dev.name(), dev.compute_capability())

    def get_function(self, cubin: bytes, name: str):
        module = self.drv.module_from_buffer(cubin)
        self.modules.append(module)
        return module.get_function(name)

    def alloc(self, nbytes: int):
        return self.drv.mem_alloc(nbytes)

    def pointer(self, handle) -> int:
        return int(handle)

    def to_device(self, handle, array) -> None:
        self.drv.memcpy_htod(handle, array)

    def to_host(self, array, handle) -> None:
        self.drv.memcpy_dtoh(array, handle)

    def free(self, handle) -> None:
        handle.free()

    def launch(self, func, grid, block, pointers, scalars) -> None:
        args = [np.uintp(p) for p in pointers] + [np.int64(s) for s in scalars]
        func(*args, grid=tuple(grid), block=tuple(block), shared=0)

    def synchronize(self) -> None:
        self.ctx.synchronize()

    def elapsed_ms(self, run) -> float:
        start, end = self.drv.Event(), self.drv.Event()
        start.record()
        run()
        end.record()
        end.synchronize()
        return float(end.time_since(start))


# -------------------------------------------------------------------------------------- cupy
class CupyDevice(Device):
    launcher = "cupy"

    def __init__(self, ordinal: int = 0):
        import cupy

        self.cp = cupy
        cupy.cuda.Device(ordinal).use()
        props = cupy.cuda.runtime.getDeviceProperties(ordinal)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        super().__init__(name, (int(props["major"]), int(props["minor"])))
        self.modules = []

    def get_function(self, cubin: bytes, name: str):
        module = self.cp.cuda.function.Module()
        module.load(cubin)
        self.modules.append(module)
        return module.get_function(name)

    def alloc(self, nbytes: int):
        return self.cp.cuda.alloc(nbytes)

    def pointer(self, handle) -> int:
        return int(handle.ptr)

    def to_device(self, handle, array) -> None:
        handle.copy_from_host(array.ctypes.data, array.nbytes)

    def to_host(self, array, handle) -> None:
        handle.copy_to_host(array.ctypes.data, array.nbytes)

    def free(self, handle) -> None:
        pass  # returned to cupy's pool when the MemoryPointer is dropped

    def launch(self, func, grid, block, pointers, scalars) -> None:
        args = tuple(np.uint64(p) for p in pointers) + tuple(np.int64(s) for s in scalars)
        func(tuple(grid), tuple(block), args, shared_mem=0)

    def synchronize(self) -> None:
        self.cp.cuda.Device().synchronize()

    def elapsed_ms(self, run) -> float:
        start, end = self.cp.cuda.Event(), self.cp.cuda.Event()
        start.record()
        run()
        end.record()
        end.synchronize()
        return float(self.cp.cuda.get_elapsed_time(start, end))


_DEVICE_CLASSES = {"pycuda": PyCudaDevice, "cuda-python": CudaPythonDevice, "cupy": CupyDevice}
_default = None


def open_device(launcher: str, ordinal: int = 0) -> Device:
    if launcher not in _DEVICE_CLASSES:
        raise CudaUnavailable(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    try:
        return _DEVICE_CLASSES[launcher](ordinal)
    except ImportError as exc:
        raise CudaUnavailable(f"{launcher} is not installed ({exc})") from None
    except CudaDriverError as exc:
        raise CudaUnavailable(f"{launcher}: no usable GPU: {exc}") from None
    except Exception as exc:  # the launchers' own error classes (pycuda.driver.Error, cupy's CUDARuntimeError)
        raise CudaUnavailable(f"{launcher}: no usable GPU: {type(exc).__name__}: {exc}") from None


def default_device() -> Device:
    """The GPU of this process through the first launcher that works (see the module docstring)."""
    global _default
    if _default is None:
        forced = os.environ.get("NIMBLE_CUDA_LAUNCHER")
        reasons = []
        for name in ([forced] if forced else LAUNCHERS):
            try:
                _default = open_device(name)
                break
            except CudaUnavailable as exc:
                reasons.append(str(exc))
        else:
            raise CudaUnavailable("no CUDA launcher found a GPU: " + "; ".join(reasons))
    return _default
