"""Partial evaluation of elementwise ops on shape tensors: an element that is an int on both sides (or a run-time
dim compared with a negative number, multiplied by 1, ...) is computed now, so `Where(Equal(shape, -1), ...)`
chains the exporters write around Expand / Reshape keep their static dims."""
from __future__ import annotations

import operator
from dataclasses import replace

import numpy as np

from .onnx_values import DimRef, Value, const_value

_INT_OPS = {
    "Add": operator.add, "Sub": operator.sub, "Mul": operator.mul, "Equal": operator.eq, "Less": operator.lt,
    "Greater": operator.gt, "LessOrEqual": operator.le, "GreaterOrEqual": operator.ge,
    "Div": lambda a, b: int(a / b), "Max": max, "Min": min,
}
_COMPARE = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"}


def elements(v: Value):
    """The elements of a rank-0/1 shape-like tensor (ints, bools, DimRefs, None), or None if not tracked."""
    if v.is_const and v.ndim <= 1 and v.dtype in ("int64", "int32", "bool"):
        return tuple(x.item() for x in v.const.reshape(-1))
    if v.dims is not None and v.ndim <= 1:
        return v.dims
    return None


def _element(op: str, x, y):
    known = lambda d: isinstance(d, (int, bool, np.integer))  # noqa: E731
    if known(x) and known(y):
        return _INT_OPS[op](x, y)
    if isinstance(x, DimRef) and known(y) or isinstance(y, DimRef) and known(x):
        ref, k = (x, y) if isinstance(x, DimRef) else (y, x)
        if op == "Equal" and k < 0:
            return False
        if (op == "Mul" and k == 1) or (op in ("Add",) and k == 0) or (op in ("Sub", "Div") and ref is x
                                                                       and k == (0 if op == "Sub" else 1)):
            return ref
    if isinstance(x, DimRef) and x == y and op == "Equal":
        return True
    return None


def _broadcast(xs, ys):
    if len(xs) == len(ys):
        return list(zip(xs, ys))
    if len(xs) == 1:
        return [(xs[0], y) for y in ys]
    if len(ys) == 1:
        return [(xs, y) for y in ys] if False else [(x, ys[0]) for x in xs]
    return None


def fold_binary(op: str, a: Value, b: Value, out: Value) -> Value:
    """`out` (the emitted op) as a constant or with tracked dims when the elements allow."""
    if op not in _INT_OPS or out.is_const or out.ndim > 1:
        return out
    xs, ys = elements(a), elements(b)
    if xs is None or ys is None:
        return out
    pairs = _broadcast(xs, ys)
    if pairs is None:
        return out
    result = tuple(_element(op, x, y) for x, y in pairs)
    return _finish(result, out)


def fold_where(cond: Value, a: Value, b: Value, out: Value) -> Value:
    if out.is_const or out.ndim > 1:
        return out
    cs, xs, ys = elements(cond), elements(a), elements(b)
    if cs is None or xs is None or ys is None:
        return out
    n = max(len(cs), len(xs), len(ys))
    if any(len(e) not in (1, n) for e in (cs, xs, ys)):
        return out
    pick = lambda e, i: e[0] if len(e) == 1 else e[i]  # noqa: E731
    result = []
    for i in range(n):
        c = pick(cs, i)
        result.append(None if not isinstance(c, (bool, np.bool_)) else (pick(xs, i) if c else pick(ys, i)))
    return _finish(tuple(result), out)


def _finish(result: tuple, out: Value) -> Value:
    if all(isinstance(r, (int, bool, np.integer, np.bool_)) for r in result):
        return const_value(np.array(result, dtype=out.dtype).reshape(out.shape if out.ndim else ()))
    if all(r is None for r in result):
        return out
    return replace(out, dims=result)
