"""The Python VM's entry into one linked kernel: ``kernel_call(linked) -> call(vals)``, a closure.

The hot path checks each argument (an ``ndarray`` of the kernel's dtype and rank), picks the
residue variant, reads the shape variables and calls the kernel; anything unexpected goes to
``LinkedKernel.__call__`` (the slow path with the error that names the argument). The argument
check is written out per arity up to ``UNROLLED`` arguments (a loop costs about as much again as
the ctypes call of a tiny kernel); larger kernels use the loop.
"""
from __future__ import annotations

import numpy as np

from ..codegen.threads import num_threads

UNROLLED = 8
_A = np.ndarray


def _check1(e):
    (d0, n0), = e
    return lambda v: v[0].__class__ is _A and v[0].dtype is d0 and v[0].ndim == n0


def _check2(e):
    (d0, n0), (d1, n1) = e

    def ok(v):
        a0, a1 = v
        return (a0.__class__ is _A and a0.dtype is d0 and a0.ndim == n0
                and a1.__class__ is _A and a1.dtype is d1 and a1.ndim == n1)
    return ok


def _check3(e):
    (d0, n0), (d1, n1), (d2, n2) = e

    def ok(v):
        a0, a1, a2 = v
        return (a0.__class__ is _A and a0.dtype is d0 and a0.ndim == n0
                and a1.__class__ is _A and a1.dtype is d1 and a1.ndim == n1
                and a2.__class__ is _A and a2.dtype is d2 and a2.ndim == n2)
    return ok


def _check4(e):
    first, last = _check2(e[:2]), _check2(e[2:])
    return lambda v: first(v[:2]) and last(v[2:])


def _check_n(e):
    def ok(v):
        for a, (dt, nd) in zip(v, e):
            if a.__class__ is not _A or a.dtype is not dt or a.ndim != nd:
                return False
        return True
    return ok


def _checker(expect: tuple):
    """``ok(vals)``: every value an ndarray of the expected (dtype, rank); ``len(vals)`` checked before."""
    n = len(expect)
    if n == 0:
        return lambda v: True
    if n <= 3:
        return (_check1, _check2, _check3)[n - 1](expect)
    if n == 4:
        return _check4(expect)
    if n <= UNROLLED:
        head, tail = _check3(expect[:3]), _checker(expect[3:])
        return lambda v: head(v[:3]) and tail(v[3:])
    return _check_n(expect)


def _binary_call(linked):
    """Three arguments (two inputs, one output: most fused kernels), at most one shape variable
    and one residue variant on a dim: the whole call in one closure, or None for other kernels."""
    choices, shape_vars = linked.choices, linked.shape_vars
    if len(linked.dtypes) != 3 or len(shape_vars) > 1 or len(choices) > 1 or any(len(c) != 1 for c, _ in choices):
        return None
    (d0, n0), (d1, n1), (d2, n2) = zip(linked.dtypes, linked.ndims)
    general, slow, raise_status = linked.general, linked.__call__, linked._raise_status
    if not shape_vars:
        def call(vals):
            if len(vals) != 3:
                return slow(vals)
            a0, a1, a2 = vals
            if (a0.__class__ is not _A or a0.dtype is not d0 or a0.ndim != n0 or a1.__class__ is not _A
                    or a1.dtype is not d1 or a1.ndim != n1 or a2.__class__ is not _A or a2.dtype is not d2
                    or a2.ndim != n2):
                return slow(vals)
            status = general(a0, a1, a2, num_threads())
            if status:
                raise_status(status, vals)
        return call
    ((sa, sd),) = shape_vars
    (((ca, cd, factor),), variant), = choices or ((((sa, sd, 1),), general),)  # no variant: test the shape var's dim

    def call_var(vals):
        if len(vals) != 3:
            return slow(vals)
        a0, a1, a2 = vals
        if (a0.__class__ is not _A or a0.dtype is not d0 or a0.ndim != n0 or a1.__class__ is not _A
                or a1.dtype is not d1 or a1.ndim != n1 or a2.__class__ is not _A or a2.dtype is not d2
                or a2.ndim != n2):
            return slow(vals)
        status = (variant if vals[ca].shape[cd] % factor == 0 else general)(
            a0, a1, a2, vals[sa].shape[sd], num_threads())
        if status:
            raise_status(status, vals)
    return call_var


def _unary_call(linked):
    """Two arguments (one input, one output), no shape variable: one closure, or None."""
    if len(linked.dtypes) != 2 or linked.shape_vars or linked.choices:
        return None
    (d0, n0), (d1, n1) = zip(linked.dtypes, linked.ndims)
    general, slow, raise_status = linked.general, linked.__call__, linked._raise_status

    def call(vals):
        if len(vals) != 2:
            return slow(vals)
        a0, a1 = vals
        if (a0.__class__ is not _A or a0.dtype is not d0 or a0.ndim != n0 or a1.__class__ is not _A
                or a1.dtype is not d1 or a1.ndim != n1):
            return slow(vals)
        status = general(a0, a1, num_threads())
        if status:
            raise_status(status, vals)
    return call


def kernel_call(linked):
    """``call(vals)``: ``linked(vals)`` without attribute lookups or loops on the hot path."""
    inlined = _binary_call(linked) or _unary_call(linked)
    if inlined is not None:
        return inlined
    n, general, choices, shape_vars = len(linked.dtypes), linked.general, linked.choices, linked.shape_vars
    expect = tuple(zip(linked.dtypes, linked.ndims))
    slow, raise_status = linked.__call__, linked._raise_status
    ok = _checker(expect)

    if not choices and not shape_vars:
        def call(vals):
            if len(vals) != n or not ok(vals):
                return slow(vals)
            status = general(*vals, num_threads())
            if status:
                raise_status(status, vals)
        return call

    if not choices and len(shape_vars) == 1:
        ((a0, d0),) = shape_vars

        def call_one_var(vals):
            if len(vals) != n or not ok(vals):
                return slow(vals)
            status = general(*vals, vals[a0].shape[d0], num_threads())
            if status:
                raise_status(status, vals)
        return call_one_var

    if len(choices) == 1 and len(choices[0][0]) == 1 and len(shape_vars) == 1:
        (((ca, cd, factor),), variant), = choices
        ((a0, d0),) = shape_vars

        def call_one_residue(vals):
            if len(vals) != n or not ok(vals):
                return slow(vals)
            status = (variant if vals[ca].shape[cd] % factor == 0 else general)(
                *vals, vals[a0].shape[d0], num_threads())
            if status:
                raise_status(status, vals)
        return call_one_residue

    def call_general(vals):
        if len(vals) != n or not ok(vals):
            return slow(vals)
        cfunc = general
        for conds, cf in choices:
            for a, d, f in conds:
                if vals[a].shape[d] % f:
                    break
            else:
                cfunc = cf
                break
        status = cfunc(*vals, *[vals[a].shape[d] for a, d in shape_vars], num_threads())
        if status:
            raise_status(status, vals)
    return call_general
