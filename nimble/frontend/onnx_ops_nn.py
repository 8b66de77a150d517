"""Converters of the neural-network ONNX operators: MatMul, Gemm, Conv, pooling, normalisation, Softmax."""
from __future__ import annotations

import numpy as np

from .onnx_attrs import axis_in
from .onnx_graph import ConversionError, converter
from .onnx_ops_math import scalar
from .onnx_values import const_value


# MatMul / Gemm / Conv of these run in float32 (cast in, the result cast back): a float16 / bfloat16 accumulator
# loses the low bits of long sums (K = 1024: 23x float16's rounding error, 26x bfloat16's), and the float32
# kernels are the tuned ones (a float16 matmul of 32 x 1024 x 64 took 25 ms, 0.5 ms widened)
WIDENED = ("float16", "bfloat16")


# ---- MatMul / Gemm ----------------------------------------------------------------------------------------
def matmul_values(ctx, a, b):
    """numpy matmul of two Values: 1-D operands promoted and squeezed back; a constant 2-D rhs becomes `dense`."""
    if a.ndim == 1 and b.ndim == 1:
        return ctx.emit("sum", ctx.emit("multiply", a, b), axis=0)
    squeeze = []
    if a.ndim == 1:
        a = ctx.emit("expand_dims", a, axis=0)
        squeeze.append(-2)
    if b.ndim == 1:
        b = ctx.emit("expand_dims", b, axis=1)
        squeeze.append(-1)
    if b.is_const and b.ndim == 2 and not a.is_const:
        out = dense_rows(ctx, a, np.ascontiguousarray(b.const.T))
    else:
        out = ctx.emit("matmul", a, b)
    if squeeze:
        out = ctx.emit("squeeze", out, axis=tuple(a % out.ndim for a in squeeze))
    return out


def dense_rows(ctx, a, weight: np.ndarray, op: str = "dense", extra=()):
    """`dense(a, weight)` (or `op(a, weight, *extra)`, such as dense_integer) for `a` of any rank >= 2: batch dims
    fold into rows, `reshape(a, (-1, k))`, a 2-D dense (the dense template's form), and a reshape back to `a`'s
    leading dims (static where at most one is unknown, a `dyn.reshape` of `a`'s run-time dims otherwise). The
    result keeps `a`'s leading dims in its type."""
    if a.ndim <= 2:
        return ctx.emit(op, a, weight, *extra)
    from ..ir.types import TensorType
    from .onnx_ops_shape import dims_tensor
    from .onnx_values import shape_dims

    k, m = a.shape[-1], weight.shape[0]
    rows = ctx.emit("reshape", a, newshape=(-1, k) if isinstance(k, int) else (-1, weight.shape[1]))
    out = ctx.emit(op, rows, weight, *extra)
    dims = shape_dims(a)[:-1] + (m,)
    out_type = TensorType(tuple(a.shape[:-1]) + (m,), out.dtype)
    if sum(not isinstance(d, int) for d in dims) <= 1:
        return ctx.emit("reshape", out, newshape=tuple(d if isinstance(d, int) else -1 for d in dims), type_=out_type)
    return ctx.emit("dyn.reshape", out, dims_tensor(ctx, dims), type_=out_type)


def widened(fn):
    """A converter whose float16 / bfloat16 inputs are cast to float32 and whose outputs are cast back."""

    def convert(ctx, node, inputs, attrs):
        dtype = inputs[0].dtype
        if dtype not in WIDENED:
            return fn(ctx, node, inputs, attrs)
        wide = [v if v is None or v.dtype != dtype else ctx.emit("cast", v, dtype="float32") for v in inputs]
        return [ctx.emit("cast", v, dtype=dtype) if v.dtype == "float32" else v for v in fn(ctx, node, wide, attrs)]

    convert.__name__, convert.__doc__ = fn.__name__, fn.__doc__
    return convert


@converter("MatMul")
@widened
def matmul(ctx, node, inputs, attrs):
    return [matmul_values(ctx, *inputs)]


@converter("Gemm")
@widened
def gemm(ctx, node, inputs, attrs):
    a, b = inputs[:2]
    c = inputs[2] if len(inputs) > 2 else None
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if attrs.get("transA", 0):
        a = ctx.emit("transpose", a, axes=(1, 0))
    if b.is_const and not a.is_const:
        w = b.const if attrs.get("transB", 0) else b.const.T
        out = ctx.emit("dense", a, np.ascontiguousarray(w))
    else:
        if attrs.get("transB", 0):
            b = ctx.emit("transpose", b, axes=(1, 0))
        out = ctx.emit("matmul", a, b)
    if alpha != 1.0:
        out = ctx.emit("multiply", out, scalar(alpha, out))
    if c is not None:
        if beta != 1.0:
            c = ctx.emit("multiply", c, scalar(beta, c))
        out = ctx.emit("add", out, c)
    return [out]


# ---- Conv / pooling ---------------------------------------------------------------------------------------
def _pads(ctx, x, attrs, kernel, strides, dilations):
    """(top, left, bottom, right) for 2-D from `pads` / `auto_pad`."""
    auto = attrs.get("auto_pad", "NOTSET")
    spatial = len(kernel)
    if auto in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0] * (2 * spatial)))
        return pads[:spatial], pads[spatial:]
    if auto == "VALID":
        return [0] * spatial, [0] * spatial
    before, after = [], []
    for i in range(spatial):
        size, span = x.shape[2 + i], (kernel[i] - 1) * dilations[i] + 1
        if strides[i] == 1:  # the total padding does not depend on the size
            total = span - 1
        elif not isinstance(size, int):
            raise ConversionError(f"auto_pad={auto} with stride {strides[i]} needs a static spatial dim {2 + i}")
        else:
            out = -(-size // strides[i])
            total = max(0, (out - 1) * strides[i] + span - size)
        small, large = total // 2, total - total // 2
        before.append(small if auto == "SAME_UPPER" else large)
        after.append(large if auto == "SAME_UPPER" else small)
    return before, after


def _as_2d(ctx, x):
    """A 1-D NCL tensor as NC1L (returns the tensor and whether it was 1-D)."""
    if x.ndim == 3:
        return ctx.emit("expand_dims", x, axis=2), True
    if x.ndim != 4:
        raise ConversionError(f"only 1-D and 2-D spatial inputs are supported, got rank {x.ndim}")
    return x, False


MIN_GROUP_CHANNELS = 8  # a grouped conv with at least this many output channels a group runs as one conv a group


def _split_groups(x, w, bias, groups: int) -> bool:
    """Whether a grouped conv runs as ``groups`` convs on channel slices (each on the conv template; the grouped
    conv itself has only the generic schedule): constant weights, static channels, not depthwise-thin groups."""
    return (groups > 1 and w.is_const and (bias is None or bias.is_const) and isinstance(x.shape[1], int)
            and w.shape[0] % groups == 0 and w.shape[0] // groups >= MIN_GROUP_CHANNELS and groups <= 32)


def _grouped_conv(ctx, x, w, bias, groups: int, common: dict):
    from .onnx_ops_shape import _split_fields

    parts = _split_fields(ctx, x, groups, 1)
    per = w.shape[0] // groups
    outs = []
    for g, part in enumerate(parts):
        out = ctx.emit("conv2d", part, const_value(np.ascontiguousarray(w.const[g * per:(g + 1) * per])), groups=1,
                       **common)
        if bias is not None:
            b = np.ascontiguousarray(bias.const.reshape(-1)[g * per:(g + 1) * per].reshape(1, per, 1, 1))
            out = ctx.emit("add", out, const_value(b))
        outs.append(out)
    return ctx.concat(outs, 1, "grouped_conv")


@converter("Conv")
@widened
def conv(ctx, node, inputs, attrs):
    x, w = inputs[:2]
    bias = inputs[2] if len(inputs) > 2 else None
    kernel = list(w.shape[2:])
    strides = list(attrs.get("strides", [1] * len(kernel)))
    dilations = list(attrs.get("dilations", [1] * len(kernel)))
    before, after = _pads(ctx, x, attrs, kernel, strides, dilations)
    x2, one_d = _as_2d(ctx, x)
    if one_d:
        w = ctx.emit("expand_dims", w, axis=2)
        before, after, strides, dilations = [0] + before, [0] + after, [1] + strides, [1] + dilations
    common = dict(strides=tuple(strides), dilation=tuple(dilations), padding=(before[0], before[1], after[0], after[1]))
    groups = int(attrs.get("group", 1))
    if _split_groups(x2, w, bias, groups):
        out = _grouped_conv(ctx, x2, w, bias, groups, common)
    else:
        out = ctx.emit("conv2d", x2, w, groups=groups, **common)
        if bias is not None:
            out = ctx.emit("add", out, ctx.emit("reshape", bias, newshape=(1, -1, 1, 1)))
    if one_d:
        out = ctx.emit("squeeze", out, axis=(2,))
    return [out]


@converter("MaxPool", "AveragePool")
def pool(ctx, node, inputs, attrs):
    """N-D pooling (`max_pool` / `avg_pool`, and `max_pool_indices` for MaxPool's second output)."""
    x = inputs[0]
    if x.ndim < 3:
        raise ConversionError(f"the input has rank {x.ndim}, expected (N, C, D1, ...) with rank >= 3")
    kernel = list(attrs["kernel_shape"])
    spatial = x.ndim - 2
    if len(kernel) != spatial:
        raise ConversionError(f"kernel_shape has {len(kernel)} dims, the input has {spatial} spatial dims")
    strides = list(attrs.get("strides", [1] * spatial))
    dilations = list(attrs.get("dilations", [1] * spatial))
    ceil_mode = bool(attrs.get("ceil_mode", 0))
    if ceil_mode and attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "", "VALID"):
        raise ConversionError(f"ceil_mode=1 with auto_pad={attrs['auto_pad']} is not defined by ONNX")
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):  # the op pads from the run-time sizes
        padding = ()
    else:
        before, after = _pads(ctx, x, attrs, kernel, strides, dilations)
        padding, auto = tuple(before) + tuple(after), ""
    common = dict(pool_size=tuple(kernel), strides=tuple(strides), dilation=tuple(dilations), padding=padding,
                  ceil_mode=ceil_mode, auto_pad=auto)
    if node.op_type == "AveragePool":
        return [ctx.emit("avg_pool", x, count_include_pad=bool(attrs.get("count_include_pad", 0)), **common)]
    outs = [ctx.emit("max_pool", x, **common)]
    if len(node.output) > 1 and node.output[1]:
        outs.append(ctx.emit("max_pool_indices", x, storage_order=int(attrs.get("storage_order", 0)), **common))
    return outs


@converter("GlobalAveragePool", "GlobalMaxPool")
def global_pool(ctx, node, inputs, attrs):
    x = inputs[0]
    op = "mean" if node.op_type == "GlobalAveragePool" else "max"
    return [ctx.emit(op, x, axis=tuple(range(2, x.ndim)), keepdims=True)]


# ---- normalisation ----------------------------------------------------------------------------------------
@converter("BatchNormalization")
def batch_norm(ctx, node, inputs, attrs):
    if attrs.get("training_mode", 0):
        raise ConversionError("training_mode=1 is not supported")
    x, gamma, beta, mean, var = inputs
    return [ctx.emit("batch_norm", x, gamma, beta, mean, var, axis=1, epsilon=attrs.get("epsilon", 1e-5))]


def _normalize(ctx, x, axes, epsilon):
    """(x - mean) / sqrt(var + eps), the mean and 1/sqrt(var + eps) over `axes` (kept)."""
    mean = ctx.emit("mean", x, axis=axes, keepdims=True)
    centered = ctx.emit("subtract", x, mean)
    var = ctx.emit("mean", ctx.emit("multiply", centered, centered), axis=axes, keepdims=True)
    inv_std = ctx.emit("divide", scalar(1, x), ctx.emit("sqrt", ctx.emit("add", var, scalar(epsilon, x))))
    return ctx.emit("multiply", centered, inv_std), mean, inv_std


@converter("InstanceNormalization")
def instance_norm(ctx, node, inputs, attrs):
    x, scale, bias = inputs
    normed, _, _ = _normalize(ctx, x, tuple(range(2, x.ndim)), attrs.get("epsilon", 1e-5))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    out = ctx.emit("multiply", normed, ctx.emit("reshape", scale, newshape=shape))
    return [ctx.emit("add", out, ctx.emit("reshape", bias, newshape=shape))]


@converter("LayerNormalization")
def layer_norm(ctx, node, inputs, attrs):
    x, scale = inputs[:2]
    bias = inputs[2] if len(inputs) > 2 else None
    axis = axis_in(attrs.get("axis", -1), x.ndim)
    eps = attrs.get("epsilon", 1e-5)
    wants_stats = len(node.output) > 1 and any(node.output[1:])
    if axis == x.ndim - 1 and scale.ndim == 1 and (bias is None or bias.ndim == 1) and not wants_stats:
        beta = bias if bias is not None else np.zeros(scale.shape, dtype=scale.dtype) if scale.is_const else None
        if beta is not None and x.dtype == scale.dtype:
            return [ctx.emit("layer_norm", x, scale, beta, axis=-1, epsilon=eps)]
    normed, mean, inv_std = _normalize(ctx, x, tuple(range(axis, x.ndim)), eps)
    out = ctx.emit("multiply", normed, scale)
    if bias is not None:
        out = ctx.emit("add", out, bias)
    return [out, mean, inv_std]


@converter("Softmax", "LogSoftmax")
def softmax(ctx, node, inputs, attrs):
    x = inputs[0]
    op = "softmax" if node.op_type == "Softmax" else "log_softmax"
    return [ctx.emit(op, x, axis=axis_in(attrs.get("axis", -1), x.ndim))]


# ---- LRN (AlexNet, GoogLeNet) ------------------------------------------------------------------------------
@converter("LRN")
def lrn(ctx, node, inputs, attrs):
    """x / (bias + alpha / size * sum of x^2 over `size` neighbouring channels) ^ beta: the squares padded with
    zeros along the channels, summed over `size` shifted slices."""
    x = inputs[0]
    if x.ndim < 3:
        raise ConversionError(f"the input has rank {x.ndim}, expected (N, C, ...) with rank >= 3")
    size = int(attrs["size"])
    alpha, beta, bias = (float(attrs.get(k, d)) for k, d in (("alpha", 1e-4), ("beta", 0.75), ("bias", 1.0)))
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    squares = ctx.emit("multiply", x, x)
    channels = x.shape[1]
    if not isinstance(channels, int):
        raise ConversionError("LRN needs a static channel dim (dim 1)")
    from .onnx_ops_dynamic import pad_with_zeros

    padded = pad_with_zeros(ctx, squares, 1, before, after)
    window = None
    for k in range(size):
        part = ctx.emit("strided_slice", padded, begin=(k,), end=(k + channels,), axes=(1,))
        window = part if window is None else ctx.emit("add", window, part)
    scale = ctx.emit("add", ctx.emit("multiply", window, scalar(alpha / size, x)), scalar(bias, x))
    return [ctx.emit("divide", x, ctx.emit("power", scale, scalar(beta, x)))]
