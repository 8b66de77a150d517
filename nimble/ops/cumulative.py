"""Cumulative sums and products along one axis (ONNX CumSum / CumProd): inclusive or exclusive, forward or
reversed.

The VM runs them through the O(size) loop-IR scan of ``schedules/cumulative.py`` (``vm/cumulative_kernels.py``),
which matches numpy bit for bit. The te compute here is the plain form for te graphs: a masked reduction,
out[.., i, ..] = sum over r of (x[.., r, ..] where r is in i's prefix, else the identity), O(n^2) along the axis.
"""
from __future__ import annotations

import numpy as np

from .. import te
from ..errors import TypeError
from ..ir.types import TensorType
from .compute import register_compute, stage_name
from .registry import OpPattern, register
from .relations import normalize_axis, tensor_arg


def _rel(name):
    def rel(x, axis, exclusive, reverse):
        x = tensor_arg(name, "x", x)
        if x.dtype == "bool":
            raise TypeError(f"{name}: x must be numeric, got bool")
        normalize_axis(name, axis, x.ndim)
        return TensorType(x.shape, x.dtype)

    return rel


def _reference(fn):
    def run(x, axis, exclusive, reverse):
        x = np.asarray(x)
        axis = normalize_axis("cumulative", axis, x.ndim)
        y = np.flip(x, axis) if reverse else x
        with np.errstate(over="ignore", invalid="ignore"):
            out = fn(y, axis=axis, dtype=x.dtype)
        if exclusive and out.shape[axis]:
            identity = np.full_like(np.take(out, [0], axis=axis), 1 if fn is np.cumprod else 0)
            out = np.concatenate([identity, np.take(out, np.arange(out.shape[axis] - 1), axis=axis)], axis=axis)
        return np.flip(out, axis) if reverse else out

    return run


_builders = {
    name: register(
        name, args=("x",), attrs={"axis": 0, "exclusive": False, "reverse": False}, type_rel=_rel(name),
        shape_func=lambda x, axis, exclusive, reverse: [x], reference=_reference(fn), pattern=OpPattern.OPAQUE,
        doc=f"Cumulative {what} along axis; exclusive: without the element itself; reverse: from the end.",
    )
    for name, fn, what in (("cumsum", np.cumsum, "sum"), ("cumprod", np.cumprod, "product"))
}
cumsum = _builders["cumsum"]
cumprod = _builders["cumprod"]


def _compute(name, reducer, identity):
    def compute(inputs, attrs, out_shapes):
        (x,) = inputs
        axis = normalize_axis(name, attrs["axis"], x.ndim)
        exclusive, reverse = bool(attrs["exclusive"]), bool(attrs["reverse"])
        r = te.reduce_axis(x.shape[axis], "r")

        def body(*i):
            pos = i[axis]
            inside = (pos < r.var if exclusive else pos <= r.var) if reverse else (
                r.var < pos if exclusive else r.var <= pos)
            value = x[tuple(r.var if a == axis else v for a, v in enumerate(i))]
            return reducer(te.select(inside, value, te.const(identity, x.dtype)), axis=r)

        return te.compute(x.shape, body, name=stage_name(name))

    return compute


register_compute("cumsum")(_compute("cumsum", te.sum, 0))
register_compute("cumprod")(_compute("cumprod", te.prod, 1))
