"""te computes of the reductions: sum, mean, max, min (any axes, keepdims) and argmax (first index of the max)."""
from __future__ import annotations

from .. import te
from ..te.expr import IntImm
from .compute import product, ravel, register_compute, stage_name
from .relations import normalize_axes


def reduce_over(x: te.Tensor, axes: tuple, keepdims: bool, name: str, body) -> te.Tensor:
    """out[kept...] = body(x_index, reduce_vars): a compute whose index maps to x's index with the reduced axes
    replaced by reduction axes; `body(index, rvars)` returns a te reduction (or any expression of the loads)."""
    rvars = [te.reduce_axis(x.shape[a], f"r{a}") for a in axes]
    kept = [a for a in range(x.ndim) if a not in axes]
    shape = tuple(IntImm(1) if a in axes else d for a, d in enumerate(x.shape)) if keepdims else tuple(
        x.shape[a] for a in kept)

    def fn(*i):
        index = [None] * x.ndim
        out_pos = {a: k for k, a in enumerate(range(x.ndim) if keepdims else kept)}
        for a in kept:
            index[a] = i[out_pos[a]]
        for a, r in zip(axes, rvars):
            index[a] = r.var
        return body(tuple(index), rvars)

    return te.compute(shape, fn, name=name)


def reduce_or_keep(reducer, e, rvars):
    """reducer(e) over rvars; e itself when no axis is reduced (numpy's axis=())."""
    return reducer(e, axis=rvars) if rvars else e


def _axes(name: str, x: te.Tensor, axis) -> tuple:
    return normalize_axes(name, axis, x.ndim)


def _simple_reduction(name: str, reducer):
    """A bool x reduces as int32 and converts back (numpy: sum(...).astype(bool) is any)."""

    def compute(inputs, attrs, out_shapes):
        (x,) = inputs
        axes = _axes(name, x, attrs["axis"])
        as_bool = x.dtype == "bool"

        def body(idx, r):
            return reduce_or_keep(reducer, te.cast("int32", x[idx]) if as_bool else x[idx], r)

        out = reduce_over(x, axes, attrs["keepdims"], stage_name(name, "int" if as_bool else ""), body)
        if as_bool:
            out = te.compute(out.shape, lambda *i: out[i] > 0, name=stage_name(name))  # (an empty max: False)
        return out

    return compute


register_compute("sum")(_simple_reduction("sum", te.sum))
register_compute("max")(_simple_reduction("max", te.max))
register_compute("min")(_simple_reduction("min", te.min))
register_compute("prod")(_simple_reduction("prod", te.prod))


@register_compute("mean")
def _mean(inputs, attrs, out_shapes):
    (x,) = inputs
    axes = _axes("mean", x, attrs["axis"])
    total = reduce_over(x, axes, attrs["keepdims"], "mean_sum",
                        lambda idx, r: reduce_or_keep(te.sum, te.cast("float64", x[idx]), r))
    count = te.cast("float64", product(x.shape[a] for a in axes))
    return te.compute(total.shape, lambda *i: te.cast(x.dtype, total[i] / count), name="mean")


@register_compute("argmax")
def _argmax(inputs, attrs, out_shapes):
    """Two stages: the max, then the least (flat) index holding it."""
    (x,) = inputs
    axis = attrs["axis"]
    axes = _axes("argmax", x, axis)
    keepdims = attrs["keepdims"]
    best = reduce_over(x, axes, keepdims, "argmax_max", lambda idx, r: te.max(x[idx], axis=r))
    never = te.const(2**62, "int64")

    def first_index(idx, rvars):
        pos = rvars[0].var if axis is not None else ravel(idx, x.shape)
        out_idx = tuple(0 if (a in axes) else i for a, i in enumerate(idx)) if keepdims else tuple(
            i for a, i in enumerate(idx) if a not in axes)
        return te.min(te.select(te.eq(x[idx], best[out_idx]), pos, never), axis=rvars)

    return reduce_over(x, axes, keepdims, "argmax", first_index)
