"""The native VM runtime's entry points for Python: building the inputs from their encoding and
describing a value graph for the outputs (see ``native_layout``), plus exported incref/decref."""
from __future__ import annotations

import llvmlite.ir as ir

from . import native_layout as L
from .native_ir import I1, I8, I32, I64, NULL, PTR, VOID, alloca, at, c32, c64, elem, load, loop, store
from .native_rt_helpers import function


class BoundaryRuntime:
    """``Runtime``'s entry points for Python (a mixin)."""

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
        self._build_py()
        self._to_py()
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
