"""te computes of topk_values / topk_indices: each element's rank (how many elements beat it, ties broken by
index) in an O(n^2) stage, then output slot r takes the element whose rank is r (O(k n))."""
from __future__ import annotations

from .. import te
from ..te.expr import as_expr
from .compute import clamp, register_compute
from .relations import normalize_axis


def _indices(name: str, data: te.Tensor, attrs: dict, out_shape: tuple) -> te.Tensor:
    ax = normalize_axis(name, attrs["axis"], data.ndim)
    n = data.shape[ax]
    j = te.reduce_axis(n, "j")

    def beats(a, b, ia, ib):
        """a (at index ia) comes before b (at ib)."""
        better = (a > b) if attrs["largest"] else (a < b)
        return te.any_(better, te.all_(te.eq(a, b), ia < ib))

    def rank(*i):
        other = i[:ax] + (j.var,) + i[ax + 1:]
        return te.sum(te.select(beats(data[other], data[i], j.var, i[ax]), te.const(1, "int64"),
                                te.const(0, "int64")), axis=[j])

    ranks = te.compute(data.shape, rank, name=f"{name}_rank")
    r = te.reduce_axis(n, "r")
    shape = data.shape[:ax] + (as_expr(out_shape[ax]),) + data.shape[ax + 1:]

    def pick(*i):
        at = i[:ax] + (r.var,) + i[ax + 1:]
        return te.min(te.select(te.eq(ranks[at], i[ax]), r.var, n), axis=[r])

    return te.compute(shape, pick, name=f"{name}_index"), ax


@register_compute("topk_indices")
def _topk_indices(inputs, attrs, out_shapes):
    return _indices("topk_indices", inputs[0], attrs, tuple(out_shapes[0]))[0]


@register_compute("topk_values")
def _topk_values(inputs, attrs, out_shapes):
    data = inputs[0]
    index, ax = _indices("topk_values", data, attrs, tuple(out_shapes[0]))
    n = data.shape[ax]
    return te.compute(index.shape, lambda *i: data[i[:ax] + (clamp(index[i], 0, n - 1),) + i[ax + 1:]],
                      name="topk_values")
