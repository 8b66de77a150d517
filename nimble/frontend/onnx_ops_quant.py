"""Converters of ONNX's integer quantization operators: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
MatMulInteger, QLinearMatMul, ConvInteger and QLinearConv.

Integer products accumulate in int32 (matmul of int32 operands, zero points subtracted first) and match numpy
exactly; a 2-D ConvInteger / QLinearConv with a constant weight and one group is an integer matrix product over the
image's windows (``image_patches`` + ``dense_integer``), any other convolves in float64, exact while a sum stays
below 2**53. Requantisation follows ONNX's
reference: the int32 accumulator times a_scale * b_scale / y_scale, rounded half to even, plus the zero point,
saturated. Per-axis scales and zero points (1-D) are reshaped to broadcast along their axis; blocked ones
(`block_size` > 0: x's rank, ceil(dim / block_size) entries along the axis) are gathered to x's shape (see
onnx_quant_blocked). QuantizeLinear to float8 / float4 is x / scale + zero_point rounded to the
format (float8 saturated to its range unless saturate=0); DequantizeLinear from them is (x - zero_point) * scale
in float32. A float8 e8m0 scale (MX formats) is taken as float32.
"""
from __future__ import annotations

import numpy as np

from ..dtypes import numpy_dtype
from .onnx_attrs import axis_in
from .onnx_graph import ConversionError, converter
from .onnx_ops_math import scalar
from .onnx_quant_blocked import blocked

QUANT_DTYPES = ("int8", "uint8")  # MatMulInteger, ConvInteger, QLinearMatMul operands
LINEAR_DTYPES = ("int8", "uint8", "int16", "uint16", "int4", "uint4", "int2", "uint2")  # QuantizeLinear / DequantizeLinear
FLOAT_QUANT_DTYPES = ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float4_e2m1fn")


def _optional(inputs, k):
    return inputs[k] if len(inputs) > k else None


def _single(ctx, v):
    """A 1-element scale / zero point as a scalar (None stays None)."""
    if v is not None and v.ndim == 1 and v.shape[0] == 1:
        return ctx.emit("reshape", v, newshape=())
    return v


def _along(ctx, v, x, attrs, what: str):
    """A scale / zero point shaped to broadcast against `x`: a scalar or 1-element one as a scalar, a per-axis 1-D
    one reshaped along ONNX's `axis` (resolved only here), a blocked one (`block_size` > 0) gathered to x's shape."""
    v = _single(ctx, v)
    if v is None or v.ndim == 0:
        return v
    block_size = attrs.get("block_size", 0)
    if block_size:
        return blocked(ctx, v, x, attrs.get("axis", 1), block_size, what)
    if v.ndim != 1:
        raise ConversionError(f"{what} of shape {v.shape} needs block_size > 0 (blocked quantization); "
                              f"per-axis ones are 1-D")
    axis = axis_in(attrs.get("axis", 1), max(x.ndim, 1))
    return ctx.emit("reshape", v, newshape=(-1,) + (1,) * (x.ndim - axis - 1))


def _to_int32(ctx, v, zero_point=None):
    """int32(v) - int32(zero_point)."""
    out = v if v.dtype == "int32" else ctx.emit("cast", v, dtype="int32")
    if zero_point is not None:
        out = ctx.emit("subtract", out, ctx.emit("cast", zero_point, dtype="int32"))
    return out


@converter("QuantizeLinear")
def quantize_linear(ctx, node, inputs, attrs):
    x, scale = inputs[:2]
    zero_point = _optional(inputs, 2)
    from .onnx import onnx_dtype

    if scale.dtype == "float8_e8m0fnu":  # (an MX scale: its powers of two divide exactly in float32)
        scale = ctx.emit("cast", scale, dtype="float32")
    dtype = zero_point.dtype if zero_point is not None else (
        onnx_dtype(attrs["output_dtype"]) if attrs.get("output_dtype") else "uint8")
    if dtype in FLOAT_QUANT_DTYPES:
        return [_quantize_float(ctx, x, scale, zero_point, dtype, attrs)]
    if dtype not in LINEAR_DTYPES:
        raise ConversionError(f"QuantizeLinear to {dtype} is not supported (only {LINEAR_DTYPES + FLOAT_QUANT_DTYPES})")
    if zero_point is None:  # (saturate applies to float8 only: integers always saturate)
        zero_point = np.zeros((), numpy_dtype(dtype))
    else:
        zero_point = _along(ctx, zero_point, x, attrs, "y_zero_point")
    scale = _along(ctx, scale, x, attrs, "y_scale")
    return [ctx.emit("quantize_linear", x, scale, zero_point, dtype=dtype)]


def _quantize_float(ctx, x, scale, zero_point, dtype, attrs):
    """x / scale (+ zero_point) rounded to a float8 / float4 dtype, in x's float dtype."""
    from .onnx_ops_math import cast_to

    scale = _along(ctx, scale, x, attrs, "y_scale")
    if scale.dtype != x.dtype:
        scale = ctx.emit("cast", scale, dtype=x.dtype)
    y = ctx.emit("divide", x, scale)
    if zero_point is not None:
        y = ctx.emit("add", y, ctx.emit("cast", _along(ctx, zero_point, x, attrs, "y_zero_point"), dtype=x.dtype))
    return cast_to(ctx, y, dtype, bool(attrs.get("saturate", 1)))


@converter("DequantizeLinear")
def dequantize_linear(ctx, node, inputs, attrs):
    """(int32(x) - int32(zero_point)) * scale, in the scale's dtype."""
    x, scale = inputs[:2]
    zero_point = _optional(inputs, 2)
    supported = LINEAR_DTYPES + ("int32",) + FLOAT_QUANT_DTYPES
    if x.dtype not in supported:
        raise ConversionError(f"DequantizeLinear of {x.dtype} is not supported (only {supported})")
    zero_point = _along(ctx, zero_point, x, attrs, "x_zero_point")
    if x.dtype in FLOAT_QUANT_DTYPES:  # float32(x) - float32(zero_point)
        centred = ctx.emit("cast", x, dtype="float32")
        if zero_point is not None:
            centred = ctx.emit("subtract", centred, ctx.emit("cast", zero_point, dtype="float32"))
    else:
        centred = _to_int32(ctx, x, zero_point)
    from .onnx import onnx_dtype

    out_dtype = onnx_dtype(attrs["output_dtype"]) if attrs.get("output_dtype") else scale.dtype
    values = ctx.emit("cast", centred, dtype=out_dtype)
    scale = _along(ctx, scale, x, attrs, "x_scale")
    if scale.dtype != out_dtype:
        scale = ctx.emit("cast", scale, dtype=out_dtype)
    return [ctx.emit("multiply", values, scale)]


@converter("DynamicQuantizeLinear")
def dynamic_quantize_linear(ctx, node, inputs, attrs):
    """uint8 with scale (max(x, 0) - min(x, 0)) / 255 (1 / 255 when both are 0) and zero point
    saturate(round(-min / scale)), as ONNX's reference."""
    (x,) = inputs
    if x.dtype != "float32":
        raise ConversionError(f"DynamicQuantizeLinear takes float32, got {x.dtype}")
    top = ctx.emit("maximum", ctx.emit("max", x, axis=None, keepdims=False), scalar(0, x))
    low = ctx.emit("minimum", ctx.emit("min", x, axis=None, keepdims=False), scalar(0, x))
    span = ctx.emit("where", ctx.emit("equal", top, low), scalar(1, x), ctx.emit("subtract", top, low))
    scale = ctx.emit("divide", span, scalar(255, x))
    zero = np.zeros((), np.uint8)
    zero_point = ctx.emit("quantize_linear", ctx.emit("negative", low), scale, zero, dtype="uint8")
    y = ctx.emit("quantize_linear", x, scale, zero_point, dtype="uint8")
    return [y, scale, zero_point]


def _integer_matmul(ctx, a, b, a_zero_point, b_zero_point):
    """int32 (a - a_zero_point) @ (b - b_zero_point); a's zero point per row (1-D, length M) or scalar, b's per
    column (1-D, length N) or scalar."""
    for name, v in (("A", a), ("B", b)):
        if v.dtype not in QUANT_DTYPES:
            raise ConversionError(f"{name} must be int8 or uint8, got {v.dtype}")
    a_zero_point, b_zero_point = _single(ctx, a_zero_point), _single(ctx, b_zero_point)
    if b.is_const and b.ndim == 2 and not a.is_const and a.ndim >= 1 and (a_zero_point is None or a_zero_point.ndim == 0):
        return _dense_integer(ctx, a, b, a_zero_point, b_zero_point)
    if a_zero_point is not None and a_zero_point.ndim == 1 and a.ndim >= 2:
        a_zero_point = ctx.emit("reshape", a_zero_point, newshape=(-1, 1))
    from .onnx_ops_nn import matmul_values

    return matmul_values(ctx, _to_int32(ctx, a, a_zero_point), _to_int32(ctx, b, b_zero_point))


def _dense_integer(ctx, a, b, a_zero_point, b_zero_point):
    """int32 (a - a_zero_point) @ (b - b_zero_point) for a constant 2-D b and a scalar (or no) a_zero_point: the
    `dense_integer` operator, whose template takes uint8 a and int8 b (VNNI dot products). An int8 a is shifted
    to uint8 with its zero point (a + 128 - (zp + 128): the same differences); a uint8 b is shifted to int8, its
    zero point with it. A nonzero (shifted) b zero point is then subtracted times the row sums of
    (a - a_zero_point)."""
    from .onnx_ops_nn import dense_rows

    zero = a_zero_point if a_zero_point is not None else np.zeros((), numpy_dtype(a.dtype))
    squeeze = a.ndim == 1
    rows = ctx.emit("expand_dims", a, axis=0) if squeeze else a
    if a.dtype == "int8":
        rows, zero = (_shift_to_uint8(ctx, v) for v in (rows, zero))
    weight = b.const
    b_shift = 0
    if weight.dtype == np.uint8:
        weight, b_shift = (weight.astype(np.int16) - 128).astype(np.int8), 128
    out = dense_rows(ctx, rows, np.ascontiguousarray(weight.T), op="dense_integer", extra=(zero,))
    if b_zero_point is None:
        b_zero = np.array(-b_shift, np.int32) if b_shift else None
    elif b_zero_point.is_const:
        b_zero = np.asarray(b_zero_point.const).astype(np.int32) - b_shift
        b_zero = b_zero if np.any(b_zero) else None
    else:
        b_zero = _to_int32(ctx, b_zero_point)
        if b_shift:
            b_zero = ctx.emit("subtract", b_zero, np.array(b_shift, np.int32))
    if b_zero is not None:
        sums = ctx.emit("sum", _to_int32(ctx, rows, zero), axis=-1, keepdims=True)
        out = ctx.emit("subtract", out, ctx.emit("multiply", sums, b_zero))
    return ctx.emit("squeeze", out, axis=(-2,)) if squeeze else out


def _shift_to_uint8(ctx, v):
    """An int8 tensor (or numpy scalar) plus 128, as uint8."""
    if isinstance(v, np.ndarray):
        return (v.astype(np.int16) + 128).astype(np.uint8)
    return ctx.emit("cast", ctx.emit("add", ctx.emit("cast", v, dtype="int32"), np.array(128, np.int32)), dtype="uint8")


@converter("MatMulInteger")
def matmul_integer(ctx, node, inputs, attrs):
    a, b = inputs[:2]
    return [_integer_matmul(ctx, a, b, _optional(inputs, 2), _optional(inputs, 3))]


@converter("QLinearMatMul")
def qlinear_matmul(ctx, node, inputs, attrs):
    """saturate(round(acc * (a_scale * b_scale / y_scale)) + y_zero_point), acc the int32 product (the
    multiplier in the scales' dtype, the product in float64, as ONNX's reference)."""
    a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point = inputs
    acc = _integer_matmul(ctx, a, b, a_zero_point, b_zero_point)
    a_scale, b_scale, y_scale, y_zero_point = (_single(ctx, v) for v in (a_scale, b_scale, y_scale, y_zero_point))
    if a_scale.ndim == 1 and a.ndim >= 2:
        a_scale = ctx.emit("reshape", a_scale, newshape=(-1, 1))
    if y_scale.ndim or (y_zero_point is not None and y_zero_point.ndim):
        raise ConversionError("a per-column y_scale / y_zero_point is not supported")
    return [_requantize(ctx, acc, a_scale, b_scale, y_scale, y_zero_point, a.dtype)]


def _requantize(ctx, acc, a_scale, b_scale, y_scale, y_zero_point, dtype: str):
    """saturate(round(acc * (a_scale * b_scale / y_scale)) + y_zero_point): the multiplier in float32, the product
    in float64 (ONNX's reference), as y_zero_point's dtype (``dtype`` without one)."""
    scales = [ctx.emit("cast", s, dtype="float32") if s.dtype != "float32" else s for s in (a_scale, b_scale, y_scale)]
    multiplier = ctx.emit("divide", ctx.emit("multiply", scales[0], scales[1]), scales[2])
    product = ctx.emit("multiply", ctx.emit("cast", acc, dtype="float64"), ctx.emit("cast", multiplier, dtype="float64"))
    dtype = y_zero_point.dtype if y_zero_point is not None else dtype
    zero_point = y_zero_point if y_zero_point is not None else np.zeros((), dtype)
    return ctx.emit("quantize_linear", product, np.ones((), np.float64), zero_point, dtype=dtype)


@converter("ConvInteger")
def conv_integer(ctx, node, inputs, attrs):
    return [_conv_integer(ctx, node, inputs[0], inputs[1], _optional(inputs, 2), _optional(inputs, 3), attrs)]


@converter("QLinearConv")
def qlinear_conv(ctx, node, inputs, attrs):
    """saturate(round((acc + bias) * (x_scale * w_scale / y_scale)) + y_zero_point), acc ConvInteger's int32 sum;
    w_scale (and w_zero_point) scalar or per output channel."""
    x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point = (list(inputs) + [None] * 8)[:8]
    bias = _optional(inputs, 8)
    acc = _conv_integer(ctx, node, x, w, x_zero_point, w_zero_point, attrs)
    if bias is not None:
        acc = ctx.emit("add", acc, ctx.emit("reshape", ctx.emit("cast", bias, dtype="int32"), newshape=(1, -1, 1, 1)))
    x_scale, w_scale, y_scale, y_zero_point = (_single(ctx, v) for v in (x_scale, w_scale, y_scale, y_zero_point))
    if x_scale.ndim or y_scale.ndim or (y_zero_point is not None and y_zero_point.ndim):
        raise ConversionError("x_scale, y_scale and y_zero_point must be scalars (per-tensor)")
    if w_scale.ndim == 1:
        w_scale = ctx.emit("reshape", w_scale, newshape=(-1, 1, 1))
    return [_requantize(ctx, acc, x_scale, w_scale, y_scale, y_zero_point, x.dtype)]


def _conv_integer(ctx, node, x, w, x_zero_point, w_zero_point, attrs):
    """int32 convolution of (x - x_zero_point) and (w - w_zero_point): a 2-D one with a constant weight, one group
    and a scalar x zero point as ``_conv_as_product``; any other computed in float64 (exact)."""
    from .onnx_ops_nn import conv

    for name, v in (("x", x), ("w", w)):
        if v.dtype not in QUANT_DTYPES:
            raise ConversionError(f"{name} must be int8 or uint8, got {v.dtype}")
    x_zero_point, w_zero_point = _single(ctx, x_zero_point), _single(ctx, w_zero_point)
    product = _conv_as_product(ctx, x, w, x_zero_point, w_zero_point, attrs)
    if product is not None:
        return product
    if w_zero_point is not None and w_zero_point.ndim == 1:
        w_zero_point = ctx.emit("reshape", w_zero_point, newshape=(-1,) + (1,) * (w.ndim - 1))
    xf = ctx.emit("cast", _to_int32(ctx, x, x_zero_point), dtype="float64")
    wf = ctx.emit("cast", _to_int32(ctx, w, w_zero_point), dtype="float64")
    (out,) = conv(ctx, node, [xf, wf], attrs)
    return ctx.emit("cast", out, dtype="int32")


def _conv_as_product(ctx, x, w, x_zero_point, w_zero_point, attrs):
    """A 2-D ConvInteger with a constant weight (M, C, kh, kw), one group and a scalar (or no) x zero point as an
    integer matrix product: the windows of x as rows (``image_patches``, the padding and the columns that round
    C x kh x kw up to a multiple of 4 filled with the x zero point, so they add nothing), times the weight as an
    (M, C x kh x kw) matrix (zero columns appended): ``dense_integer`` (AMX tiles or VNNI dot products), with the
    weight's zero point (scalar or per output channel) as MatMulInteger's. The (N, OH, OW, M) result is transposed
    to NCHW. None where it does not apply."""
    from ..ir.types import TensorType
    from .onnx_ops_nn import _pads
    from .onnx_ops_shape import dims_tensor
    from .onnx_values import const_value, shape_dims

    if x.ndim != 4 or not w.is_const or w.ndim != 4 or int(attrs.get("group", 1)) != 1:
        return None
    if x_zero_point is not None and x_zero_point.ndim != 0:
        return None
    if w_zero_point is not None and w_zero_point.ndim > 1:
        return None
    weight = np.asarray(w.const)
    m, c, kh, kw = weight.shape
    if x.shape[1] != c or m == 0 or c == 0:
        return None
    strides = [int(s) for s in attrs.get("strides", [1, 1])]
    dilations = [int(d) for d in attrs.get("dilations", [1, 1])]
    before, after = _pads(ctx, x, attrs, [kh, kw], strides, dilations)
    channels = -(-c // 4) * 4  # each tap's channels padded to a multiple of 4 (dense_integer's k)
    matrix = np.zeros((m, kh, kw, channels), weight.dtype)
    matrix[..., :c] = weight.transpose(0, 2, 3, 1)
    zero = x_zero_point if x_zero_point is not None else const_value(np.zeros((), numpy_dtype(x.dtype)))
    patches = ctx.emit("image_patches", ctx.emit("transpose", x, axes=(0, 2, 3, 1)), zero, kernel=(kh, kw),
                       strides=tuple(strides), dilation=tuple(dilations),
                       padding=(before[0], before[1], after[0], after[1]), channels=channels)
    k = kh * kw * channels
    pixels = shape_dims(patches)[:3]  # (N, OH, OW): a row of taps each (a view: the VM reshapes without a copy)
    shape = TensorType(tuple(patches.shape[:3]) + (k,), patches.dtype)
    if sum(not isinstance(d, int) for d in pixels) <= 1:
        rows = ctx.emit("reshape", patches, newshape=tuple(d if isinstance(d, int) else -1 for d in pixels) + (k,),
                        type_=shape)
    else:
        rows = ctx.emit("dyn.reshape", patches, dims_tensor(ctx, pixels + (k,)), type_=shape)
    product = _integer_matmul(ctx, rows, const_value(np.ascontiguousarray(matrix.reshape(m, k).T)), x_zero_point,
                              w_zero_point)
    return ctx.emit("transpose", product, axes=(0, 3, 1, 2))
