"""N-D pooling over (N, C, D1, ..., Dn) data: max_pool, avg_pool and max_pool_indices, with dilations, ceil mode
and ONNX's padding (`padding` = (before_1, ..., before_n, after_1, ..., after_n)).

Output length of a spatial dim of size L, kernel k, stride s, dilation d, pads b and a, with span = d * (k - 1) + 1:
floor mode `(L + b + a - span) // s + 1`; ceil mode `ceil((L + b + a - span) / s) + 1`, less one when that last
window would start at or past `L + b` (inside the after-padding only; for symbolic L the same as
`min(ceil((L + b + a - span) / s) + 1, ceil((L + b) / s))`), as in ONNX Runtime and PyTorch.
A window position counts for the max and for the average when it lies in the data; with `count_include_pad` the
average's divisor counts the positions in [-b, L + a) (the explicit padding, not ceil mode's overhang).
`max_pool_indices` is the flat index into the data of each window's first maximum (window order), row-major or,
with `storage_order=1`, column-major over the spatial dims (ONNX MaxPool's Indices output).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ShapeError
from ..errors import TypeError as NimbleTypeError
from ..ir.types import AnyDim, TensorType
from .registry import REQUIRED, OpPattern, register
from .relations import FLOAT_DTYPES, INT_DTYPES, rank_at_least, tensor_arg

Any = AnyDim()
POOL_DTYPES = FLOAT_DTYPES + INT_DTYPES


AUTO_PADS = ("", "SAME_UPPER", "SAME_LOWER")


def geometry(op: str, n: int, attrs: dict, sizes=None) -> tuple:
    """(kernel, strides, dilations, before, after) as lists of length n, checked. With auto_pad SAME_UPPER /
    SAME_LOWER the pads come from the spatial `sizes` (ints, or te expressions for symbolic dims)."""
    kernel = _ints(op, "pool_size", attrs["pool_size"], n, 1)
    strides = _ints(op, "strides", attrs["strides"] or (1,) * n, n, 1)
    dilation = _ints(op, "dilation", attrs["dilation"] or (1,) * n, n, 1)
    auto = attrs.get("auto_pad", "")
    if auto not in AUTO_PADS:
        raise NimbleTypeError(f"{op}: auto_pad must be one of {AUTO_PADS}, got {auto!r}")
    if not auto:
        padding = _ints(op, "padding", attrs["padding"] or (0,) * (2 * n), 2 * n, 0)
        return kernel, strides, dilation, padding[:n], padding[n:]
    if attrs["ceil_mode"]:
        raise ShapeError(f"{op}: ceil_mode with auto_pad={auto} is not defined")
    before, after = [], []
    for size, k, s, dl in zip(sizes, kernel, strides, dilation):
        b, a = same_pads(size, k, s, dl, auto == "SAME_UPPER")
        before.append(b)
        after.append(a)
    return kernel, strides, dilation, before, after


def same_pads(size, kernel: int, stride: int, dilation: int, upper: bool):
    """(before, after) padding that gives ceil(size / stride) windows, the odd one after (upper) or before."""
    span = dilation * (kernel - 1) + 1
    if isinstance(size, (int, np.integer)):
        total = max(0, (-(-int(size) // stride) - 1) * stride + span - int(size))
    else:
        from .. import te

        total = te.max_((te.ceildiv(size, stride) - 1) * stride + span - size, 0)
    small = total // 2
    return (small, total - small) if upper else (total - small, small)


def _ints(op: str, name: str, values, n: int, least: int) -> list:
    try:
        out = [int(v) for v in values]
    except (TypeError, ValueError):
        raise NimbleTypeError(f"{op}: {name} must be a sequence of ints, got {values!r}") from None
    if len(out) != n:
        raise ShapeError(f"{op}: {name} needs {n} values for {n if name != 'padding' else n // 2} spatial dims, "
                         f"got {len(out)}")
    if any(v < least for v in out):
        raise ShapeError(f"{op}: {name} must be >= {least}, got {out}")
    return out


def out_len(size, kernel: int, stride: int, dilation: int, before: int, after: int, ceil_mode: bool):
    """Output length of one spatial dim (an int, or a te expression for a te size)."""
    span = dilation * (kernel - 1) + 1
    if isinstance(size, (int, np.integer)):
        room = int(size) + before + after - span
        if room < 0:
            raise ShapeError(f"a pooling window of {span} does not fit into {size} + padding {before} + {after}")
        if not ceil_mode:
            return room // stride + 1
        return min(-(-room // stride) + 1, -(-(int(size) + before) // stride))
    from .. import te

    room = size + (before + after - span)
    if not ceil_mode:
        return room // stride + 1
    # the windows that start before L + b (in the data or its before-padding), at most ceil(room / s) + 1
    return te.min_(te.ceildiv(room, stride) + 1, te.ceildiv(size + before, stride))


def _rel(op: str, out_dtype=None):
    def rel(data, pool_size, strides, dilation, padding, ceil_mode, auto_pad, **_):
        data = tensor_arg(op, "data", data, POOL_DTYPES)
        rank_at_least(op, "data", data, 3)
        n = data.ndim - 2
        attrs = {"pool_size": pool_size, "strides": strides, "dilation": dilation, "padding": padding,
                 "ceil_mode": ceil_mode, "auto_pad": auto_pad}
        static = [d if isinstance(d, int) else 1 for d in data.shape[2:]]  # pads of symbolic dims are not used
        kernel, st, dil, before, after = geometry(op, n, attrs, static)
        spatial = tuple(
            out_len(d, k, s, dl, b, a, ceil_mode) if isinstance(d, int) else Any
            for d, k, s, dl, b, a in zip(data.shape[2:], kernel, st, dil, before, after)
        )
        return TensorType(data.shape[:2] + spatial, out_dtype or data.dtype)

    return rel


def _shape(op: str):
    def shape_func(data, pool_size, strides, dilation, padding, ceil_mode, auto_pad, **_):
        n = len(data) - 2
        attrs = {"pool_size": pool_size, "strides": strides, "dilation": dilation, "padding": padding,
                 "ceil_mode": ceil_mode, "auto_pad": auto_pad}
        kernel, st, dil, before, after = geometry(op, n, attrs, [int(d) for d in data[2:]])
        spatial = [out_len(int(d), k, s, dl, b, a, ceil_mode)
                   for d, k, s, dl, b, a in zip(data[2:], kernel, st, dil, before, after)]
        return [np.array([data[0], data[1], *spatial], dtype=np.int64)]

    return shape_func


# ---- numpy references ---------------------------------------------------------------------------------------
def _windows(op: str, data: np.ndarray, attrs: dict):
    """(values, in_data, in_padding, out_shape): (N, C, *out, K) windows of the data (K = the window's positions
    in row-major order), whether each position is in the data, and whether it is in [-before, L + after)."""
    n = data.ndim - 2
    kernel, strides, dilation, before, after = geometry(op, n, attrs, data.shape[2:])
    outs = [out_len(d, k, s, dl, b, a, attrs["ceil_mode"])
            for d, k, s, dl, b, a in zip(data.shape[2:], kernel, strides, dilation, before, after)]
    spans = [dl * (k - 1) + 1 for k, dl in zip(kernel, dilation)]
    extra = [max(0, (o - 1) * s + sp - (d + b + a))
             for o, s, sp, d, b, a in zip(outs, strides, spans, data.shape[2:], before, after)]
    pad = [(0, 0), (0, 0)] + [(b, a + e) for b, a, e in zip(before, after, extra)]
    fill = np.zeros((), data.dtype)
    values = np.pad(data, pad, constant_values=fill)
    in_data = np.pad(np.ones(data.shape[2:], bool), pad[2:], constant_values=False)
    in_pad = np.pad(np.ones([d + b + a for d, b, a in zip(data.shape[2:], before, after)], bool),
                    [(0, e) for e in extra], constant_values=False)
    flat_index = np.pad(np.arange(int(np.prod(data.shape[2:])), dtype=np.int64).reshape(data.shape[2:]),
                        pad[2:], constant_values=-1)

    def view(x, lead):
        axes = tuple(range(lead, lead + n))
        w = sliding_window_view(x, spans, axis=axes)
        sel = (slice(None),) * lead + tuple(slice(None, o * s, s) for o, s in zip(outs, strides))
        sel += tuple(slice(None, None, dl) for dl in dilation)
        w = w[sel]
        return w.reshape(w.shape[: lead + n] + (int(np.prod(w.shape[lead + n:])),))

    return view(values, 2), view(in_data, 0), view(in_pad, 0), view(flat_index, 0), outs


def _max_ref(data, **attrs):
    values, in_data, *_ = _windows("max_pool", data, attrs)
    low = -np.inf if data.dtype.kind == "f" else np.iinfo(data.dtype).min
    return np.where(in_data, values, low).max(axis=-1, initial=low).astype(data.dtype)


def _avg_ref(data, count_include_pad, **attrs):
    values, in_data, in_pad, _, _ = _windows("avg_pool", data, attrs)
    total = np.where(in_data, values.astype(np.float64), 0.0).sum(axis=-1)
    count = (in_pad if count_include_pad else in_data).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count).astype(data.dtype)


def _indices_ref(data, storage_order, **attrs):
    values, in_data, _, flat, _ = _windows("max_pool_indices", data, attrs)
    low = -np.inf if data.dtype.kind == "f" else np.iinfo(data.dtype).min
    best = np.where(in_data, values, low).max(axis=-1, keepdims=True, initial=low)
    first = np.argmax(in_data & (values == best), axis=-1)
    spatial = np.take_along_axis(np.broadcast_to(flat, values.shape), first[..., None], axis=-1)[..., 0]
    spatial = np.maximum(spatial, 0)
    dims = data.shape[2:]
    if storage_order:
        coords = np.unravel_index(spatial, dims)
        spatial = np.ravel_multi_index(coords, dims, order="F")
    plane = int(np.prod(dims))
    n_c = np.arange(data.shape[0] * data.shape[1], dtype=np.int64).reshape(data.shape[:2] + (1,) * len(dims))
    return (n_c * plane + spatial).astype(np.int64)


_COMMON = {"pool_size": REQUIRED, "strides": (), "dilation": (), "padding": (), "ceil_mode": False, "auto_pad": ""}
_DOC = (" of (N, C, D1..Dn) data over pool_size windows (strides, dilation, padding = befores + afters, ceil_mode;"
        " auto_pad SAME_UPPER / SAME_LOWER pads each dim to ceil(size / stride) windows from its run-time size).")

max_pool = register(
    "max_pool", args=("data",), attrs=dict(_COMMON), type_rel=_rel("max_pool"), shape_func=_shape("max_pool"),
    reference=_max_ref, pattern=OpPattern.OUT_ELEMWISE_FUSABLE, doc="Max" + _DOC,
)
avg_pool = register(
    "avg_pool", args=("data",), attrs=dict(_COMMON, count_include_pad=False), type_rel=_rel("avg_pool"),
    shape_func=_shape("avg_pool"), reference=_avg_ref, pattern=OpPattern.OUT_ELEMWISE_FUSABLE,
    doc="Mean" + _DOC + " The divisor counts the positions in the data, or with count_include_pad those in the "
    "explicit padding too.",
)
max_pool_indices = register(
    "max_pool_indices", args=("data",), attrs=dict(_COMMON, storage_order=0),
    type_rel=_rel("max_pool_indices", "int64"), shape_func=_shape("max_pool_indices"), reference=_indices_ref,
    pattern=OpPattern.OUT_ELEMWISE_FUSABLE,
    doc="Flat int64 index into the data of each window's first maximum" + _DOC
    + " storage_order=1 numbers the spatial dims column-major (ONNX MaxPool's Indices).",
)
