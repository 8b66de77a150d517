"""The native VM runtime's direct output path: ``nvm_to_py`` turns a call's result into the Python
value users get (numpy arrays viewing native storage, tuples) through CPython's and NumPy's C API,
so a run's outputs cost no Python step per array. Called with the GIL held (``ctypes.PYFUNCTYPE``).

An array viewing a pool storage holds it through a capsule (its base object) whose destructor
gives the storage back (``nvm_storage_release``) and drops the reference the capsule holds on the
pool's Python owner. Inline data (scalars, shape vectors) and empty tensors are copied into a new
array. Anything else (a view of an input or a constant, an ADT other than a tuple, a closure,
nesting deeper than ``OUT_DEPTH``) makes it return the table's ``fallback`` object: Python then
describes the value and builds it itself. A failed Python allocation returns null with the
Python error set.
"""
from __future__ import annotations

import llvmlite.ir as ir

from . import native_layout as L
from .native_ir import I1, I32, I64, NULL, PTR, VOID, FnPtr, alloca, at, c32, c64, declare, elem, load, loop
from .native_rt_helpers import function

# the table Python passes (pointers): ndarray type, PyArray_NewFromDescr, PyArray_SetBaseObject,
# the pool's Python owner, the fallback object, then one PyArray_Descr per dtype code (null: unknown)
OT_NDARRAY, OT_NEW_FROM_DESCR, OT_SET_BASE, OT_POOL, OT_FALLBACK, OT_DESCR = range(6)
MAX_DTYPE_CODES = 64
OT_SIZE = OT_DESCR + MAX_DTYPE_CODES
OUT_DEPTH = 64
NPY_ARRAY_C_CONTIGUOUS, NPY_ARRAY_ALIGNED, NPY_ARRAY_WRITEABLE = 0x1, 0x100, 0x400
NUMPY_API_SLOTS = {"PyArray_NewFromDescr": 94, "PyArray_SetBaseObject": 282}  # numpy's stable C-API table
PYTHON_SYMBOLS = ("Py_IncRef", "PyTuple_New", "PyTuple_SetItem", "PyCapsule_New", "PyCapsule_GetPointer",
                  "PyCapsule_GetContext", "PyCapsule_SetContext")


class PythonOutputRuntime:
    """``Runtime``'s ``nvm_to_py`` (a mixin)."""

    def _to_py(self):
        m = self.m
        incref_py = declare(m, "Py_IncRef", VOID, [PTR])
        decref_py = declare(m, "Py_DecRef", VOID, [PTR])
        tuple_new = declare(m, "PyTuple_New", PTR, [I64])
        tuple_set = declare(m, "PyTuple_SetItem", I32, [PTR, I64, PTR])
        cap_new = declare(m, "PyCapsule_New", PTR, [PTR, PTR, PTR])
        cap_ptr = declare(m, "PyCapsule_GetPointer", PTR, [PTR, PTR])
        cap_ctx = declare(m, "PyCapsule_GetContext", PTR, [PTR])
        cap_set_ctx = declare(m, "PyCapsule_SetContext", I32, [PTR, PTR])
        new_from_descr = ir.FunctionType(PTR, [PTR, PTR, I32, PTR, PTR, PTR, I32, PTR])
        set_base = ir.FunctionType(I32, [PTR, PTR])

        # the capsule's destructor: the storage back to its pool, the pool owner's reference dropped
        release, b = function(m, "nvm_py_capsule_release", VOID, [PTR])
        cap = release.args[0]
        owner = b.call(cap_ctx, [cap])
        b.call(self.storage_release, [b.call(cap_ptr, [cap, NULL])])
        with b.if_then(b.icmp_unsigned("!=", owner, NULL)):
            b.call(decref_py, [owner])
        b.ret_void()

        # ptr value(ctx, obj, table, depth): a new reference, the fallback object (a new reference), or null
        fn, b = function(m, "nvm_py_out", PTR, [PTR, PTR, PTR, I32], inline=False)
        ctx, obj, table, depth = fn.args

        def entry(k):
            return b.load(elem(b, table, k), typ=PTR)

        def fallback():
            fb = entry(OT_FALLBACK)
            b.call(incref_py, [fb])
            b.ret(fb)

        kind = load(b, obj, L.KIND, I32)
        tensor_b, other_b = fn.append_basic_block("tensor"), fn.append_basic_block("other")
        b.cbranch(b.icmp_signed("==", kind, c32(L.KIND_TENSOR)), tensor_b, other_b)

        b.position_at_end(tensor_b)
        code = load(b, obj, L.AUX, I32)
        codes = min(MAX_DTYPE_CODES, self.itemsizes.value_type.count)
        known = b.icmp_unsigned("<", code, c32(codes))
        descr = b.load(elem(b, table, b.add(c64(OT_DESCR), b.zext(b.select(known, code, c32(0)), I64))), typ=PTR)
        with b.if_then(b.or_(b.not_(known), b.icmp_unsigned("==", descr, NULL)), likely=False):
            fallback()
        nd = load(b, obj, L.T_NDIM, I32)
        shape = at(b, obj, L.T_SHAPE)
        count = alloca(b, I64)
        b.store(c64(1), count)
        loop(b, b.zext(nd, I64), lambda b, i: b.store(b.mul(b.load(count, typ=I64), b.load(elem(b, shape, i, I64),
                                                                                           typ=I64)), count))
        itemsize = b.load(b.gep(self.itemsizes, [c64(0), b.zext(code, I64)]), typ=I64)
        nbytes = b.mul(b.load(count, typ=I64), itemsize)
        data = load(b, obj, L.T_DATA, PTR)
        storage = load(b, obj, L.T_STORAGE, PTR)
        inline = b.icmp_signed("==", load(b, obj, L.T_FLAGS, I32), c32(L.T_FLAG_INLINE))
        unowned = b.and_(b.icmp_unsigned("==", storage, NULL), b.icmp_signed("==", load(b, obj, L.T_OWNER, I64),
                                                                             c64(-1)))
        copy = b.or_(b.icmp_signed("==", nbytes, c64(0)), b.or_(inline, unowned))
        make = FnPtr(entry(OT_NEW_FROM_DESCR), new_from_descr)
        copy_b, view_b = fn.append_basic_block("copy"), fn.append_basic_block("view")
        b.cbranch(copy, copy_b, view_b)

        b.position_at_end(copy_b)  # a new array that owns a copy of the data
        b.call(incref_py, [descr])  # (stolen by PyArray_NewFromDescr)
        arr = b.call(make, [entry(OT_NDARRAY), descr, nd, shape, NULL, NULL, c32(0), NULL])
        with b.if_then(b.icmp_unsigned("==", arr, NULL), likely=False):
            b.ret(NULL)
        with b.if_then(b.icmp_signed(">", nbytes, c64(0))):
            b.call(self.memcpy, [load(b, arr, L.NPY_DATA, PTR), data, nbytes, ir.Constant(I1, 0)])
        b.ret(arr)

        b.position_at_end(view_b)  # a view of a pool storage, which its capsule keeps
        with b.if_then(b.icmp_unsigned("==", storage, NULL), likely=False):
            fallback()  # (a view of an input or a constant: Python finds its array)
        aligned = b.icmp_signed("==", b.urem(b.ptrtoint(data, I64), itemsize), c64(0))
        flags = b.select(aligned, c32(NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | NPY_ARRAY_WRITEABLE),
                         c32(NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_WRITEABLE))
        b.call(incref_py, [descr])
        arr = b.call(make, [entry(OT_NDARRAY), descr, nd, shape, NULL, data, flags, NULL])
        with b.if_then(b.icmp_unsigned("==", arr, NULL), likely=False):
            b.ret(NULL)
        b.call(self.incref, [storage])
        capsule = b.call(cap_new, [storage, NULL, release])
        with b.if_then(b.icmp_unsigned("==", capsule, NULL), likely=False):
            b.call(self.storage_release, [storage])
            b.call(decref_py, [arr])
            b.ret(NULL)
        pool = entry(OT_POOL)
        b.call(incref_py, [pool])
        b.call(cap_set_ctx, [capsule, pool])
        attach = FnPtr(entry(OT_SET_BASE), set_base)
        with b.if_then(b.icmp_signed("!=", b.call(attach, [arr, capsule]), c32(0)), likely=False):
            b.call(decref_py, [arr])  # (the capsule was stolen, and released, by PyArray_SetBaseObject)
            b.ret(NULL)
        b.ret(arr)

        b.position_at_end(other_b)  # a tuple (tag 0 ADT) of convertible values; anything else: Python
        is_tuple = b.and_(b.icmp_signed("==", kind, c32(L.KIND_ADT)), b.icmp_signed("==", load(b, obj, L.AUX, I32),
                                                                                     c32(0)))
        with b.if_then(b.or_(b.not_(is_tuple), b.icmp_signed(">=", depth, c32(OUT_DEPTH))), likely=False):
            fallback()
        n = load(b, obj, L.O_COUNT, I64)
        tup = b.call(tuple_new, [n])
        with b.if_then(b.icmp_unsigned("==", tup, NULL), likely=False):
            b.ret(NULL)

        def field(b, i):
            v = b.call(fn, [ctx, b.load(elem(b, at(b, obj, L.O_FIELDS), i), typ=PTR), table, b.add(depth, c32(1))])
            bad = b.or_(b.icmp_unsigned("==", v, NULL), b.icmp_unsigned("==", v, entry(OT_FALLBACK)))
            with b.if_then(bad, likely=False):
                b.call(decref_py, [tup])  # (with the fields built so far)
                b.ret(v)
            b.call(tuple_set, [tup, i, v])

        loop(b, n, field)
        b.ret(tup)

        # PyObject *to_py(ctx, obj, table): the user's value of a result (see the module)
        self.to_py, b = function(m, "nvm_to_py", PTR, [PTR, PTR, PTR], internal=False)
        b.ret(b.call(fn, [*self.to_py.args, c32(0)]))
