"""Converters of ops over positions along an axis: OneHot, EyeLike and Hardmax (an index compared with a range, run-time
depth and dims included), CumSum / CumProd (running totals) and LpNormalization (a norm along the axis)."""
from __future__ import annotations

import numpy as np

from .onnx_graph import ConversionError, MalformedNodeError, converter


def _scalar(ctx, v, what: str):
    if v.ndim > 1 or v.ndim == 1 and v.shape[0] != 1:
        raise MalformedNodeError(f"{what} must be a scalar or a 1-element tensor, got {v.type}")
    return ctx.emit("reshape", v, newshape=()) if v.ndim else v


@converter("OneHot")
def one_hot(ctx, node, inputs, attrs):
    """out[..., j, ...] = values[1] where indices (a negative one counted from depth) == j, else values[0];
    indices outside [-depth, depth - 1] give a row of values[0]."""
    indices, depth, values = inputs
    if values.ndim != 1 or values.shape[0] != 2:
        raise MalformedNodeError(f"values must be a 2-element tensor [off, on], got {values.type}")
    rank = indices.ndim + 1
    axis = int(attrs.get("axis", -1))
    if not -rank <= axis < rank:
        raise MalformedNodeError(f"axis {axis} is out of range for an output of rank {rank}")
    axis %= rank
    depth = _scalar(ctx, depth, "depth")
    count = ctx.emit("cast", depth, dtype="int64") if depth.dtype != "int64" else depth
    positions = ctx.emit("arange", np.int64(0), count, np.int64(1), dtype="int64")
    positions = ctx.emit("cast", positions, dtype=indices.dtype)
    positions = ctx.emit("reshape", positions, newshape=(1,) * axis + (-1,) + (1,) * (rank - axis - 1))
    depth_like = ctx.emit("cast", count, dtype=indices.dtype)
    negative = ctx.emit("less", indices, np.zeros((), indices.dtype))
    wrapped = ctx.emit("where", negative, ctx.emit("add", indices, depth_like), indices)
    hot = ctx.emit("equal", ctx.emit("expand_dims", wrapped, axis=axis), positions)
    off = ctx.emit("reshape", ctx.emit("strided_slice", values, begin=(0,), end=(1,), strides=(1,)), newshape=())
    on = ctx.emit("reshape", ctx.emit("strided_slice", values, begin=(1,), end=(2,), strides=(1,)), newshape=())
    return [ctx.emit("where", hot, on, off)]


@converter("EyeLike")
def eye_like(ctx, node, inputs, attrs):
    """Ones on the k-th diagonal of a matrix shaped like the input, of attribute dtype (default: the input's)."""
    from .onnx import onnx_dtype

    x = inputs[0]
    if x.ndim != 2:
        raise MalformedNodeError(f"the input must be a matrix, got {x.type}")
    dtype = onnx_dtype(attrs["dtype"]) if "dtype" in attrs else x.dtype
    if dtype == "bool":
        raise ConversionError("EyeLike of dtype bool is not supported")
    rows = ctx.emit("dim_arange", x, axis=0, dtype="int64")
    cols = ctx.emit("dim_arange", x, axis=1, dtype="int64")
    shifted = ctx.emit("add", ctx.emit("expand_dims", rows, axis=1), np.int64(attrs.get("k", 0)))
    return [ctx.emit("cast", ctx.emit("equal", shifted, cols), dtype=dtype)]


@converter("CumSum", "CumProd")
def cumulative(ctx, node, inputs, attrs):
    """The axis input (a scalar) run-time too: one copy per axis, chosen at run time (onnx_specialize)."""
    x, axis = inputs
    if not axis.is_const or axis.const.size != 1:
        raise ConversionError("the axis input must be a constant scalar")
    return [ctx.emit("cumsum" if node.op_type == "CumSum" else "cumprod", x, axis=int(axis.const.reshape(())),
                     exclusive=bool(attrs.get("exclusive", 0)), reverse=bool(attrs.get("reverse", 0)))]


@converter("Hardmax")
def hardmax(ctx, node, inputs, attrs):
    """1 at the first maximum along axis, 0 elsewhere (a one-hot of argmax)."""
    from .onnx_attrs import axis_in

    x = inputs[0]
    if x.ndim == 0:
        raise MalformedNodeError("Hardmax needs an input of rank >= 1")
    axis = axis_in(attrs.get("axis", -1), x.ndim)
    best = ctx.emit("argmax", x, axis=axis, keepdims=True)
    positions = ctx.emit("reshape", ctx.emit("dim_arange", x, axis=axis, dtype="int64"),
                         newshape=(1,) * axis + (-1,) + (1,) * (x.ndim - axis - 1))
    return [ctx.emit("cast", ctx.emit("equal", best, positions), dtype=x.dtype)]


@converter("LpNormalization")
def lp_normalization(ctx, node, inputs, attrs):
    """x / its L1 or L2 norm along axis; 0 where the norm is 0."""
    from .onnx_attrs import axis_in

    x = inputs[0]
    axis = axis_in(attrs.get("axis", -1), x.ndim)
    p = int(attrs.get("p", 2))
    if p not in (1, 2):
        raise MalformedNodeError(f"p must be 1 or 2, got {p}")
    if p == 1:
        norm = ctx.emit("sum", ctx.emit("abs", x), axis=axis, keepdims=True)
    else:
        norm = ctx.emit("sqrt", ctx.emit("sum", ctx.emit("multiply", x, x), axis=axis, keepdims=True))
    zero = np.zeros((), x.dtype)
    return [ctx.emit("where", ctx.emit("equal", norm, zero), zero, ctx.emit("divide", x, norm))]
