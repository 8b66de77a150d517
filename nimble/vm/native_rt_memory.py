"""The native VM runtime's memory: reference counting (``incref``/``decref``; ``nvm_release``
frees with a worklist, so a long list is freed without deep recursion), frame release and
unwinding, argument checks of kernel calls, and the storage pool (free lists per size class,
four classes per power of two as ``nimble.vm.storage``; blocks handed to Python come back
through an atomic deferred stack, so a numpy array released on another thread never races the VM)."""
from __future__ import annotations

import llvmlite.ir as ir

from . import native_layout as L
from .native_ir import I1, I32, I64, NULL, PTR, VOID, alloca, at, c32, c64, elem, load, loop, store
from .native_rt_helpers import function


class MemoryRuntime:
    """``Runtime``'s reference counting and pool (a mixin)."""

    # ------------------------------------------------------------ refcounting
    def _refcounting(self):
        m = self.m
        self.release, b = function(m, "nvm_release", VOID, [PTR, PTR], internal=False, inline=False)
        self.incref, ib = function(m, "nvm_incref", VOID, [PTR], inline=True)
        o = self.incref.args[0]
        ib.store(ib.add(ib.load(o, typ=I64), c64(1)), o)
        ib.ret_void()
        self.decref, db = function(m, "nvm_decref", VOID, [PTR, PTR], inline=False)
        ctx, o = self.decref.args
        with db.if_then(db.icmp_unsigned("!=", o, NULL)):
            rc = db.sub(db.load(o, typ=I64), c64(1))
            db.store(rc, o)
            with db.if_then(db.icmp_signed("==", rc, c64(0)), likely=False):
                db.call(self.release, [ctx, o])
        db.ret_void()
        self._emit_release(b)

        # every register of a frame released (function exits and unwinding)
        self.release_frame, b = function(m, "nvm_release_frame", VOID, [PTR, PTR, I64], inline=False)
        ctx, frame, n = self.release_frame.args
        def release(b, i):  # most registers are empty by then (released when dead): no call for those
            slot = elem(b, frame, i)
            v = b.load(slot, typ=PTR)
            with b.if_then(b.icmp_unsigned("!=", v, NULL)):
                b.store(NULL, slot)
                b.call(self.decref, [ctx, v])

        loop(b, n, release)
        b.ret_void()

        # an error left the function: record (function, pc) in the trace and release the frame
        self.unwind, b = function(m, "nvm_unwind", VOID, [PTR, PTR, I64, I64], inline=False)
        ctx, frame, n, where = self.unwind.args
        self.unwind.attributes.add("cold")
        count = load(b, ctx, L.C_TRACE_N, I32)
        with b.if_then(b.icmp_signed("<", count, c32(L.TRACE_SLOTS))):
            b.store(where, elem(b, at(b, ctx, L.C_TRACE), count, I64))
        store(b, b.add(count, c32(1)), ctx, L.C_TRACE_N)
        store(b, b.sub(load(b, ctx, L.C_DEPTH, I32), c32(1)), ctx, L.C_DEPTH)
        b.call(self.release_frame, [ctx, frame, n])
        b.ret_void()

        # -1 when every argument is a tensor of its (dtype code, rank) in ``table`` (-1: any), else its index
        self.check_args, b = function(m, "nvm_check_args", I32, [PTR, I64, PTR, I64], inline=False)
        argv, n, table, want_n = self.check_args.args
        with b.if_then(b.icmp_signed("!=", n, want_n), likely=False):
            b.ret(c32(0))

        def one(b, i):
            t = b.load(elem(b, argv, i), typ=PTR)
            want_dt = b.load(elem(b, table, b.mul(i, c64(2)), I32), typ=I32)
            want_nd = b.load(elem(b, table, b.add(b.mul(i, c64(2)), c64(1)), I32), typ=I32)
            with b.if_then(b.icmp_signed(">=", want_dt, c32(0))):
                with b.if_then(b.icmp_unsigned("==", t, NULL), likely=False):
                    b.ret(b.trunc(i, I32))
                ok = b.and_(b.icmp_signed("==", load(b, t, L.KIND, I32), c32(L.KIND_TENSOR)),
                            b.and_(b.icmp_signed("==", load(b, t, L.AUX, I32), want_dt),
                                   b.icmp_signed("==", load(b, t, L.T_NDIM, I32), want_nd)))
                with b.if_then(b.not_(ok), likely=False):
                    b.ret(b.trunc(i, I32))

        loop(b, n, one)
        b.ret(c32(-1))

        # the arguments of a failed call kept (new references) in ctx for the error message
        self.keep_args, b = function(m, "nvm_keep_args", VOID, [PTR, PTR, I64], inline=False)
        ctx, argv, n = self.keep_args.args
        keep = b.select(b.icmp_signed("<", n, c64(L.ERR_DETAIL_SLOTS - 1)), n, c64(L.ERR_DETAIL_SLOTS - 1))
        self.set_detail(b, ctx, 0, keep)

        def hold(b, i):
            v = b.load(elem(b, argv, i), typ=PTR)
            with b.if_then(b.icmp_unsigned("!=", v, NULL)):
                b.call(self.incref, [v])
            b.store(b.ptrtoint(v, I64), elem(b, at(b, ctx, L.C_ERR_DETAIL + 8), i, I64))

        loop(b, keep, hold)
        b.ret_void()

    def _emit_release(self, b: ir.IRBuilder) -> None:
        """Free an object whose count reached zero; ADTs and closures through a worklist."""
        fn = b.function
        ctx, obj = fn.args
        pool = load(b, ctx, L.C_POOL, PTR)
        head = alloca(b, PTR, name="worklist")
        b.store(NULL, head)
        cur = alloca(b, PTR, name="cur")
        b.store(obj, cur)
        top = fn.append_basic_block("top")
        b.branch(top)
        b.position_at_end(top)
        o = b.load(cur, typ=PTR)
        kind = load(b, o, L.KIND, I32)
        nxt = fn.append_basic_block("next")
        is_tensor, is_storage, is_compound = (fn.append_basic_block(n) for n in ("tensor", "storage", "compound"))
        sw = b.switch(kind, is_compound)
        sw.add_case(c32(L.KIND_TENSOR), is_tensor)
        sw.add_case(c32(L.KIND_STORAGE), is_storage)
        b.position_at_end(is_tensor)
        s = load(b, o, L.T_STORAGE, PTR)
        b.call(self.free, [o])
        with b.if_then(b.icmp_unsigned("!=", s, NULL)):
            rc = b.sub(b.load(s, typ=I64), c64(1))
            b.store(rc, s)
            with b.if_then(b.icmp_signed("==", rc, c64(0))):
                b.call(self.pool_return, [pool, s])
        b.branch(nxt)
        b.position_at_end(is_storage)
        b.call(self.pool_return, [pool, o])
        b.branch(nxt)
        b.position_at_end(is_compound)
        count = load(b, o, L.O_COUNT, I64)

        def field(b, i):
            f = b.load(elem(b, at(b, o, L.O_FIELDS), i), typ=PTR)
            with b.if_then(b.icmp_unsigned("!=", f, NULL)):
                rc = b.sub(b.load(f, typ=I64), c64(1))
                b.store(rc, f)
                with b.if_then(b.icmp_signed("==", rc, c64(0))):
                    fk = load(b, f, L.KIND, I32)
                    simple = b.icmp_unsigned("<=", fk, c32(L.KIND_STORAGE))
                    with b.if_else(simple) as (then, other):
                        with then:
                            b.call(self.release, [ctx, f])  # a tensor or storage: one level deep
                        with other:
                            store(b, b.load(head, typ=PTR), f, L.O_NEXT)
                            b.store(f, head)

        loop(b, count, field)
        b.call(self.free, [o])
        b.branch(nxt)
        b.position_at_end(nxt)
        h = b.load(head, typ=PTR)
        done = fn.append_basic_block("done")
        more = fn.append_basic_block("more")
        b.cbranch(b.icmp_unsigned("==", h, NULL), done, more)
        b.position_at_end(more)
        b.store(load(b, h, L.O_NEXT, PTR), head)
        b.store(h, cur)
        b.branch(top)
        b.position_at_end(done)
        b.ret_void()

    # ------------------------------------------------------------------ pool
    def _pool(self):
        m = self.m
        self.pool_return, b = function(m, "nvm_pool_return", VOID, [PTR, PTR], internal=False, inline=False)
        pool, s = self.pool_return.args
        cls = load(b, s, L.S_CLASS, I64)
        cap = load(b, s, L.S_CAP, I64)
        self._stat_add(b, pool, "bytes_in_use", b.neg(cap))
        self._stat_add(b, pool, "bytes_requested", b.neg(load(b, s, L.S_NBYTES, I64)))
        with b.if_else(b.icmp_signed("<", cls, c64(0))) as (unpooled, pooled):
            with unpooled:
                b.call(self.free, [load(b, s, L.S_RAW, PTR)])
                b.call(self.free, [s])
            with pooled:
                slot = elem(b, pool, cls)
                store(b, b.load(slot, typ=PTR), s, L.S_NEXT)
                b.store(s, slot)
                self._stat_add(b, pool, "bytes_free", cap)
        b.ret_void()

        self.alloc_storage_n, b = function(m, "nvm_alloc_storage_n", PTR, [PTR, I64, I64], inline=False)
        ctx, nbytes, align = self.alloc_storage_n.args
        fn = self.alloc_storage_n
        pool = load(b, ctx, L.C_POOL, PTR)
        neg = fn.append_basic_block("negative")
        ok = fn.append_basic_block("ok")
        b.cbranch(b.icmp_signed("<", nbytes, c64(0)), neg, ok)
        b.position_at_end(neg)
        self.set_error(b, ctx, L.E_SHAPE, 1)
        self.set_detail(b, ctx, 0, nbytes)
        b.ret(NULL)
        b.position_at_end(ok)
        # size class: 64 bytes, then 4 steps per power of two (as nimble.vm.storage.size_class)
        bits = b.sub(c64(64), b.call(self.ctlz, [nbytes, ir.Constant(I1, 0)]))
        shift = b.select(b.icmp_signed(">", bits, c64(3)), b.sub(bits, c64(3)), c64(0))
        step_m1 = b.sub(b.shl(c64(1), shift), c64(1))
        q = b.lshr(b.add(nbytes, step_m1), shift)
        small = b.icmp_signed("<=", nbytes, c64(64))
        cap = b.select(small, c64(64), b.shl(q, shift))
        cls = b.select(small, c64(0), b.add(c64(1), b.add(b.mul(b.sub(bits, c64(7)), c64(4)), b.sub(q, c64(4)))))
        big_align = b.icmp_unsigned(">", align, c64(64))
        cls = b.select(big_align, c64(-1), cls)
        result = alloca(b, PTR, name="storage")
        reuse = fn.append_basic_block("reuse")
        fresh = fn.append_basic_block("fresh")
        done = fn.append_basic_block("done")
        slot = elem(b, pool, b.select(big_align, c64(0), cls))
        head = b.load(slot, typ=PTR)
        b.cbranch(b.and_(b.not_(big_align), b.icmp_unsigned("!=", head, NULL)), reuse, fresh)
        b.position_at_end(reuse)
        b.store(load(b, head, L.S_NEXT, PTR), slot)
        self._stat_add(b, pool, "bytes_free", b.neg(cap))
        self._stat_add(b, pool, "pool_reuses", c64(1))
        b.store(head, result)
        b.branch(done)
        b.position_at_end(fresh)
        raw_slot = alloca(b, PTR, name="raw")
        a = b.select(big_align, align, c64(64))
        rcode = b.call(self.memalign, [raw_slot, a, b.select(big_align, nbytes, cap)])
        s = b.call(self.malloc, [c64(L.STORAGE_SIZE)])
        failed = b.or_(b.icmp_signed("!=", rcode, c32(0)), b.icmp_unsigned("==", s, NULL))
        with b.if_then(failed, likely=False):
            with b.if_then(b.icmp_signed("==", rcode, c32(0))):
                b.call(self.free, [b.load(raw_slot, typ=PTR)])
            b.call(self.free, [s])  # free(NULL) is a no-op
            self.set_error(b, ctx, L.E_ALLOC)
            self.set_detail(b, ctx, 0, nbytes)
            b.ret(NULL)
        raw = b.load(raw_slot, typ=PTR)
        store(b, c32(L.KIND_STORAGE), s, L.KIND)
        store(b, c32(0), s, L.AUX)
        store(b, raw, s, L.S_DATA)
        store(b, raw, s, L.S_RAW)
        store(b, b.select(big_align, nbytes, cap), s, L.S_CAP)
        store(b, pool, s, L.S_POOL)
        store(b, cls, s, L.S_CLASS)
        self._stat_add(b, pool, "system_allocations", c64(1))
        b.store(s, result)
        b.branch(done)
        b.position_at_end(done)
        s = b.load(result, typ=PTR)
        store(b, c64(1), s, L.RC)
        store(b, nbytes, s, L.S_NBYTES)
        capv = load(b, s, L.S_CAP, I64)
        self._stat_add(b, pool, "storage_allocations", c64(1))
        in_use = self._stat_add(b, pool, "bytes_in_use", capv)
        self._stat_max(b, pool, "peak_bytes_in_use", in_use)
        req = self._stat_add(b, pool, "bytes_requested", nbytes)
        self._stat_max(b, pool, "peak_bytes_requested", req)
        b.ret(s)

        # drain the blocks Python handed back (outputs released, possibly on another thread)
        self.pool_drain, b = function(m, "nvm_pool_drain", VOID, [PTR], internal=False)
        pool = self.pool_drain.args[0]
        lst = b.atomic_rmw("xchg", at(b, pool, L.P_DEFERRED), NULL, "acq_rel")
        _each_storage(b, lst, lambda b, c: b.call(self.pool_return, [pool, c]))
        b.ret_void()

        # Python releases a storage it viewed: the last reference pushes it onto the deferred stack
        self.storage_release, b = function(m, "nvm_storage_release", VOID, [PTR], internal=False)
        s = self.storage_release.args[0]
        rc = b.sub(b.load(s, typ=I64), c64(1))
        b.store(rc, s)
        with b.if_then(b.icmp_signed("==", rc, c64(0))):
            pool = load(b, s, L.S_POOL, PTR)
            fn = self.storage_release
            retry = fn.append_basic_block("retry")
            out = fn.append_basic_block("pushed")
            b.branch(retry)
            b.position_at_end(retry)
            slot = at(b, pool, L.P_DEFERRED)
            old = b.load(slot, typ=PTR)
            store(b, old, s, L.S_NEXT)
            pair = b.cmpxchg(slot, old, s, "acq_rel", "monotonic")
            b.cbranch(b.extract_value(pair, 1), out, retry)
            b.position_at_end(out)
        b.ret_void()

        # free every cached block (and, with ``all``, nothing else: live blocks belong to tensors)
        self.pool_release_free, b = function(m, "nvm_pool_release_free", I64, [PTR], internal=False)
        pool = self.pool_release_free.args[0]
        b.call(self.pool_drain, [pool])
        released = load(b, pool, L.P_STATS + 8 * L.POOL_STATS.index("bytes_free"), I64)

        def free_block(b, c):
            b.call(self.free, [load(b, c, L.S_RAW, PTR)])
            b.call(self.free, [c])

        def clear(b, i):
            slot = elem(b, pool, i)
            _each_storage(b, b.load(slot, typ=PTR), free_block)
            b.store(NULL, slot)

        loop(b, c64(L.POOL_CLASSES), clear)
        store(b, c64(0), pool, L.P_STATS + 8 * L.POOL_STATS.index("bytes_free"))
        b.ret(released)

    def _stat_add(self, b, pool, name: str, delta):
        p = at(b, pool, L.P_STATS + 8 * L.POOL_STATS.index(name))
        v = b.add(b.load(p, typ=I64), delta)
        b.store(v, p)
        return v

    def _stat_max(self, b, pool, name: str, value) -> None:
        p = at(b, pool, L.P_STATS + 8 * L.POOL_STATS.index(name))
        old = b.load(p, typ=I64)
        b.store(b.select(b.icmp_signed(">", value, old), value, old), p)


def _each_storage(b: ir.IRBuilder, first, body) -> None:
    """``body(b, storage)`` for each storage of the list linked through ``S_NEXT`` from ``first``
    (the next link is read before ``body`` runs, so it may free or relink the storage)."""
    fn = b.function
    cur = alloca(b, PTR)
    b.store(first, cur)
    head, blk, done = (fn.append_basic_block(n) for n in ("list.head", "list.body", "list.done"))
    b.branch(head)
    b.position_at_end(head)
    c = b.load(cur, typ=PTR)
    b.cbranch(b.icmp_unsigned("==", c, NULL), done, blk)
    b.position_at_end(blk)
    b.store(load(b, c, L.S_NEXT, PTR), cur)
    body(b, c)
    b.branch(head)
    b.position_at_end(done)
