"""The native VM runtime's values: tensor descriptors (views of storages, shapes, reshapes,
copies, int scalars), ADTs and closures, and scalar reads for ``if``."""
from __future__ import annotations

import llvmlite.ir as ir

from . import native_layout as L
from .native_ir import F16, F32, F64, I1, I8, I16, I32, I64, NULL, PTR, alloca, at, c32, c64, elem, load, loop, store
from .native_rt_helpers import function


class ValueRuntime:
    """``Runtime``'s tensors, compound objects and scalars (a mixin)."""

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
