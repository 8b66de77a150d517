"""The native VM runtime's direct input path: ``nvm_build_py`` builds the native values of a call's
inputs from the Python objects themselves (numpy arrays, the interpreter's ``ConstructorValue``
trees, ``ADT``s, tuples), reading them through CPython's C API, so a tree input costs no Python
step per node. Called with the GIL held (``ctypes.PYFUNCTYPE``). Anything it does not take as it
is (another class, an array to convert, nesting deeper than ``PY_DEPTH`` or than the thread's stack
allows (``ctx``'s stack floor), an attribute lookup that fails) makes it release what it built and return -2: Python then encodes the inputs itself.
"""
from __future__ import annotations

import llvmlite.ir as ir

from . import native_layout as L
from .native_ir import I8, I32, I64, NULL, PTR, VOID, alloca, at, c32, c64, declare, elem, load, loop, store
from .native_rt_helpers import function

PY_DEPTH = 1 << 20  # nesting the native walk takes while the thread's stack lasts; deeper inputs go through Python
# the table Python passes: classes and attribute names the walk compares with or looks up
PY_NDARRAY, PY_CONSTRUCTOR_VALUE, PY_ADT, PY_TUPLE, PY_S_FIELDS, PY_S_CONSTRUCTOR, PY_S_TAG = range(7)
PY_TABLE_SIZE = 7
_OB_TYPE, _OB_SIZE, _TUPLE_ITEMS = 8, 16, 24  # PyObject's type, PyVarObject's size, PyTupleObject's items
_OWNER_INPUT = 1 << 62  # a tensor's owner: this bit and the address of the input array it views


class PythonInputRuntime:
    """``Runtime``'s ``nvm_build_py`` (a mixin)."""

    def _build_py(self):
        m = self.m
        getattr_ = declare(m, "PyObject_GetAttr", PTR, [PTR, PTR])
        decref = declare(m, "Py_DecRef", VOID, [PTR])
        as_long = declare(m, "PyLong_AsLongLong", I64, [PTR])
        occurred = declare(m, "PyErr_Occurred", PTR, [])
        clear = declare(m, "PyErr_Clear", VOID, [])

        # ptr value(ctx, obj, table, depth, status*): a new native value, or null with *status set
        fn, b = function(m, "nvm_py_value", PTR, [PTR, PTR, PTR, I32, PTR], inline=False)
        self.py_value = fn
        ctx, obj, table, depth, status = fn.args

        def entry(k):
            return b.load(elem(b, table, k), typ=PTR)

        def careful():
            b.store(c64(-2), status)
            b.ret(NULL)

        typ = load(b, obj, _OB_TYPE, PTR)
        array_b, compound_b, other_b = (fn.append_basic_block(x) for x in ("array", "compound", "other"))
        b.cbranch(b.icmp_unsigned("==", typ, entry(PY_NDARRAY)), array_b, other_b)
        b.position_at_end(other_b)
        is_cv = b.icmp_unsigned("==", typ, entry(PY_CONSTRUCTOR_VALUE))
        is_adt = b.icmp_unsigned("==", typ, entry(PY_ADT))
        is_tuple = b.icmp_unsigned("==", typ, entry(PY_TUPLE))
        frame = declare(m, "llvm.frameaddress.p0", PTR, [I32])
        below = b.icmp_unsigned("<", b.ptrtoint(b.call(frame, [c32(0)]), I64), load(b, ctx, L.C_STACK_FLOOR, I64))
        deep = b.or_(below, b.icmp_signed(">=", depth, c32(PY_DEPTH)))
        with b.if_then(b.or_(deep, b.not_(b.or_(is_cv, b.or_(is_adt, is_tuple)))), likely=False):
            careful()
        b.branch(compound_b)

        # an array: C-contiguous, native byte order, a known dtype, rank <= MAX_RANK (else Python converts it)
        b.position_at_end(array_b)
        descr = load(b, obj, L.NPY_DESCR, PTR)
        num = load(b, descr, L.NPY_DESCR_TYPE_NUM, I32)
        known = b.icmp_unsigned("<", num, c32(len(L.DTYPE_CODE_BY_TYPE_NUM)))
        dcode = b.load(b.gep(self.type_num_codes, [c64(0), b.zext(b.select(known, num, c32(0)), I64)]), typ=I32)
        ok = b.and_(known, b.icmp_signed("!=", dcode, c32(0)))
        ok = b.and_(ok, b.icmp_unsigned("!=", load(b, descr, L.NPY_DESCR_BYTEORDER, I8), ir.Constant(I8, ord(">"))))
        ok = b.and_(ok, b.icmp_unsigned("!=", b.and_(load(b, obj, L.NPY_FLAGS, I32), c32(1)), c32(0)))
        nd = load(b, obj, L.NPY_NDIM, I32)
        ok = b.and_(ok, b.icmp_unsigned("<=", nd, c32(L.MAX_RANK)))
        with b.if_then(b.not_(ok), likely=False):
            careful()
        b.store(c64(-1), status)  # (an allocation failure is an error, left in ctx)
        t = self._new_tensor_or(b, ctx, dcode, nd, NULL)
        store(b, load(b, obj, L.NPY_DATA, PTR), t, L.T_DATA)
        b.call(self.memcpy, [at(b, t, L.T_SHAPE), load(b, obj, L.NPY_DIMS, PTR), b.mul(b.zext(nd, I64), c64(8)),
                             ir.Constant(ir.IntType(1), 0)])
        store(b, b.or_(b.ptrtoint(obj, I64), c64(_OWNER_INPUT)), t, L.T_OWNER)
        b.ret(t)

        # an ADT: its fields (a tuple) and tag read through the C API; a tuple is tag 0 of itself
        b.position_at_end(compound_b)

        def attr(o, name_slot):
            v = b.call(getattr_, [o, entry(name_slot)])
            with b.if_then(b.icmp_unsigned("==", v, NULL), likely=False):
                b.call(clear, [])
                careful()
            return v

        def tag_of(owner, tag_obj):  # (tag, owned references to drop)
            tag = b.call(as_long, [tag_obj])
            failed = b.and_(b.icmp_signed("==", tag, c64(-1)), b.icmp_unsigned("!=", b.call(occurred, []), NULL))
            bad = b.or_(failed, b.or_(b.icmp_signed("<", tag, c64(0)), b.icmp_signed(">", tag, c64(2**31 - 1))))
            with b.if_then(bad, likely=False):
                b.call(clear, [])
                b.call(decref, [tag_obj])
                b.call(decref, [owner])
                careful()
            return tag

        fields_slot, tag_slot = alloca(b, PTR), alloca(b, I64)
        with b.if_else(is_tuple) as (tup, other):
            with tup:
                b.store(obj, fields_slot)
                b.store(c64(0), tag_slot)
            with other:
                fields = attr(obj, PY_S_FIELDS)
                with b.if_else(is_cv) as (cv, adt):
                    with cv:
                        ctor = b.call(getattr_, [obj, entry(PY_S_CONSTRUCTOR)])
                        with b.if_then(b.icmp_unsigned("==", ctor, NULL), likely=False):
                            b.call(clear, [])
                            b.call(decref, [fields])
                            careful()
                        tag_obj = b.call(getattr_, [ctor, entry(PY_S_TAG)])
                        b.call(decref, [ctor])
                        with b.if_then(b.icmp_unsigned("==", tag_obj, NULL), likely=False):
                            b.call(clear, [])
                            b.call(decref, [fields])
                            careful()
                        b.store(tag_of(fields, tag_obj), tag_slot)
                        b.call(decref, [tag_obj])
                    with adt:
                        tag_obj = b.call(getattr_, [obj, entry(PY_S_TAG)])
                        with b.if_then(b.icmp_unsigned("==", tag_obj, NULL), likely=False):
                            b.call(clear, [])
                            b.call(decref, [fields])
                            careful()
                        b.store(tag_of(fields, tag_obj), tag_slot)
                        b.call(decref, [tag_obj])
                b.store(fields, fields_slot)
        fields = b.load(fields_slot, typ=PTR)
        owned = b.not_(is_tuple)  # a reference to drop once the fields are built
        not_tuple = b.icmp_unsigned("!=", load(b, fields, _OB_TYPE, PTR), entry(PY_TUPLE))
        with b.if_then(not_tuple, likely=False):
            with b.if_then(owned):
                b.call(decref, [fields])
            careful()
        n = load(b, fields, _OB_SIZE, I64)
        o = b.call(self.malloc, [b.add(c64(L.O_FIELDS), b.mul(n, c64(8)))])
        with b.if_then(b.icmp_unsigned("==", o, NULL), likely=False):
            with b.if_then(owned):
                b.call(decref, [fields])
            self.set_error(b, ctx, L.E_ALLOC)
            b.store(c64(-1), status)
            b.ret(NULL)
        store(b, c64(1), o, L.RC)
        store(b, c32(L.KIND_ADT), o, L.KIND)
        store(b, b.trunc(b.load(tag_slot, typ=I64), I32), o, L.AUX)
        store(b, NULL, o, L.O_NEXT)
        store(b, n, o, L.O_COUNT)
        b.call(self.memset, [at(b, o, L.O_FIELDS), ir.Constant(I8, 0), b.mul(n, c64(8)), ir.Constant(ir.IntType(1), 0)])

        def child(b, i):
            item = b.load(elem(b, at(b, fields, _TUPLE_ITEMS), i), typ=PTR)
            v = b.call(fn, [ctx, item, table, b.add(depth, c32(1)), status])
            with b.if_then(b.icmp_unsigned("==", v, NULL), likely=False):
                with b.if_then(owned):
                    b.call(decref, [fields])
                b.call(self.decref, [ctx, o])  # (the fields not built yet are null)
                b.ret(NULL)
            b.store(v, elem(b, at(b, o, L.O_FIELDS), i))

        loop(b, n, child)
        with b.if_then(owned):
            b.call(decref, [fields])
        b.ret(o)

        # i64 build_py(ctx, args (a tuple), table, argv): the count, or -1 / -2 (see the module)
        fn2, b = function(m, "nvm_build_py", I64, [PTR, PTR, PTR, PTR], internal=False)
        self.build_py = fn2
        ctx, args, table, argv = fn2.args
        st = alloca(b, I64)
        b.store(c64(-2), st)
        n = load(b, args, _OB_SIZE, I64)

        def one(b, i):
            v = b.call(fn, [ctx, b.load(elem(b, at(b, args, _TUPLE_ITEMS), i), typ=PTR), table, c32(0), st])
            with b.if_then(b.icmp_unsigned("==", v, NULL), likely=False):
                loop(b, i, lambda b, k: b.call(self.decref, [ctx, b.load(elem(b, argv, k), typ=PTR)]), "drop")
                b.ret(b.load(st, typ=I64))
            b.store(v, elem(b, argv, i))

        loop(b, n, one)
        b.ret(n)
