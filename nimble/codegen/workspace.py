"""Kernel scratch memory: what a generated kernel calls instead of malloc and free for its temporaries.

    void *nimble_workspace_alloc_v1(i64 nbytes)    (NULL when memory is exhausted)
    void nimble_workspace_free_v1(void *ptr)

A kernel's temporaries (attention's scores and probabilities, packed operands) are allocated and freed on every
call. Through glibc, blocks of a few hundred KiB come from the top of the heap or from mmap, and free returns
them to the system once the free top passes the trim threshold, so the next call takes a page fault for every
4 KiB of them again: BERT-base's attention alone at 128 tokens ran 1.1 ms instead of 0.47 ms when its
temporaries crossed that line (1 thread, Xeon guest), depending on what else the process had allocated.

Blocks of ``CACHE_MIN_BYTES`` or more go back to a small cache of ``SLOTS`` blocks instead, and an allocation
takes the smallest cached block that is big enough (best fit over the capacities, then an atomic exchange of
the slot; a block taken from under another thread's choice is checked against its own header). Sizes are
rounded up to ``ROUND_BYTES`` so that a sequence a little longer than the last reuses its blocks. Blocks are
64-byte aligned (``aligned_alloc``) with their capacity in a 64-byte header. The cache holds at most ``SLOTS``
blocks of at most ``CACHE_MAX_BYTES`` each; ``release()`` frees them. Smaller blocks go straight to the system,
64-byte aligned too (AMX tile loads of rows that straddle cache lines ran at a third of the speed).

The functions are emitted into the parallel runtime's module (one object, registered and saved with it).
"""
from __future__ import annotations

from llvmlite import ir

ALLOC_ENTRY = "nimble_workspace_alloc_v1"
FREE_ENTRY = "nimble_workspace_free_v1"
RELEASE_ENTRY = "nimble_workspace_release_v1"
STATS_ENTRY = "nimble_workspace_stats_v1"
STATS = ("hits", "misses", "cached_frees", "system_frees")
SLOTS = 16
HEADER_BYTES = 64
CACHE_MIN_BYTES = 64 << 10
CACHE_MAX_BYTES = 256 << 20
ROUND_BYTES = 64 << 10

I1, I64 = ir.IntType(1), ir.IntType(64)
PTR = ir.PointerType()


def _c(v):
    return ir.Constant(I64, v)


class _Workspace:
    def __init__(self, module: ir.Module):
        self.m = module
        self.slots = self._global("slots", ir.ArrayType(PTR, SLOTS))
        self.caps = self._global("caps", ir.ArrayType(I64, SLOTS))
        self.stats = [self._global("stat_" + s, I64) for s in STATS]
        self.aligned_alloc = self._extern("aligned_alloc", PTR, [I64, I64])
        self.free = self._extern("free", ir.VoidType(), [PTR])
        self._alloc()
        self._free()
        self._release()
        self._stats()

    def _global(self, name, ty):
        gv = ir.GlobalVariable(self.m, ty, "nimble_ws_" + name)
        gv.linkage = "internal"
        gv.initializer = ir.Constant(ty, None)
        gv.align = 64
        return gv

    def _extern(self, name, ret, args):
        fn = self.m.globals.get(name)
        return fn if fn is not None else ir.Function(self.m, ir.FunctionType(ret, args), name)

    def _fn(self, name, ret, args):
        fn = ir.Function(self.m, ir.FunctionType(ret, args), name)
        return fn, ir.IRBuilder(fn.append_basic_block("entry"))

    def _slot(self, b, i):
        return b.gep(self.slots, [_c(0), i if isinstance(i, ir.Value) else _c(i)], inbounds=True)

    def _cap(self, b, i):
        return b.gep(self.caps, [_c(0), i if isinstance(i, ir.Value) else _c(i)], inbounds=True)

    def _count(self, b, name):
        b.atomic_rmw("add", self.stats[STATS.index(name)], _c(1), "monotonic")

    def _alloc(self):
        fn, b = self._fn(ALLOC_ENTRY, PTR, [I64])
        (nbytes,) = fn.args
        small, look, take, check, hit, wrong, fresh, got, failed = (
            fn.append_basic_block(n) for n in ("small", "look", "take", "check", "hit", "wrong", "fresh", "got",
                                               "failed"))
        b.cbranch(b.icmp_signed("<", nbytes, _c(CACHE_MIN_BYTES)), small, look)

        b.position_at_end(small)  # header + block, 64-byte aligned (the header keeps it so) like the cached ones
        whole = b.add(nbytes, _c(HEADER_BYTES + 63))
        p = b.call(self.aligned_alloc, [_c(64), b.and_(whole, _c(-64))])
        ok_small = fn.append_basic_block("small_ok")
        b.cbranch(b.icmp_unsigned("==", p, ir.Constant(PTR, None)), failed, ok_small)
        b.position_at_end(ok_small)
        b.store(nbytes, p)
        b.ret(b.gep(p, [_c(HEADER_BYTES)], source_etype=ir.IntType(8)))

        b.position_at_end(look)  # best fit over the cached capacities
        best, best_cap = _c(-1), _c(-1)  # -1 as unsigned: larger than any capacity
        for i in range(SLOTS):
            cap = b.load_atomic(self._cap(b, i), "monotonic", 8, typ=I64)
            better = b.and_(b.icmp_unsigned(">=", cap, nbytes), b.icmp_unsigned("<", cap, best_cap))
            best = b.select(better, _c(i), best)
            best_cap = b.select(better, cap, best_cap)
        b.cbranch(b.icmp_signed(">=", best, _c(0)), take, fresh)

        b.position_at_end(take)
        block = b.atomic_rmw("xchg", self._slot(b, best), ir.Constant(PTR, None), "acq_rel")
        b.store_atomic(_c(0), self._cap(b, best), "monotonic", 8)  # the slot is empty (or was already)
        b.cbranch(b.icmp_unsigned("==", block, ir.Constant(PTR, None)), fresh, check)
        b.position_at_end(check)  # another thread may have swapped the slot's block since the capacities were read
        cap = b.load(block, typ=I64)
        b.cbranch(b.icmp_unsigned(">=", cap, nbytes), hit, wrong)
        b.position_at_end(hit)
        self._count(b, "hits")
        b.ret(b.gep(block, [_c(HEADER_BYTES)], source_etype=ir.IntType(8)))
        b.position_at_end(wrong)
        b.call(self.free, [block])
        b.branch(fresh)

        b.position_at_end(fresh)
        self._count(b, "misses")
        rounded = b.mul(b.udiv(b.add(nbytes, _c(ROUND_BYTES - 1)), _c(ROUND_BYTES)), _c(ROUND_BYTES))
        p = b.call(self.aligned_alloc, [_c(64), b.add(rounded, _c(HEADER_BYTES))])
        b.cbranch(b.icmp_unsigned("==", p, ir.Constant(PTR, None)), failed, got)
        b.position_at_end(got)
        b.store(rounded, p)
        b.ret(b.gep(p, [_c(HEADER_BYTES)], source_etype=ir.IntType(8)))

        b.position_at_end(failed)
        b.ret(ir.Constant(PTR, None))

    def _free(self):
        fn, b = self._fn(FREE_ENTRY, ir.VoidType(), [PTR])
        (q,) = fn.args
        body, done, system = (fn.append_basic_block(n) for n in ("body", "done", "system"))
        b.cbranch(b.icmp_unsigned("==", q, ir.Constant(PTR, None)), done, body)
        b.position_at_end(body)
        block = b.gep(q, [_c(-HEADER_BYTES)], source_etype=ir.IntType(8))
        cap = b.load(block, typ=I64)
        cacheable = b.and_(b.icmp_unsigned(">=", cap, _c(CACHE_MIN_BYTES)), b.icmp_unsigned("<=", cap, _c(CACHE_MAX_BYTES)))
        first = fn.append_basic_block("slot0")
        b.cbranch(cacheable, first, system)
        here = first
        for i in range(SLOTS):
            b.position_at_end(here)
            stored = fn.append_basic_block(f"stored{i}")
            nxt = fn.append_basic_block(f"slot{i + 1}") if i + 1 < SLOTS else system
            ok = b.extract_value(b.cmpxchg(self._slot(b, i), ir.Constant(PTR, None), block, "acq_rel", "monotonic"), 1)
            b.cbranch(ok, stored, nxt)
            b.position_at_end(stored)
            b.store_atomic(cap, self._cap(b, i), "monotonic", 8)
            self._count(b, "cached_frees")
            b.ret_void()
            here = nxt
        b.position_at_end(system)
        self._count(b, "system_frees")
        b.call(self.free, [block])
        b.ret_void()
        b.position_at_end(done)
        b.ret_void()

    def _release(self):
        """``i64 nimble_workspace_release_v1()``: free every cached block; returns the bytes freed."""
        fn, b = self._fn(RELEASE_ENTRY, I64, [])
        total = _c(0)
        for i in range(SLOTS):
            block = b.atomic_rmw("xchg", self._slot(b, i), ir.Constant(PTR, None), "acq_rel")
            present = b.icmp_unsigned("!=", block, ir.Constant(PTR, None))
            with b.if_then(present):
                b.call(self.free, [block])
            cap = b.load_atomic(self._cap(b, i), "monotonic", 8, typ=I64)
            total = b.add(total, b.select(present, cap, _c(0)))
        b.ret(total)

    def _stats(self):
        """``void nimble_workspace_stats_v1(i64 *out)``: the counters of ``STATS``, in that order."""
        fn, b = self._fn(STATS_ENTRY, ir.VoidType(), [PTR])
        for i, slot in enumerate(self.stats):
            b.store(b.load_atomic(slot, "monotonic", 8, typ=I64), b.gep(fn.args[0], [_c(i)], source_etype=I64))
        b.ret_void()


def emit(module: ir.Module) -> None:
    """Add the workspace functions (external: ``ALLOC_ENTRY``, ``FREE_ENTRY``, ``RELEASE_ENTRY``, ``STATS_ENTRY``)
    to ``module``."""
    _Workspace(module)


def _address(name: str) -> int:
    from . import parallel

    parallel.register()
    return parallel.runtime_address(name)


def stats() -> dict:
    """Counts since the process started: cached blocks handed out (``hits``), fresh allocations of cacheable size
    (``misses``), frees kept in the cache (``cached_frees``) and frees passed to the system (``system_frees``:
    the cache was full, or the block too big)."""
    import ctypes

    out = (ctypes.c_int64 * len(STATS))()
    ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_address(STATS_ENTRY))(out)
    return dict(zip(STATS, out))


def release() -> int:
    """Free every cached block now; returns the bytes freed (their capacities)."""
    import ctypes

    return ctypes.CFUNCTYPE(ctypes.c_int64)(_address(RELEASE_ENTRY))()
