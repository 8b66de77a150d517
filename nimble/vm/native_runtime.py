"""The native VM's runtime, emitted as LLVM IR into every native program's module.

Reference counting (``incref``/``decref`` inline, ``nvm_release`` frees with a worklist, so a
long list is freed without deep recursion), the storage pool (free lists per size class, four
classes per power of two as ``nimble.vm.storage``; blocks handed to Python come back through
an atomic deferred stack, so a numpy array released on another thread never races the VM),
tensor, ADT and closure constructors, scalar reads for ``if``, and the entry points Python
calls once per run: building the inputs and describing the outputs.

Errors set ``ctx.err_code`` (and details) and make the function return null or nonzero; the
generated VM code unwinds from there.
"""
from __future__ import annotations

import llvmlite.ir as ir

from . import native_layout as L
import hashlib
import threading

from .native_ir import (
    F16, F32, F64, I1, I8, I16, I32, I64, NULL, PTR, VOID, alloca, at, c32, c64, const_array, declare, elem, load, loop,
    store,
)
from .native_ir import function as _function

PREFIX = "nvm_"


def function(module, name, ret, args, internal: bool = False, inline=None):
    """Runtime functions are exported: programs link against them by (versioned) name."""
    return _function(module, name, ret, args, internal=False, inline=inline)


def set_error(b: ir.IRBuilder, ctx, code: int, status=None) -> None:
    store(b, c32(code), ctx, L.C_ERR_CODE)
    if status is not None:
        store(b, status if not isinstance(status, int) else c32(status), ctx, L.C_ERR_STATUS)


def set_detail(b: ir.IRBuilder, ctx, slot: int, value) -> None:
    store(b, value, ctx, L.C_ERR_DETAIL + 8 * slot)


class Runtime:
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
        sizes = [0] * 16
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
        fn = self.check_args

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

    # ------------------------------------------------------------------ tensors
    def _new_tensor(self, b, ctx, dtype, ndim):
        """A fresh tensor descriptor (refcount 1, no storage); returns null from the function on failure."""
        return self._new_tensor_or(b, ctx, dtype, ndim, ir.Constant(b.function.function_type.return_type, None))

    def _is_tensor(self, b, t):
        nonnull = b.icmp_unsigned("!=", t, NULL)
        kind = load(b, b.select(nonnull, t, b.function.args[0]), L.KIND, I32)  # ctx's first word is a pointer
        return b.and_(nonnull, b.icmp_signed("==", kind, c32(L.KIND_TENSOR)))

    def _fail(self, b, ctx, code, status=0, *details):
        self.set_error(b, ctx, code, status)
        for k, d in enumerate(details):
            self.set_detail(b, ctx, k, d)
        b.ret(ir.Constant(b.function.function_type.return_type, None))

    def _elements(self, b, ctx, shape_ptr, ndim):
        """Element count of a shape (i64 array): (count, ok) with negative dims and overflow rejected."""
        acc = alloca(b, I64)
        okp = alloca(b, I1)
        b.store(c64(1), acc)
        b.store(ir.Constant(I1, 1), okp)

        def step(b, i):
            d = b.load(elem(b, shape_ptr, i, I64), typ=I64)
            prod = b.call(self.smul, [b.load(acc, typ=I64), d])
            bad = b.or_(b.icmp_signed("<", d, c64(0)), b.extract_value(prod, 1))
            b.store(b.and_(b.load(okp, typ=I1), b.not_(bad)), okp)
            b.store(b.extract_value(prod, 0), acc)

        loop(b, b.zext(ndim, I64), step, "dim")
        return b.load(acc, typ=I64), b.load(okp, typ=I1)

    def _tensors(self):
        m = self.m
        # a tensor viewing a storage: shape copied from an i64 array
        self.tensor_in, b = function(m, "nvm_tensor_in", PTR, [PTR, PTR, I64, I32, I64, I32, PTR], inline=False)
        ctx, s, offset, dtype, itemsize, ndim, shape = self.tensor_in.args
        nonnull = b.icmp_unsigned("!=", s, NULL)
        skind = load(b, b.select(nonnull, s, ctx), L.KIND, I32)
        with b.if_then(b.not_(b.and_(nonnull, b.icmp_signed("==", skind, c32(L.KIND_STORAGE)))), likely=False):
            self._fail(b, ctx, L.E_ARG, 1)
        with b.if_then(b.icmp_unsigned(">", ndim, c32(L.MAX_RANK)), likely=False):
            self._fail(b, ctx, L.E_SHAPE, 4, b.zext(ndim, I64))
        count, ok = self._elements(b, ctx, shape, ndim)
        nbytes = b.call(self.smul, [count, itemsize])
        ok = b.and_(ok, b.not_(b.extract_value(nbytes, 1)))
        nbytes = b.extract_value(nbytes, 0)
        with b.if_then(b.not_(ok), likely=False):
            self._fail(b, ctx, L.E_SHAPE, 2, c64(0))
        cap = load(b, s, L.S_NBYTES, I64)
        end = b.add(offset, nbytes)
        past = b.or_(b.icmp_signed("<", offset, c64(0)), b.icmp_signed(">", end, cap))
        with b.if_then(past, likely=False):
            self._fail(b, ctx, L.E_SHAPE, 3, nbytes, offset, cap)
        t = self._new_tensor(b, ctx, dtype, ndim)
        b.call(self.memcpy, [at(b, t, L.T_SHAPE), shape, b.mul(b.zext(ndim, I64), c64(8)), ir.Constant(I1, 0)])
        store(b, at(b, load(b, s, L.S_DATA, PTR), offset), t, L.T_DATA)
        store(b, s, t, L.T_STORAGE)
        b.call(self.incref, [s])
        b.ret(t)

        # the shape read from a 1-D int64 tensor register
        self.tensor_in_reg, b = function(m, "nvm_tensor_in_reg", PTR, [PTR, PTR, I64, I32, I64, PTR], inline=False)
        ctx, s, offset, dtype, itemsize, st = self.tensor_in_reg.args
        ok = self._is_tensor(b, st)
        with b.if_then(b.not_(ok), likely=False):
            self._fail(b, ctx, L.E_ARG, 2)
        good = b.and_(b.icmp_signed("==", load(b, st, L.AUX, I32), c32(L.DTYPE_CODE["int64"])),
                      b.icmp_signed("==", load(b, st, L.T_NDIM, I32), c32(1)))
        with b.if_then(b.not_(good), likely=False):
            self._fail(b, ctx, L.E_ARG, 2)
        rank = load(b, st, L.T_SHAPE, I64)
        with b.if_then(b.icmp_unsigned(">", rank, c64(L.MAX_RANK)), likely=False):
            self._fail(b, ctx, L.E_SHAPE, 4, rank)
        b.ret(b.call(self.tensor_in, [ctx, s, offset, dtype, itemsize, b.trunc(rank, I32), load(b, st, L.T_DATA, PTR)]))

        # shape_of: a 1-D int64 tensor with its data inline
        self.shape_of, b = function(m, "nvm_shape_of", PTR, [PTR, PTR], inline=False)
        ctx, t = self.shape_of.args
        with b.if_then(b.not_(self._is_tensor(b, t)), likely=False):
            self._fail(b, ctx, L.E_ARG, 3)
        r = self._new_tensor(b, ctx, c32(L.DTYPE_CODE["int64"]), c32(1))
        nd = load(b, t, L.T_NDIM, I32)
        store(b, b.zext(nd, I64), r, L.T_SHAPE)
        store(b, c32(L.T_FLAG_INLINE), r, L.T_FLAGS)
        store(b, at(b, r, L.T_INLINE), r, L.T_DATA)
        b.call(self.memcpy, [at(b, r, L.T_INLINE), at(b, t, L.T_SHAPE), b.mul(b.zext(nd, I64), c64(8)),
                             ir.Constant(I1, 0)])
        b.ret(r)

        # reshape_tensor: a view with the shape held in a register (same element count)
        self.reshape, b = function(m, "nvm_reshape", PTR, [PTR, PTR, PTR], inline=False)
        ctx, t, st = self.reshape.args
        with b.if_then(b.not_(b.and_(self._is_tensor(b, t), self._is_tensor(b, st))), likely=False):
            self._fail(b, ctx, L.E_ARG, 4)
        good = b.and_(b.icmp_signed("==", load(b, st, L.AUX, I32), c32(L.DTYPE_CODE["int64"])),
                      b.icmp_signed("==", load(b, st, L.T_NDIM, I32), c32(1)))
        rank = load(b, st, L.T_SHAPE, I64)
        good = b.and_(good, b.icmp_unsigned("<=", rank, c64(L.MAX_RANK)))
        with b.if_then(b.not_(good), likely=False):
            self._fail(b, ctx, L.E_ARG, 4)
        old, ok1 = self._elements(b, ctx, at(b, t, L.T_SHAPE), load(b, t, L.T_NDIM, I32))
        new, ok2 = self._elements(b, ctx, load(b, st, L.T_DATA, PTR), b.trunc(rank, I32))
        with b.if_then(b.not_(b.and_(b.and_(ok1, ok2), b.icmp_signed("==", old, new))), likely=False):
            pair = alloca(b, PTR, c32(2))
            b.store(t, pair)
            b.store(st, elem(b, pair, 1))
            b.call(self.keep_args, [ctx, pair, c64(2)])
            self._fail(b, ctx, L.E_SHAPE, 5)
        r = self._new_tensor(b, ctx, load(b, t, L.AUX, I32), b.trunc(rank, I32))
        b.call(self.memcpy, [at(b, r, L.T_SHAPE), load(b, st, L.T_DATA, PTR), b.mul(rank, c64(8)), ir.Constant(I1, 0)])
        flags = load(b, t, L.T_FLAGS, I32)
        store(b, flags, r, L.T_FLAGS)
        store(b, load(b, t, L.T_OWNER, I64), r, L.T_OWNER)
        with b.if_else(b.icmp_signed("==", flags, c32(L.T_FLAG_INLINE))) as (inline, view):
            with inline:
                b.call(self.memcpy, [at(b, r, L.T_INLINE), at(b, t, L.T_INLINE), c64(8 * L.MAX_RANK), ir.Constant(I1, 0)])
                store(b, at(b, r, L.T_INLINE), r, L.T_DATA)
            with view:
                store(b, load(b, t, L.T_DATA, PTR), r, L.T_DATA)
                s = load(b, t, L.T_STORAGE, PTR)
                store(b, s, r, L.T_STORAGE)
                with b.if_then(b.icmp_unsigned("!=", s, NULL)):
                    b.call(self.incref, [s])
        b.ret(r)

        # device_copy (CPU to CPU): a copy in a new storage
        self.copy, b = function(m, "nvm_copy", PTR, [PTR, PTR], inline=False)
        ctx, t = self.copy.args
        with b.if_then(b.not_(self._is_tensor(b, t)), likely=False):
            self._fail(b, ctx, L.E_ARG, 5)
        dtype = load(b, t, L.AUX, I32)
        itemsize = b.load(b.gep(self.itemsizes, [c64(0), b.zext(b.and_(dtype, c32(15)), I64)]), typ=I64)
        nd = load(b, t, L.T_NDIM, I32)
        count, _ = self._elements(b, ctx, at(b, t, L.T_SHAPE), nd)
        nbytes = b.mul(count, itemsize)
        s = b.call(self.alloc_storage_n, [ctx, nbytes, c64(64)])
        with b.if_then(b.icmp_unsigned("==", s, NULL), likely=False):
            b.ret(NULL)
        r = b.call(self.tensor_in, [ctx, s, c64(0), dtype, itemsize, nd, at(b, t, L.T_SHAPE)])
        b.call(self.decref, [ctx, s])
        with b.if_then(b.icmp_unsigned("==", r, NULL), likely=False):
            b.ret(NULL)
        b.call(self.memcpy, [load(b, r, L.T_DATA, PTR), load(b, t, L.T_DATA, PTR), nbytes, ir.Constant(I1, 0)])
        b.ret(r)

        # a 0-d int64 tensor holding ``value`` inline
        self.int_scalar, b = function(m, "nvm_int_scalar", PTR, [PTR, I64], internal=False, inline=False)
        ctx, value = self.int_scalar.args
        r = self._new_tensor(b, ctx, c32(L.DTYPE_CODE["int64"]), c32(0))
        store(b, c32(L.T_FLAG_INLINE), r, L.T_FLAGS)
        store(b, at(b, r, L.T_INLINE), r, L.T_DATA)
        store(b, value, r, L.T_INLINE)
        b.ret(r)

    # ------------------------------------------------------------------ ADTs and closures
    def _objects(self):
        m = self.m
        self.compound, b = function(m, "nvm_compound", PTR, [PTR, I32, I32, I64, PTR], inline=False)
        ctx, kind, aux, n, fields = self.compound.args
        o = b.call(self.malloc, [b.add(c64(L.O_FIELDS), b.mul(n, c64(8)))])
        with b.if_then(b.icmp_unsigned("==", o, NULL), likely=False):
            self._fail(b, ctx, L.E_ALLOC, 0, b.mul(n, c64(8)))
        store(b, c64(1), o, L.RC)
        store(b, kind, o, L.KIND)
        store(b, aux, o, L.AUX)
        store(b, NULL, o, L.O_NEXT)
        store(b, n, o, L.O_COUNT)

        def put(b, i):
            f = b.load(elem(b, fields, i), typ=PTR)
            b.store(f, elem(b, at(b, o, L.O_FIELDS), i))
            with b.if_then(b.icmp_unsigned("!=", f, NULL)):
                b.call(self.incref, [f])

        loop(b, n, put)
        b.ret(o)

    # ------------------------------------------------------------------ scalars (for ``if``)
    def _scalars(self):
        m = self.m
        # 0: an integer in *i, 1: a float in *f, -1: not a one-element tensor of a known dtype
        self.read_scalar, b = function(m, "nvm_read_scalar", I32, [PTR, PTR, PTR], inline=False)
        t, iout, fout = self.read_scalar.args
        fn = self.read_scalar
        with b.if_then(b.icmp_unsigned("==", t, NULL), likely=False):
            b.ret(c32(-1))
        with b.if_then(b.icmp_signed("!=", load(b, t, L.KIND, I32), c32(L.KIND_TENSOR)), likely=False):
            b.ret(c32(-1))
        count, ok = self._elements(b, None, at(b, t, L.T_SHAPE), load(b, t, L.T_NDIM, I32))
        with b.if_then(b.or_(b.not_(ok), b.icmp_signed("!=", count, c64(1))), likely=False):
            b.ret(c32(-1))
        data = load(b, t, L.T_DATA, PTR)
        dtype = load(b, t, L.AUX, I32)
        bad = fn.append_basic_block("bad")
        sw = b.switch(dtype, bad)
        ints = {"bool": (I8, False), "int8": (I8, True), "uint8": (I8, False), "int16": (I16, True),
                "uint16": (I16, False), "int32": (I32, True), "uint32": (I32, False), "int64": (I64, True),
                "uint64": (I64, False)}
        for name, (ty, signed) in ints.items():
            blk = fn.append_basic_block(name)
            sw.add_case(c32(L.DTYPE_CODE[name]), blk)
            b.position_at_end(blk)
            v = b.load(data, typ=ty)
            if name == "bool":
                v = b.zext(b.icmp_unsigned("!=", v, ir.Constant(I8, 0)), I64)
            elif ty is not I64:
                v = b.sext(v, I64) if signed else b.zext(v, I64)
            b.store(v, iout)
            b.ret(c32(0))
        for name, ty in (("float16", F16), ("float32", F32), ("float64", F64)):
            blk = fn.append_basic_block(name)
            sw.add_case(c32(L.DTYPE_CODE[name]), blk)
            b.position_at_end(blk)
            v = b.load(data, typ=ty)
            b.store(v if ty is F64 else b.fpext(v, F64), fout)
            b.ret(c32(1))
        b.position_at_end(bad)
        b.ret(c32(-1))

        # 1 when the values of two one-element tensors are equal, 0 when not, -1 on an error
        self.scalar_eq, b = function(m, "nvm_scalar_eq", I32, [PTR, PTR, PTR], inline=False)
        ctx, x, y = self.scalar_eq.args
        xi, yi, xf, yf = alloca(b, I64), alloca(b, I64), alloca(b, F64), alloca(b, F64)
        kx = b.call(self.read_scalar, [x, xi, xf])
        ky = b.call(self.read_scalar, [y, yi, yf])
        with b.if_then(b.or_(b.icmp_signed("<", kx, c32(0)), b.icmp_signed("<", ky, c32(0))), likely=False):
            self.set_error(b, ctx, L.E_SCALAR)
            b.ret(c32(-1))
        both_int = b.and_(b.icmp_signed("==", kx, c32(0)), b.icmp_signed("==", ky, c32(0)))
        with b.if_then(both_int):
            b.ret(b.zext(b.icmp_signed("==", b.load(xi, typ=I64), b.load(yi, typ=I64)), I32))
        fx = b.select(b.icmp_signed("==", kx, c32(0)), b.sitofp(b.load(xi, typ=I64), F64), b.load(xf, typ=F64))
        fy = b.select(b.icmp_signed("==", ky, c32(0)), b.sitofp(b.load(yi, typ=I64), F64), b.load(yf, typ=F64))
        b.ret(b.zext(b.fcmp_ordered("==", fx, fy), I32))

    # ------------------------------------------------------------------ entry points for Python
    def _entry_points(self):
        m = self.m
        self.decref_export, b = function(m, "nvm_decref_export", VOID, [PTR, PTR], internal=False)
        b.call(self.decref, list(self.decref_export.args))
        b.ret_void()
        self.incref_export, b = function(m, "nvm_incref_export", VOID, [PTR], internal=False)
        b.call(self.incref, list(self.incref_export.args))
        b.ret_void()
        self._build_inputs()
        self._describe()

    def _build_inputs(self):
        """``nvm_build(ctx, code, len, stack)``: objects from the postfix encoding (see native_layout);
        ``stack`` has room for ``len`` pointers; returns the object count, -1 on an error left in
        ctx, -2 when an ``ENC_ARRAY`` array is not one the VM takes as it is (not C-contiguous,
        another byte order, a dtype or rank it has no code for: Python converts it). On failure
        the objects built so far are released."""
        m = self.m
        fn, b = function(m, "nvm_build", I64, [PTR, PTR, I64, PTR], internal=False)
        self.build = fn
        ctx, code, n, stack = fn.args
        pc, sp, status = alloca(b, I64), alloca(b, I64), alloca(b, I64)
        b.store(c64(0), pc)
        b.store(c64(0), sp)
        head, body, done, bad = (fn.append_basic_block(x) for x in ("head", "body", "done", "bad"))
        b.branch(head)
        b.position_at_end(head)
        i = b.load(pc, typ=I64)
        b.cbranch(b.icmp_signed("<", i, n), body, done)
        b.position_at_end(body)
        op = b.load(elem(b, code, i, I64), typ=I64)
        tensor_b, array_b, adt_b = (fn.append_basic_block(x) for x in ("tensor", "array", "adt"))
        take_b = fn.append_basic_block("take")
        fail = fn.append_basic_block("fail")
        b.store(c64(-1), status)
        sw = b.switch(op, bad)
        sw.add_case(c64(L.ENC_TENSOR), tensor_b)
        sw.add_case(c64(L.ENC_ARRAY), array_b)
        sw.add_case(c64(L.ENC_ADT), adt_b)

        def word(k):
            return b.load(elem(b, code, b.add(i, c64(k)), I64), typ=I64)

        # an array Python did not look at: C-contiguous, native byte order, a known dtype, rank <= MAX_RANK
        b.position_at_end(array_b)
        arr = b.inttoptr(word(1), PTR)
        descr = load(b, arr, L.NPY_DESCR, PTR)
        num = load(b, descr, L.NPY_DESCR_TYPE_NUM, I32)
        known = b.icmp_unsigned("<", num, c32(len(L.DTYPE_CODE_BY_TYPE_NUM)))
        dcode = b.load(b.gep(self.type_num_codes, [c64(0), b.zext(b.select(known, num, c32(0)), I64)]), typ=I32)
        ok = b.and_(known, b.icmp_signed("!=", dcode, c32(0)))
        ok = b.and_(ok, b.icmp_unsigned("!=", load(b, descr, L.NPY_DESCR_BYTEORDER, I8), ir.Constant(I8, ord(">"))))
        ok = b.and_(ok, b.icmp_unsigned("!=", b.and_(load(b, arr, L.NPY_FLAGS, I32), c32(1)), c32(0)))
        ok = b.and_(ok, b.icmp_unsigned("<=", load(b, arr, L.NPY_NDIM, I32), c32(L.MAX_RANK)))
        checked = alloca(b, I32)
        b.store(dcode, checked)
        with b.if_then(b.not_(ok), likely=False):
            b.store(c64(-2), status)
            b.branch(fail)
        b.branch(take_b)
        # an array Python checked and converted: the dtype code is in the encoding
        b.position_at_end(tensor_b)
        arr_t = b.inttoptr(word(1), PTR)
        b.store(b.trunc(word(2), I32), checked)
        with b.if_then(b.icmp_unsigned(">", load(b, arr_t, L.NPY_NDIM, I32), c32(L.MAX_RANK)), likely=False):
            self.set_error(b, ctx, L.E_SHAPE, 4)
            b.branch(fail)
        b.branch(take_b)
        b.position_at_end(take_b)
        arr = b.inttoptr(word(1), PTR)
        nd = load(b, arr, L.NPY_NDIM, I32)
        t = b.call(self.malloc, [c64(L.TENSOR_SIZE)])
        with b.if_then(b.icmp_unsigned("==", t, NULL), likely=False):
            self.set_error(b, ctx, L.E_ALLOC)
            b.branch(fail)
        store(b, c64(1), t, L.RC)
        store(b, c32(L.KIND_TENSOR), t, L.KIND)
        store(b, b.load(checked, typ=I32), t, L.AUX)
        store(b, nd, t, L.T_NDIM)
        store(b, c32(0), t, L.T_FLAGS)
        store(b, at(b, t, L.T_SHAPE), t, L.T_DIMS)
        store(b, NULL, t, L.T_STORAGE)
        store(b, load(b, arr, L.NPY_DATA, PTR), t, L.T_DATA)
        b.call(self.memcpy, [at(b, t, L.T_SHAPE), load(b, arr, L.NPY_DIMS, PTR), b.mul(b.zext(nd, I64), c64(8)),
                             ir.Constant(I1, 0)])
        store(b, word(3), t, L.T_OWNER)
        s = b.load(sp, typ=I64)
        b.store(t, elem(b, stack, s))
        b.store(b.add(s, c64(1)), sp)
        b.store(b.add(i, c64(4)), pc)
        b.branch(head)
        b.position_at_end(adt_b)
        tag, count = word(1), word(2)
        s = b.load(sp, typ=I64)
        with b.if_then(b.icmp_signed(">", count, s), likely=False):
            b.branch(fail)
        base = b.sub(s, count)
        o = b.call(self.compound, [ctx, c32(L.KIND_ADT), b.trunc(tag, I32), count, elem(b, stack, base)])
        with b.if_then(b.icmp_unsigned("==", o, NULL), likely=False):
            b.branch(fail)

        def drop(b, k):  # the ADT took its own references
            b.call(self.decref, [ctx, b.load(elem(b, stack, b.add(base, k)), typ=PTR)])

        loop(b, count, drop)
        b.store(o, elem(b, stack, base))
        b.store(b.add(base, c64(1)), sp)
        b.store(b.add(i, c64(3)), pc)
        b.branch(head)
        b.position_at_end(bad)
        b.branch(fail)
        b.position_at_end(fail)
        loop(b, b.load(sp, typ=I64), lambda b, k: b.call(self.decref, [ctx, b.load(elem(b, stack, k), typ=PTR)]))
        b.ret(b.load(status, typ=I64))
        b.position_at_end(done)
        b.ret(b.load(sp, typ=I64))

    def _new_tensor_or(self, b, ctx, dtype, ndim, on_fail):
        t = b.call(self.malloc, [c64(L.TENSOR_SIZE)])
        with b.if_then(b.icmp_unsigned("==", t, NULL), likely=False):
            self.set_error(b, ctx, L.E_ALLOC)
            b.ret(on_fail)
        store(b, c64(1), t, L.RC)
        store(b, c32(L.KIND_TENSOR), t, L.KIND)
        store(b, dtype, t, L.AUX)
        store(b, ndim, t, L.T_NDIM)
        store(b, c32(0), t, L.T_FLAGS)
        store(b, at(b, t, L.T_SHAPE), t, L.T_DIMS)
        store(b, NULL, t, L.T_STORAGE)
        store(b, c64(-1), t, L.T_OWNER)
        return t

    def _describe(self):
        """``nvm_describe(obj, buf, cap, stack)``: the prefix description of a value graph (see
        native_layout), walked with the caller's ``stack`` of ``cap`` pointers (no recursion: a long
        list is fine); returns its length in words, written only while it fits ``cap`` (a larger
        result asks the caller for a larger buffer)."""
        m = self.m
        fn, b = function(m, "nvm_describe", I64, [PTR, PTR, I64, PTR], internal=False)
        self.describe = fn
        obj, buf, cap, stack = fn.args
        pos, sp = alloca(b, I64), alloca(b, I64)
        b.store(c64(0), pos)
        b.store(c64(1), sp)
        b.store(obj, stack)

        def put(b, k, v):
            p = b.add(b.load(pos, typ=I64), c64(k)) if isinstance(k, int) else b.add(b.load(pos, typ=I64), k)
            with b.if_then(b.icmp_signed("<", p, cap)):
                b.store(v, elem(b, buf, p, I64))

        head, body, done = (fn.append_basic_block(x) for x in ("head", "body", "done"))
        b.branch(head)
        b.position_at_end(head)
        b.cbranch(b.icmp_signed(">", b.load(sp, typ=I64), c64(0)), body, done)
        b.position_at_end(body)
        top = b.sub(b.load(sp, typ=I64), c64(1))
        b.store(top, sp)
        o = b.load(elem(b, stack, top), typ=PTR)
        kind = load(b, o, L.KIND, I32)
        tensor_b, comp_b = fn.append_basic_block("tensor"), fn.append_basic_block("compound")
        b.cbranch(b.icmp_signed("==", kind, c32(L.KIND_TENSOR)), tensor_b, comp_b)
        b.position_at_end(tensor_b)
        nd = b.zext(load(b, o, L.T_NDIM, I32), I64)
        flags = load(b, o, L.T_FLAGS, I32)
        for k, v in enumerate((c64(L.ENC_TENSOR), b.ptrtoint(load(b, o, L.T_DATA, PTR), I64),
                               b.zext(load(b, o, L.AUX, I32), I64), nd,
                               b.ptrtoint(load(b, o, L.T_STORAGE, PTR), I64),
                               b.select(b.icmp_signed("==", flags, c32(L.T_FLAG_INLINE)), c64(-3),
                                        load(b, o, L.T_OWNER, I64)))):
            put(b, k, v)
        loop(b, nd, lambda b, i: put(b, b.add(c64(6), i), b.load(elem(b, at(b, o, L.T_SHAPE), i, I64), typ=I64)))
        b.store(b.add(b.load(pos, typ=I64), b.add(c64(6), nd)), pos)
        b.branch(head)
        b.position_at_end(comp_b)
        count = load(b, o, L.O_COUNT, I64)
        put(b, 0, b.select(b.icmp_signed("==", kind, c32(L.KIND_ADT)), c64(L.ENC_ADT), c64(L.ENC_CLOSURE)))
        put(b, 1, b.zext(load(b, o, L.AUX, I32), I64))
        put(b, 2, count)
        b.store(b.add(b.load(pos, typ=I64), c64(3)), pos)
        with b.if_then(b.icmp_signed(">", b.add(b.load(sp, typ=I64), count), cap), likely=False):
            b.ret(b.add(b.mul(cap, c64(2)), c64(64)))  # more pending values than room: ask for more

        def push(b, i):
            f = b.load(elem(b, at(b, o, L.O_FIELDS), b.sub(b.sub(count, c64(1)), i)), typ=PTR)
            s_ = b.load(sp, typ=I64)
            b.store(f, elem(b, stack, s_))
            b.store(b.add(s_, c64(1)), sp)

        loop(b, count, push)
        b.branch(head)
        b.position_at_end(done)
        b.ret(b.load(pos, typ=I64))


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


class RuntimeRef:
    """The runtime as seen from a program module: declarations of the shared runtime's functions
    (same attribute names as ``Runtime``), ``incref`` inline, and the intrinsics programs use."""

    set_error = staticmethod(set_error)
    set_detail = staticmethod(set_detail)

    def __init__(self, module: ir.Module, library: "RuntimeLibrary"):
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
        self.object = jit.LoadedObject(object_code)
        self.addresses = {}
        for attr, fn in self.functions.items():
            name = self.prefix + fn.name[len(PREFIX):]
            self.addresses[attr] = self.object.address(name)
            llvm.add_symbol(name, self.addresses[attr])


_library: list = []
_library_lock = threading.Lock()


def runtime_library(object_code: bytes | None = None, version: str | None = None) -> RuntimeLibrary:
    """The process's runtime library: compiled (or read from the object cache) on first use, or
    taken from ``object_code`` when that is the same runtime (``version``)."""
    if not _library:
        with _library_lock:
            if not _library:
                _library.append(RuntimeLibrary(object_code, version))
    return _library[0]
