"""The native VM's storage pool as Python sees it (statistics, release of cached blocks) and the
lease that ties a native storage to the numpy arrays viewing it."""
from __future__ import annotations

import ctypes as _c

from . import native_layout as L

_libc_handle: list = []




def _libc():
    if not _libc_handle:
        libc = _c.CDLL(None)
        libc.free.argtypes = [_c.c_void_p]
        libc.free.restype = None
        _libc_handle.append(libc)
    return _libc_handle[0]


class StoragePool:
    """The VM's storage pool; outlives the VM while arrays still view its blocks."""

    def __init__(self, program):
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


class Lease:
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
