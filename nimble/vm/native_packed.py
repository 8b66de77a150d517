"""Native packed-function wrappers: ``i32 @pk<p>(ctx, argv, nargs, nout)`` checks the arguments'
kinds, dtypes and ranks, counts the call, times it when profiling, and calls ``@pkb<p>``: a
kernel (shape variables read, residue variant chosen, raw entry called through the table
Python fills at link time), a dispatch table (range chosen, histogram counted), a shape
function of dim expressions, or a Python callback for data-dependent shape functions."""
from __future__ import annotations

import llvmlite.ir as ir

from ..dispatch.table import DispatchEntry
from . import native_layout as L
from .executable import HostFuncEntry, KernelEntry
from .native_common import NativeUnsupported, expected_args
from .native_ir import I1, I32, I64, NULL, PTR, FnPtr, alloca, c32, c64, const_array, elem, function, load, store


class PackedCodegen:
    """``ProgramBuilder``'s packed functions (a mixin: it uses the builder's module, runtime,
    layout, kernel table and profiling ticks)."""

    def _packed(self, index: int, p):
        """``i32 @pk<p>(ctx, argv, nargs, nout)``: 0, or a status after leaving an error in ctx."""
        fn, b = function(self.module, f"pkb{index}", I32, [PTR, PTR, I32, I32])
        ctx, argv, nargs, nout = fn.args
        if isinstance(p, KernelEntry):
            b.ret(self._kernel_call(b, ctx, argv, index, p, tuple(range(len(p.arg_dtypes)))))
        elif isinstance(p, DispatchEntry):
            self._dispatch(b, fn, ctx, argv, index, p)
        elif isinstance(p, HostFuncEntry) and p.kind == "shape_expr":
            self._shape_expr(b, ctx, argv, b.sub(nargs, nout), p)
        else:
            cb = FnPtr(load(b, ctx, L.C_HOST_CB, PTR), ir.FunctionType(I32, [PTR, I32, PTR, I32, I32]))
            self.tick(b, ctx, "host callback")
            status = b.call(cb, [ctx, c32(index), argv, nargs, nout])
            self.tick(b, ctx, "invoke_packed", 0)
            b.ret(status)
        return self._packed_wrapper(index, p, fn)

    def _packed_wrapper(self, index: int, p, body):
        """``pk<p>``: argument checks, the call count, profiling time, errors that keep the arguments."""
        rt = self.rt
        fn, b = function(self.module, f"pk{index}", I32, [PTR, PTR, I32, I32], inline=False)
        ctx, argv, nargs, nout = fn.args
        want = expected_args(p)

        def fail_keeping_args(code, status):
            b.call(rt.keep_args, [ctx, argv, b.zext(nargs, I64)])
            store(b, c32(code), ctx, L.C_ERR_CODE)
            store(b, status, ctx, L.C_ERR_STATUS)
            store(b, c32(index), ctx, L.C_ERR_PACKED)
            b.ret(c32(1))

        if want is not None:
            bad = b.call(rt.check_args, [argv, b.zext(nargs, I64), self.arg_table(index, want), c64(len(want))])
            with b.if_then(b.icmp_signed(">=", bad, c32(0)), likely=False):
                fail_keeping_args(L.E_ARG, c32(100))
        calls = load(b, ctx, L.C_CALLS, PTR)
        slot = elem(b, calls, index, I64)
        b.store(b.add(b.load(slot, typ=I64), c64(1)), slot)
        prof = b.icmp_signed("!=", load(b, ctx, L.C_PROFILING, I32), c32(0))
        t0 = alloca(b, I64)
        ts = alloca(b, ir.ArrayType(I64, 2))
        with b.if_then(prof, likely=False):
            b.store(self.clock(b, ts), t0)
        status = b.call(body, [ctx, argv, nargs, nout])
        with b.if_then(prof, likely=False):
            tslot = elem(b, load(b, ctx, L.C_PROF_TIME, PTR), index, I64)
            b.store(b.add(b.load(tslot, typ=I64), b.sub(self.clock(b, ts), b.load(t0, typ=I64))), tslot)
        if isinstance(p, (KernelEntry, DispatchEntry)):
            with b.if_then(b.icmp_signed("!=", status, c32(0)), likely=False):
                fail_keeping_args(L.E_KERNEL, status)
        b.ret(status)
        return fn

    def _kernel_call(self, b, ctx, argv, index: int, k: KernelEntry, amap: tuple):
        """Call kernel ``k`` on ``argv[amap[j]]``: shape variables, residue variant, raw entry."""
        args = [b.load(elem(b, argv, a), typ=PTR) for a in amap]

        def dim(a, d):
            return load(b, args[a], L.T_SHAPE + 8 * d, I64)

        svals = [dim(a, d) for a, d in k.shape_vars]
        nthreads = load(b, ctx, L.C_NTHREADS, I32)
        fnty = ir.FunctionType(I32, [PTR] * len(args) + [I64] * len(svals) + [I32])
        slots = []
        for _, symbol in k.variants:
            slots.append(len(self.layout.kernel_symbols))
            self.layout.kernel_symbols.append((index, k, symbol))
        fn = b.function
        result = alloca(b, I32)
        done = fn.append_basic_block("called")
        for (conds, _), slot in zip(k.variants, slots):
            test = ir.Constant(I1, 1)
            for a, d, f in conds:
                test = b.and_(test, b.icmp_signed("==", b.srem(dim(a, d), c64(f)), c64(0)))
            call_b, next_b = fn.append_basic_block("variant"), fn.append_basic_block("next")
            b.cbranch(test, call_b, next_b)
            b.position_at_end(call_b)
            ptr = FnPtr(b.load(b.gep(self.kfn, [c32(0), c32(slot)]), typ=PTR), fnty)
            self.tick(b, ctx, "kernel")
            b.store(b.call(ptr, args + svals + [nthreads]), result)
            self.tick(b, ctx, "invoke_packed", 0)
            b.branch(done)
            b.position_at_end(next_b)
        b.store(c32(-1), result)  # unreachable: the last variant has no conditions
        b.branch(done)
        b.position_at_end(done)
        return b.load(result, typ=I32)

    def _dispatch(self, b, fn, ctx, argv, index: int, d: DispatchEntry) -> None:
        arg, axis = d.dim
        n = load(b, b.load(elem(b, argv, arg), typ=PTR), L.T_SHAPE + 8 * axis, I64)
        sel = self._select_box(b, argv, d, n) if d.extra_dims else self._select_range(b, index, d, n)
        row = len(self.layout.hist_rows)
        self.layout.hist_rows[index] = row
        hist = load(b, ctx, L.C_HIST, PTR)
        binned = b.select(b.and_(b.icmp_signed(">=", n, c64(0)), b.icmp_signed("<", n, c64(L.HIST_BINS))), n,
                          c64(L.HIST_BINS))
        slot = elem(b, hist, b.add(c64(row * (L.HIST_BINS + 1)), binned), I64)
        b.store(b.add(b.load(slot, typ=I64), c64(1)), slot)
        bad = fn.append_basic_block("no_range")
        sw = b.switch(sel, bad)
        for k, (kernel, amap) in enumerate(zip(d.kernels, d.arg_maps)):
            blk = fn.append_basic_block(f"range{k}")
            sw.add_case(c64(k), blk)
            b.position_at_end(blk)
            b.ret(self._kernel_call(b, ctx, argv, index, kernel, tuple(amap)))
        b.position_at_end(bad)
        b.ret(c32(-1))

    def _select_box(self, b, argv, d: DispatchEntry, n):
        """A multi-dim table's box for the call: the first that holds every dim's value, else the nearest
        (least total distance outside, the first on ties), as ``DispatchEntry.index_of``."""
        values = [n] + [load(b, b.load(elem(b, argv, a), typ=PTR), L.T_SHAPE + 8 * k, I64) for a, k, _ in d.extra_dims]
        zero = c64(0)
        dists = []
        for r in d.ranges:
            dist = zero
            for (lo, hi), v in zip(r.bounds(), values):
                below, above = b.sub(c64(lo), v), b.sub(v, c64(hi))  # sizes and bounds <= 2^62: no overflow
                dist = b.add(dist, b.add(b.select(b.icmp_signed(">", below, zero), below, zero),
                                         b.select(b.icmp_signed(">", above, zero), above, zero)))
            dists.append(dist)
        sel, best = c64(0), dists[0]
        for k in range(1, len(dists)):
            closer = b.icmp_signed("<", dists[k], best)
            sel, best = b.select(closer, c64(k), sel), b.select(closer, dists[k], best)
        return sel

    def _select_range(self, b, index: int, d: DispatchEntry, n):
        """A one-dim table's range for ``n``: the last whose lo is <= n, or its right neighbour when n is
        outside and nearer that one."""
        ranges = d.ranges
        sel = c64(0)
        for k in range(1, len(ranges)):
            sel = b.select(b.icmp_signed(">=", n, c64(ranges[k].lo)), c64(k), sel)
        los = const_array(self.module, f"pk{index}_lo", I64, [r.lo for r in ranges] + [0])
        his = const_array(self.module, f"pk{index}_hi", I64, [r.hi for r in ranges] + [0])
        lo = b.load(b.gep(los, [c64(0), sel]), typ=I64)
        hi = b.load(b.gep(his, [c64(0), sel]), typ=I64)
        inside = b.and_(b.icmp_signed("<=", lo, n), b.icmp_signed("<=", n, hi))
        nxt = b.add(sel, c64(1))
        next_lo = b.load(b.gep(los, [c64(0), nxt]), typ=I64)
        closer = b.and_(b.icmp_signed("<", nxt, c64(len(ranges))),
                        b.icmp_signed("<", b.sub(next_lo, n), b.sub(n, hi)))
        return b.select(b.and_(b.not_(inside), closer), nxt, sel)

    def _shape_expr(self, b, ctx, argv, n_in_value, p: HostFuncEntry) -> None:
        """Output shapes from expressions of the input dims, written to (shape, bytes) registers."""
        shapes, itemsizes = p.attrs["shapes"], p.attrs["itemsizes"]
        n_in = None
        refs = set()

        def collect(j):
            if isinstance(j, list):
                if j[0] == "dim":
                    refs.add((int(j[1]), int(j[2])))
                elif j[0] == "value":
                    refs.add((int(j[1]), -1))
                else:
                    collect(j[1])
                    collect(j[2])

        for s in shapes:
            for dexpr in s:
                collect(dexpr)
        n_in = max([i for i, _ in refs], default=-1) + 1
        fn = b.function
        for i in range(n_in):
            t = b.load(elem(b, argv, i), typ=PTR)
            need = max([ax for j, ax in refs if j == i], default=-1) + 1
            with b.if_then(b.icmp_unsigned("==", t, NULL), likely=False):
                self.rt.set_error(b, ctx, L.E_ARG, 6)
                b.ret(c32(-1))
            kind_ok = b.icmp_signed("==", load(b, t, L.KIND, I32), c32(L.KIND_TENSOR))
            rank_ok = b.icmp_signed(">=", load(b, t, L.T_NDIM, I32), c32(need))
            with b.if_then(b.not_(b.and_(kind_ok, rank_ok)), likely=False):
                self.rt.set_error(b, ctx, L.E_ARG, 6)
                b.ret(c32(-1))
        bad = fn.append_basic_block("bad_shape")
        bad_value = fn.append_basic_block("bad_value")
        smul = self.rt.smul

        def scalar(i: int):
            """The one int32 / int64 element of input i (rank 0, or rank 1 of length 1)."""
            t = b.load(elem(b, argv, i), typ=PTR)
            code, nd = load(b, t, L.AUX, I32), load(b, t, L.T_NDIM, I32)
            is64 = b.icmp_signed("==", code, c32(L.DTYPE_CODE["int64"]))
            ok = b.or_(is64, b.icmp_signed("==", code, c32(L.DTYPE_CODE["int32"])))
            one = b.or_(b.icmp_signed("==", nd, c32(0)), b.and_(b.icmp_signed("==", nd, c32(1)), b.icmp_signed(
                "==", load(b, t, L.T_SHAPE, I64), c64(1))))
            good = fn.append_basic_block("value_ok")
            b.cbranch(b.and_(ok, one), good, bad_value)
            b.position_at_end(good)
            data = load(b, t, L.T_DATA, PTR)
            return b.select(is64, b.load(data, typ=I64), b.sext(b.load(data, typ=I32), I64))

        def value(j):
            if isinstance(j, int):
                return c64(j)
            if j[0] == "dim":
                return load(b, b.load(elem(b, argv, int(j[1])), typ=PTR), L.T_SHAPE + 8 * int(j[2]), I64)
            if j[0] == "value":
                return scalar(int(j[1]))
            x, y = value(j[1]), value(j[2])
            op = j[0]
            if op == "+":
                return b.add(x, y)
            if op == "-":
                return b.sub(x, y)
            if op == "*":
                return b.mul(x, y)
            if op == "min":
                return b.select(b.icmp_signed("<", x, y), x, y)
            if op == "max":
                return b.select(b.icmp_signed(">", x, y), x, y)
            if op in ("//", "%"):
                zero = fn.append_basic_block("nonzero")
                b.cbranch(b.icmp_signed("==", y, c64(0)), bad, zero)
                b.position_at_end(zero)
                q, r = b.sdiv(x, y), b.srem(x, y)
                adjust = b.and_(b.icmp_signed("!=", r, c64(0)),
                                b.icmp_signed("<", b.xor(r, y), c64(0)))  # signs differ: floor
                if op == "//":
                    return b.select(adjust, b.sub(q, c64(1)), q)
                return b.select(adjust, b.add(r, y), r)
            raise NativeUnsupported(f"shape expression operator {op!r}")

        out0 = b.zext(n_in_value, I64)
        for k, (s, itemsize) in enumerate(zip(shapes, itemsizes)):
            shape_t = b.load(elem(b, argv, b.add(out0, c64(2 * k))), typ=PTR)
            size_t = b.load(elem(b, argv, b.add(out0, c64(2 * k + 1))), typ=PTR)
            total = c64(int(itemsize))
            overflow = ir.Constant(I1, 0)
            data = load(b, shape_t, L.T_DATA, PTR)
            for axis, dexpr in enumerate(s):
                v = value(dexpr)
                overflow = b.or_(overflow, b.icmp_signed("<", v, c64(0)))
                prod = b.call(smul, [total, v])
                overflow = b.or_(overflow, b.extract_value(prod, 1))
                total = b.extract_value(prod, 0)
                b.store(v, elem(b, data, axis, I64))
            with b.if_then(overflow, likely=False):
                self.rt.set_error(b, ctx, L.E_SHAPE, 7)
                self.rt.set_detail(b, ctx, 0, c64(k))
                b.ret(c32(-1))
            b.store(total, load(b, size_t, L.T_DATA, PTR))
        b.ret(c32(0))
        b.position_at_end(bad)
        self.rt.set_error(b, ctx, L.E_SHAPE, 8)
        b.ret(c32(-1))
        b.position_at_end(bad_value)
        self.rt.set_error(b, ctx, L.E_SHAPE, 9)
        b.ret(c32(-1))
