"""Converters of ONNX operators whose sizes come from run-time values: NonZero, Trilu over run-time dims (a causal
mask over a dynamic sequence) with a run-time k, Tile with run-time repeats, Pad with run-time pads and fill value.

Each builds index vectors with `arange` (the data-dependent shape function gives their length at run time) and
gathers with `take`, so no dim of the input has to be static; inputs known at conversion time keep the cheaper
static forms (a constant mask, concatenation).
"""
from __future__ import annotations

import numpy as np

from .onnx_attrs import axes_in
from .onnx_graph import ConversionError, MalformedNodeError, converter
from .onnx_ops_index import _scalar_at
from .onnx_ops_shape import value_dims
from .onnx_values import Value, const_value

_I64 = np.int64


def dim_of(ctx, x: Value, axis: int) -> Value:
    """Dim `axis` of `x` as a rank-0 int64 value (a constant when static)."""
    d = x.shape[axis]
    if isinstance(d, int):
        return const_value(np.array(d, _I64))
    return ctx.emit("take", ctx.emit("shape_of", x), np.array(axis % x.ndim, _I64), axis=0)


def scalar_int64(ctx, v: Value) -> Value:
    """A rank-0 or 1-element int tensor as a rank-0 int64 value."""
    if v.is_const:
        return const_value(np.asarray(v.const, _I64).reshape(()))
    if v.ndim:
        v = ctx.emit("reshape", v, newshape=())
    return ctx.emit("cast", v, dtype="int64") if v.dtype != "int64" else v


def positive_mod(ctx, a: Value, b: Value) -> Value:
    """a mod b in [0, b) for int64 a and b > 0 (the IR's integer divide truncates)."""
    rem = ctx.emit("subtract", a, ctx.emit("multiply", ctx.emit("divide", a, b), b))
    return ctx.emit("where", ctx.emit("less", rem, np.array(0, _I64)), ctx.emit("add", rem, b), rem)


def along(ctx, v: Value, axis: int, rank: int) -> Value:
    """A 1-D `v` reshaped to broadcast along `axis` of a rank-`rank` tensor."""
    return ctx.emit("reshape", v, newshape=tuple(-1 if k == axis else 1 for k in range(rank)))


# ---- Trilu -------------------------------------------------------------------------------------------------
@converter("Trilu")
def trilu(ctx, node, inputs, attrs):
    x = inputs[0]
    if x.ndim < 2:
        raise MalformedNodeError(f"the input has rank {x.ndim}, expected rank >= 2")
    k = inputs[1] if len(inputs) > 1 and inputs[1] is not None else const_value(np.array(0, _I64))
    upper = bool(attrs.get("upper", 1))
    zero = np.zeros((), dtype=x.dtype)
    n, m = x.shape[-2:]
    if k.is_const and isinstance(n, int) and isinstance(m, int):
        ones = np.ones((n, m), dtype=bool)
        kk = int(np.asarray(k.const).reshape(()))
        mask = np.triu(ones, kk) if upper else np.tril(ones, kk)
        return [ctx.emit("where", mask, x, zero, type_=x.type)]
    # column - row compared with k, over run-time row / column counts (a causal mask over a dynamic sequence)
    step = np.array(1, _I64)
    rows = ctx.emit("arange", np.array(0, _I64), dim_of(ctx, x, x.ndim - 2), step, dtype="int64")
    cols = ctx.emit("arange", np.array(0, _I64), dim_of(ctx, x, x.ndim - 1), step, dtype="int64")
    diff = ctx.emit("subtract", cols, ctx.emit("reshape", rows, newshape=(-1, 1)))
    mask = ctx.emit("greater_equal" if upper else "less_equal", diff, scalar_int64(ctx, k))
    return [ctx.emit("where", mask, x, zero, type_=x.type)]


# ---- Tile --------------------------------------------------------------------------------------------------
@converter("Tile")
def tile(ctx, node, inputs, attrs):
    x, repeats = inputs
    known = value_dims(repeats)
    if known is None:
        raise ConversionError(f"the repeats input must have a static length (expected {x.ndim}), "
                              f"got shape {repeats.shape}")
    if len(known) != x.ndim:
        raise MalformedNodeError(f"repeats has {len(known)} elements, expected one per input dim ({x.ndim})")
    for axis, r in enumerate(known):
        if isinstance(r, int) and r == 1:
            continue
        if isinstance(r, int) and isinstance(x.shape[axis], int) and r <= 16:
            x = ctx.concat([x] * r, axis) if r > 0 else ctx.emit("strided_slice", x, begin=(0,), end=(0,),
                                                                   axes=(axis,))
            continue
        # index i of the output reads i mod dim of the input; the output length dim * r is a run-time value
        d = dim_of(ctx, x, axis)
        total = ctx.emit("multiply", d, _scalar_at(ctx, repeats, r, axis))
        idx = ctx.emit("arange", np.array(0, _I64), total, np.array(1, _I64), dtype="int64")
        x = ctx.emit("take", x, positive_mod(ctx, idx, ctx.emit("maximum", d, np.array(1, _I64))), axis=axis,
                     mode="clip")
    return [x]


# ---- Pad ---------------------------------------------------------------------------------------------------
_MODES = ("constant", "reflect", "edge", "wrap")


@converter("Pad")
def pad(ctx, node, inputs, attrs):
    x, pads = inputs[0], inputs[1] if len(inputs) > 1 else None
    mode = attrs.get("mode", "constant")
    if mode not in _MODES:
        raise MalformedNodeError(f"mode {mode!r} is not one of {_MODES}")
    if pads is None:
        raise MalformedNodeError("the pads input is missing")
    fill = inputs[2] if len(inputs) > 2 and inputs[2] is not None else const_value(np.zeros((), x.dtype))
    axes = inputs[3] if len(inputs) > 3 and inputs[3] is not None else None
    if axes is not None:
        if not axes.is_const:
            raise ConversionError("Pad axes must be a constant (they decide which output dims change)")
        axes = axes_in([int(a) for a in axes.const.reshape(-1)], x.ndim, "Pad axes")
    else:
        axes = list(range(x.ndim))
    known = value_dims(pads)
    if known is None or len(known) != 2 * len(axes):
        raise MalformedNodeError(f"pads has shape {pads.shape}, expected 2 x {len(axes)} elements")
    if fill.ndim:
        fill = ctx.emit("reshape", fill, newshape=()) if not fill.is_const else const_value(fill.const.reshape(()))
    if fill.dtype != x.dtype:
        fill = ctx.emit("cast", fill, dtype=x.dtype)
    n = len(axes)
    out = x
    for i, axis in enumerate(axes):
        begin, end = known[i], known[i + n]
        if isinstance(begin, int) and isinstance(end, int) and begin == 0 and end == 0:
            continue
        if mode == "constant" and fill.is_const and _static_nonnegative(out, begin, end):
            out = _pad_by_concat(ctx, out, axis, begin, end, fill.const)
            continue
        out = _pad_by_take(ctx, out, axis, _scalar_at(ctx, pads, begin, i), _scalar_at(ctx, pads, end, i + n),
                           mode, fill)
    return [out]


def pad_with_zeros(ctx, x: Value, axis: int, begin: int, end: int) -> Value:
    """`x` with `begin` / `end` zeros before / after it along `axis` (static, non-negative counts)."""
    if begin == 0 and end == 0:
        return x
    zero = np.zeros((), x.dtype)
    if _static_nonnegative(x, begin, end):
        return _pad_by_concat(ctx, x, axis, begin, end, zero)
    return _pad_by_take(ctx, x, axis, const_value(np.array(begin, _I64)), const_value(np.array(end, _I64)),
                        "constant", const_value(zero))


def _static_nonnegative(x, begin, end) -> bool:
    return (isinstance(begin, int) and isinstance(end, int) and begin >= 0 and end >= 0
            and all(isinstance(d, int) for d in x.shape))


def _pad_by_concat(ctx, x, axis, begin, end, fill):
    parts = []
    for size in (begin, end):
        shape = list(x.shape)
        shape[axis] = size
        parts.append(np.full(shape, fill, dtype=x.dtype))
    return ctx.concat([parts[0], x, parts[1]], axis)


def _pad_by_take(ctx, x, axis, begin, end, mode, fill):
    """Negative pads crop first (as ONNX Runtime does); then output position j along `axis` reads index j - pad of
    the cropped input, mapped into range by the mode, shifted by the crop."""
    one, zero = np.array(1, _I64), np.array(0, _I64)
    crop_begin = ctx.emit("maximum", ctx.emit("negative", begin), zero)
    crop_end = ctx.emit("maximum", ctx.emit("negative", end), zero)
    pad_begin, pad_end = ctx.emit("maximum", begin, zero), ctx.emit("maximum", end, zero)
    d = ctx.emit("subtract", ctx.emit("subtract", dim_of(ctx, x, axis), crop_begin), crop_end)
    idx = ctx.emit("arange", ctx.emit("negative", pad_begin), ctx.emit("add", d, pad_end), one, dtype="int64")
    last = ctx.emit("subtract", d, one)
    if mode in ("constant", "edge"):
        src = ctx.emit("maximum", ctx.emit("minimum", idx, last), zero)
    elif mode == "wrap":
        src = positive_mod(ctx, idx, ctx.emit("maximum", d, one))
    else:  # reflect: period 2 (d - 1), the second half mirrored
        period = ctx.emit("maximum", ctx.emit("multiply", last, np.array(2, _I64)), one)
        t = positive_mod(ctx, idx, period)
        src = ctx.emit("where", ctx.emit("greater_equal", t, d), ctx.emit("subtract", period, t), t)
    out = ctx.emit("take", x, ctx.emit("add", src, crop_begin), axis=axis, mode="clip")
    if mode != "constant":
        return out
    inside = ctx.emit("logical_and", ctx.emit("greater_equal", idx, zero), ctx.emit("less", idx, d))
    return ctx.emit("where", along(ctx, inside, axis, x.ndim), out, fill, type_=out.type)


# ---- NonZero -----------------------------------------------------------------------------------------------
@converter("NonZero")
def nonzero(ctx, node, inputs, attrs):
    """(rank, count) int64 coordinates of the non-zero elements; a 0-d input is taken as a 1-element vector
    (as ONNX Runtime and numpy do)."""
    x = inputs[0]
    if x.is_const:
        return [const_value(np.array(np.nonzero(np.atleast_1d(x.const)), dtype=_I64).reshape(max(x.ndim, 1), -1))]
    if x.ndim == 0:
        x = ctx.emit("reshape", x, newshape=(1,))
    return [ctx.emit("nonzero", x)]
