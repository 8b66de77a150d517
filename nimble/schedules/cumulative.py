"""cumsum / cumprod as a hand-written loop-IR scan: O(size) work, against the O(n^2) masked reduction of their te
compute (te has no running accumulator), compiled with ``codegen.build.build_func`` like ``nonzero.py``.

The kernel ``(x, out)``: x of any rank r >= 1 viewed as (outer, n, inner) around ``axis``. Each step reads the
previous output element back, out[o, j, i] = out[o, j - 1, i] (op) x[o, j (- 1 when exclusive), i], walking j
upward, or downward when reversed, with the innermost loop over i (contiguous); the first element is x's own
(exclusive: the identity, then x's first). Reading the stored value back
rounds every partial result to the dtype as numpy's accumulate does (float16, the narrow ints' wrap-around), and
the order of the operations is numpy's, so float results are bit for bit numpy's. Rows of ``outer`` run in
parallel.
"""
from __future__ import annotations

from .. import te
from ..codegen.build import Kernel, build_func
from ..errors import ShapeError, TypeError
from ..te.expr import IntImm, Var, as_expr
from ..te.simplify import simplify
from ..tir.nodes import Buffer, For, IfThenElse, LetStmt, Load, PrimFunc, Store, seq

ZERO, ONE = IntImm(0), IntImm(1)
IDENTITY = {"cumsum": 0, "cumprod": 1}


def _product(dims) -> te.Expr:
    acc = ONE
    for d in dims:
        acc = acc * d
    return simplify(acc)


def cumulative_func(name: str, op: str, shape: tuple, dtype: str, axis: int, exclusive: bool,
                    reverse: bool) -> PrimFunc:
    """The loop IR of ``op`` ("cumsum" or "cumprod") along ``axis`` (normalized, 0 <= axis < rank) of x of
    ``shape`` (ints and te vars) and ``dtype``."""
    if op not in IDENTITY:
        raise TypeError(f"cumulative_func: op must be one of {sorted(IDENTITY)}, got {op!r}")
    if dtype == "bool":
        raise TypeError(f"{op}: x must be numeric, got bool")
    if not shape or not 0 <= axis < len(shape):
        raise ShapeError(f"{op}: axis must be in [0, {len(shape)}) of a tensor of rank >= 1, got axis {axis}")
    shape = tuple(as_expr(d) for d in shape)
    outer, n, inner = _product(shape[:axis]), shape[axis], _product(shape[axis + 1:])
    x, out = Buffer("x", dtype, shape), Buffer("out", dtype, shape)
    o, j, i, row, pos = Var("o"), Var("j"), Var("i"), Var("row"), Var("pos")
    step = -1 if reverse else 1
    first = simplify(n - 1) if reverse else ZERO

    def at(p, k):
        return row + p * inner + k

    lag = 1 if exclusive else 0
    acc, value = Load(out, at(pos - step, i)), Load(x, at(pos - step * lag, i))
    combined = acc + value if op == "cumsum" else acc * value
    scan = For(j, IntImm(1 + lag), simplify(n - 1 - lag), "serial", LetStmt(
        pos, simplify(n - 1 - j) if reverse else j, For(i, ZERO, inner, "serial", Store(out, at(pos, i), combined))))

    def each_i(store):
        return For(i, ZERO, inner, "serial", store)

    if exclusive:  # the identity, then x's first element as it is (0 + -0.0 would lose its sign), then the scan
        rows = seq(each_i(Store(out, at(first, i), te.const(IDENTITY[op], dtype))), IfThenElse(n > 1, seq(
            each_i(Store(out, at(first + step, i), Load(x, at(first, i)))), scan)))
    else:
        rows = seq(each_i(Store(out, at(first, i), Load(x, at(first, i)))), scan)
    body = For(o, ZERO, outer, "parallel", LetStmt(row, o * n * inner, rows))
    shape_vars = tuple(dict.fromkeys(d for d in shape if isinstance(d, Var)))
    return PrimFunc(name, (x, out), shape_vars, IfThenElse(n > 0, body), {})


def build_cumulative(name: str, op: str, shape: tuple, dtype: str, axis: int, exclusive: bool,
                     reverse: bool) -> Kernel:
    """The compiled scan kernel ``(x, out)`` (see ``cumulative_func``)."""
    return build_func(cumulative_func(name, op, shape, dtype, axis, exclusive, reverse), outputs=(1,))
