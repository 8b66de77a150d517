"""Convolution and pooling in NCHW layout (weights OIHW, as in PyTorch)."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ShapeError
from ..ir.types import AnyDim, TensorType
from .registry import REQUIRED, OpPattern, register
from .relations import FLOAT_DTYPES, dims_equal, int_pair, padding4, rank_is, same_dtype, tensor_arg

Any = AnyDim()


def window_out(size, kernel: int, stride: int, pad_before: int, pad_after: int, dilation: int = 1):
    """Output length of a sliding window; `Any` stays `Any`."""
    if not isinstance(size, int):
        return Any
    span = dilation * (kernel - 1) + 1
    padded = size + pad_before + pad_after
    if padded < span:
        raise ShapeError(f"window of {span} does not fit into {padded} (size {size} + padding)")
    return (padded - span) // stride + 1


# ---- conv2d ------------------------------------------------------------------------------------------------
def _conv2d_rel(data, weight, strides, padding, dilation, groups):
    data = tensor_arg("conv2d", "data", data, FLOAT_DTYPES)
    weight = tensor_arg("conv2d", "weight", weight, FLOAT_DTYPES)
    rank_is("conv2d", "data", data, 4)
    rank_is("conv2d", "weight", weight, 4)
    same_dtype("conv2d", ("data", data), ("weight", weight))
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = int_pair("conv2d", "strides", strides), int_pair(
        "conv2d", "dilation", dilation), padding4("conv2d", padding)
    out_c, in_c, kh, kw = weight.shape
    if isinstance(in_c, int):
        dims_equal(
            "conv2d", data.shape[1], in_c * groups,
            f"data has {{a}} channels, weight expects {{b}} (in-channels {in_c} x groups {groups})",
        )
    if isinstance(out_c, int) and out_c % groups:
        raise ShapeError(f"conv2d: weight's {out_c} out-channels do not divide into {groups} groups")
    if not (isinstance(kh, int) and isinstance(kw, int)):
        raise ShapeError(f"conv2d: the kernel size must be static, weight is {weight!r}")
    h = window_out(data.shape[2], kh, sh, pt, pb, dh)
    w = window_out(data.shape[3], kw, sw, pl, pr, dw)
    return TensorType((data.shape[0], out_c, h, w), data.dtype)


def _conv2d_shape(data, weight, strides, padding, dilation, groups):
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = int_pair("conv2d", "strides", strides), int_pair(
        "conv2d", "dilation", dilation), padding4("conv2d", padding)
    h = window_out(int(data[2]), int(weight[2]), sh, pt, pb, dh)
    w = window_out(int(data[3]), int(weight[3]), sw, pl, pr, dw)
    return [np.array([data[0], weight[0], h, w], dtype=np.int64)]


def _windows(x, kh, kw, strides, dilation, padding, pad_value):
    """(N, C, OH, OW, kh, kw) windows of x after padding."""
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = strides, dilation, padding
    x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=pad_value)
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    win = sliding_window_view(x, (span_h, span_w), axis=(2, 3))
    return win[:, :, ::sh, ::sw, ::dh, ::dw]


def _conv2d_ref(data, weight, strides, padding, dilation, groups):
    out_c, in_c, kh, kw = weight.shape
    win = _windows(
        data.astype(np.float64), kh, kw, int_pair("", "", strides), int_pair("", "", dilation),
        padding4("conv2d", padding), 0.0,
    )
    n, _, oh, ow = win.shape[:4]
    per_group = out_c // groups
    outs = []
    for g in range(groups):
        w = weight[g * per_group : (g + 1) * per_group].astype(np.float64)
        x = win[:, g * in_c : (g + 1) * in_c]
        outs.append(np.einsum("nchwij,ocij->nohw", x, w))
    return np.concatenate(outs, axis=1).reshape(n, out_c, oh, ow).astype(data.dtype)


conv2d = register(
    "conv2d", args=("data", "weight"), attrs={"strides": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1},
    type_rel=_conv2d_rel, shape_func=_conv2d_shape, reference=_conv2d_ref, pattern=OpPattern.OUT_ELEMWISE_FUSABLE,
    doc="2-D convolution, data NCHW, weight OIHW (O = out-channels, I = in-channels / groups); padding is an int, "
    "(h, w) or (top, left, bottom, right). No bias: add it with add.",
)


# ---- pooling -----------------------------------------------------------------------------------------------
def _pool_rel(name):
    def rel(data, pool_size, strides, padding, **_):
        data = tensor_arg(name, "data", data, FLOAT_DTYPES)
        rank_is(name, "data", data, 4)
        (kh, kw), (sh, sw), (pt, pl, pb, pr) = int_pair(name, "pool_size", pool_size), int_pair(
            name, "strides", strides), padding4(name, padding)
        h = window_out(data.shape[2], kh, sh, pt, pb)
        w = window_out(data.shape[3], kw, sw, pl, pr)
        return TensorType(data.shape[:2] + (h, w), data.dtype)

    return rel


def _pool_shape(name):
    def shape_func(data, pool_size, strides, padding, **_):
        (kh, kw), (sh, sw), (pt, pl, pb, pr) = int_pair(name, "pool_size", pool_size), int_pair(
            name, "strides", strides), padding4(name, padding)
        h = window_out(int(data[2]), kh, sh, pt, pb)
        w = window_out(int(data[3]), kw, sw, pl, pr)
        return [np.array([data[0], data[1], h, w], dtype=np.int64)]

    return shape_func


def _max_pool_ref(data, pool_size, strides, padding):
    kh, kw = int_pair("max_pool2d", "pool_size", pool_size)
    win = _windows(data, kh, kw, int_pair("", "", strides), (1, 1), padding4("max_pool2d", padding), -np.inf)
    return win.max(axis=(4, 5)).astype(data.dtype)


def _avg_pool_ref(data, pool_size, strides, padding, count_include_pad):
    kh, kw = int_pair("avg_pool2d", "pool_size", pool_size)
    strides, pad = int_pair("", "", strides), padding4("avg_pool2d", padding)
    total = _windows(data.astype(np.float64), kh, kw, strides, (1, 1), pad, 0.0).sum(axis=(4, 5))
    if count_include_pad:
        return (total / (kh * kw)).astype(data.dtype)
    counts = _windows(np.ones((1, 1) + data.shape[2:]), kh, kw, strides, (1, 1), pad, 0.0).sum(axis=(4, 5))
    with np.errstate(invalid="ignore", divide="ignore"):  # a window wholly in the padding averages to nan
        return (total / counts).astype(data.dtype)


max_pool2d = register(
    "max_pool2d", args=("data",), attrs={"pool_size": REQUIRED, "strides": (1, 1), "padding": (0, 0)},
    type_rel=_pool_rel("max_pool2d"), shape_func=_pool_shape("max_pool2d"), reference=_max_pool_ref,
    pattern=OpPattern.OUT_ELEMWISE_FUSABLE, doc="Max over pool_size windows of NCHW data (padding counts as -inf).",
)
avg_pool2d = register(
    "avg_pool2d", args=("data",),
    attrs={"pool_size": REQUIRED, "strides": (1, 1), "padding": (0, 0), "count_include_pad": False},
    type_rel=_pool_rel("avg_pool2d"), shape_func=_pool_shape("avg_pool2d"), reference=_avg_pool_ref,
    pattern=OpPattern.OUT_ELEMWISE_FUSABLE,
    doc="Mean over pool_size windows of NCHW data; padding is left out of the count unless count_include_pad "
    "(TVM's default; PyTorch's default is count_include_pad=True).",
)


# ---- image_patches: a convolution's windows, one row of taps per output pixel (im2col), NHWC -------------------
def _patches_geometry(kernel, strides, padding, dilation):
    return (int_pair("image_patches", "kernel", kernel), int_pair("image_patches", "strides", strides),
            padding4("image_patches", padding), int_pair("image_patches", "dilation", dilation))


def _image_patches_rel(data, pad_value, kernel, strides, padding, dilation, channels):
    data = tensor_arg("image_patches", "data", data)
    pad_value = tensor_arg("image_patches", "pad_value", pad_value)
    rank_is("image_patches", "data", data, 4)
    rank_is("image_patches", "pad_value", pad_value, 0)
    same_dtype("image_patches", ("data", data), ("pad_value", pad_value))
    (kh, kw), (sh, sw), (pt, pl, pb, pr), (dh, dw) = _patches_geometry(kernel, strides, padding, dilation)
    c = data.shape[3]
    least = c if isinstance(c, int) else 1  # (a run-time channel count is checked by the kernel's shapes)
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < least:
        raise ShapeError(f"image_patches: channels must be an int >= data's {c} channels, got {channels!r}")
    h = window_out(data.shape[1], kh, sh, pt, pb, dh)
    w = window_out(data.shape[2], kw, sw, pl, pr, dw)
    return TensorType((data.shape[0], h, w, kh, kw, int(channels)), data.dtype)


def _image_patches_shape(data, pad_value, kernel, strides, padding, dilation, channels):
    (kh, kw), (sh, sw), (pt, pl, pb, pr), (dh, dw) = _patches_geometry(kernel, strides, padding, dilation)
    h = window_out(int(data[1]), kh, sh, pt, pb, dh)
    w = window_out(int(data[2]), kw, sw, pl, pr, dw)
    return [np.array([data[0], h, w, kh, kw, channels], dtype=np.int64)]


def _image_patches_ref(data, pad_value, kernel, strides, padding, dilation, channels):
    (kh, kw), strides, padding, dilation = _patches_geometry(kernel, strides, padding, dilation)
    window_out(data.shape[1], kh, strides[0], padding[0], padding[2], dilation[0])  # a window that does not fit: a
    window_out(data.shape[2], kw, strides[1], padding[1], padding[3], dilation[1])  # ShapeError naming it
    win = _windows(data.transpose(0, 3, 1, 2), kh, kw, strides, dilation, padding, pad_value)  # N, C, OH, OW, kh, kw
    n, c, oh, ow = win.shape[:4]
    out = np.full((n, oh, ow, kh, kw, channels), pad_value, data.dtype)
    out[..., :c] = win.transpose(0, 2, 3, 4, 5, 1)
    return out


image_patches = register(
    "image_patches", args=("data", "pad_value"),
    attrs={"kernel": REQUIRED, "strides": (1, 1), "padding": (0, 0), "dilation": (1, 1), "channels": REQUIRED},
    type_rel=_image_patches_rel, shape_func=_image_patches_shape, reference=_image_patches_ref,
    pattern=OpPattern.OPAQUE,
    doc="The windows of a convolution over NHWC data (im2col): out[n, y, x, i, j, c] = data[n, y * sh + i * dh - "
    "top, x * sw + j * dw - left, c], pad_value outside the data and for c past its channels (channels pads each "
    "tap, e.g. to a multiple of 4 for dense_integer). Reshaped to (N, OH, OW, kh x kw x channels), a view, each "
    "pixel's row is a convolution's operand (the weight as O x (kh x kw x channels)). Opaque: an elementwise "
    "producer is computed once, not once per tap.",
)
