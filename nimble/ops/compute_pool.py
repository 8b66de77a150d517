"""te computes of the N-D pools (max_pool, avg_pool, max_pool_indices): one reduction axis per spatial dim, reads
clamped into the data and masked by `te.select`; the average's divisor is a closed form per output position."""
from __future__ import annotations

import math

from .. import te
from ..te.expr import min_value
from .compute import clamp, product, register_compute
from .pool import geometry, out_len


def _setup(op: str, data: te.Tensor, attrs: dict):
    """(geometry, output shape, reduce axes, window(idx) -> (inside, value, spatial coords))."""
    n = data.ndim - 2
    sizes = data.shape[2:]
    kernel, strides, dilation, before, after = geometry(op, n, attrs, sizes)
    shape = data.shape[:2] + tuple(
        out_len(d, k, s, dl, b, a, attrs["ceil_mode"])
        for d, k, s, dl, b, a in zip(sizes, kernel, strides, dilation, before, after))
    raxes = [te.reduce_axis(k, f"r{i}") for i, k in enumerate(kernel)]

    def window(idx, offsets):
        coords = [o * s + r * dl - b for o, s, r, dl, b in zip(idx[2:], strides, offsets, dilation, before)]
        inside = te.all_(*[te.all_(c >= 0, c < d) for c, d in zip(coords, sizes)])
        value = data[(idx[0], idx[1]) + tuple(clamp(c, 0, d - 1) for c, d in zip(coords, sizes))]
        return inside, value, coords

    return (kernel, strides, dilation, before, after), shape, raxes, window


def _max_stage(op: str, data: te.Tensor, attrs: dict, name: str):
    _, shape, raxes, window = _setup(op, data, attrs)

    def body(*idx):
        inside, value, _ = window(idx, [r.var for r in raxes])
        return te.max(te.select(inside, value, min_value(data.dtype)), axis=raxes)

    return te.compute(shape, body, name=name)


@register_compute("max_pool")
def _max_pool(inputs, attrs, out_shapes):
    return _max_stage("max_pool", inputs[0], attrs, "max_pool")


@register_compute("avg_pool")
def _avg_pool(inputs, attrs, out_shapes):
    """The window sum in float64 over the count of window positions in the data (or in the explicit padding)."""
    (data,) = inputs
    (kernel, strides, dilation, before, after), shape, raxes, window = _setup("avg_pool", data, attrs)

    def window_sum(*idx):
        inside, value, _ = window(idx, [r.var for r in raxes])
        return te.sum(te.select(inside, te.cast("float64", value), 0.0), axis=raxes)

    total = te.compute(shape, window_sum, name="avg_pool_sum")
    include_pad = attrs["count_include_pad"]

    def count(idx):
        """Per dim, the number of k in [0, kernel) with lo <= start + k * dilation < hi."""
        per_dim = []
        for o, d, k, s, dl, b, a in zip(idx[2:], data.shape[2:], kernel, strides, dilation, before, after):
            start = o * s - b
            lo, hi = (-b, d + a) if include_pad else (0, d)
            if dl == 1:  # no division in the common case
                first, last = te.max_(lo - start, 0), te.min_(hi - start, k)
            else:
                first, last = te.max_(te.ceildiv(lo - start, dl), 0), te.min_(te.ceildiv(hi - start, dl), k)
            per_dim.append(te.max_(last - first, 0))
        return te.cast("float64", product(per_dim))

    return te.compute(shape, lambda *idx: te.cast(data.dtype, total[idx] / count(idx)), name="avg_pool")


@register_compute("max_pool_indices")
def _max_pool_indices(inputs, attrs, out_shapes):
    """The max, then the least window position (row-major over the window) holding it, as a flat data index."""
    (data,) = inputs
    (kernel, *_), shape, raxes, window = _setup("max_pool_indices", data, attrs)
    best = _max_stage("max_pool_indices", data, attrs, "max_pool_indices_max")
    never = te.const(math.prod(kernel), "int64")

    def first(*idx):
        inside, value, _ = window(idx, [r.var for r in raxes])
        pos = te.const(0, "int64")
        for r, k in zip(raxes, kernel):
            pos = pos * k + r.var
        return te.min(te.select(te.all_(inside, te.eq(value, best[idx])), pos, never), axis=raxes)

    where = te.compute(shape, first, name="max_pool_indices_pos")
    sizes = data.shape[2:]

    def flat(*idx):
        pos = te.min_(where[idx], never - 1)
        offsets = []
        for k in reversed(kernel):
            offsets.append(pos % k)
            pos = pos // k
        _, _, coords = window(idx, list(reversed(offsets)))
        coords = [clamp(c, 0, d - 1) for c, d in zip(coords, sizes)]
        order = list(reversed(range(len(sizes)))) if attrs["storage_order"] else list(range(len(sizes)))
        spatial = te.const(0, "int64")
        for i in order:
            spatial = spatial * sizes[i] + coords[i]
        return (idx[0] * data.shape[1] + idx[1]) * product(sizes) + spatial

    return te.compute(shape, flat, name="max_pool_indices")
