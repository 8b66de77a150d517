"""te computes of conv2d, max_pool2d and avg_pool2d (NCHW): padding by `te.select` around clamped reads."""
from __future__ import annotations

from .. import te
from ..errors import ShapeError
from ..te.expr import IntImm, min_value
from .compute import checker, clamp, dim_checks, register_compute
from .relations import int_pair, padding4


def window_len(size, kernel: int, stride: int, before: int, after: int, dilation: int = 1):
    """Output length of a sliding window over a (symbolic) size."""
    return (size + (before + after - dilation * (kernel - 1) - 1)) // stride + 1


def padded_read(x: te.Tensor, n, c, y, xx):
    """(in_bounds, x[n, c, y, xx] with y and xx clamped into range) for a read that may fall in the padding."""
    h, w = x.shape[2], x.shape[3]
    inside = te.all_(y >= 0, y < h, xx >= 0, xx < w)
    return inside, x[n, c, clamp(y, 0, h - 1), clamp(xx, 0, w - 1)]


@register_compute("conv2d")
def _conv2d(inputs, attrs, out_shapes):
    data, weight = inputs
    (sh, sw), (dh, dw) = int_pair("conv2d", "strides", attrs["strides"]), int_pair("conv2d", "dilation",
                                                                                   attrs["dilation"])
    pt, pl, pb, pr = padding4("conv2d", attrs["padding"])
    groups = attrs["groups"]
    out_c, in_c, kh, kw = weight.shape
    if not (isinstance(kh, IntImm) and isinstance(kw, IntImm)):
        raise ShapeError(f"conv2d: the kernel size must be static, weight has shape {weight.shape}")
    kh, kw = kh.value, kw.value
    checks = dim_checks("conv2d", [(data.shape[1], in_c * groups, "data's channels and weight's in-channels x groups")])
    oh = window_len(data.shape[2], kh, sh, pt, pb, dh)
    ow = window_len(data.shape[3], kw, sw, pl, pr, dw)
    per_group = out_c // groups
    rc, ry, rx = te.reduce_axis(in_c, "rc"), te.reduce_axis(kh, "ry"), te.reduce_axis(kw, "rx")

    def body(n, o, y, x):
        c = (o // per_group) * in_c + rc.var
        inside, v = padded_read(data, n, c, y * sh + ry.var * dh - pt, x * sw + rx.var * dw - pl)
        return te.sum(te.select(inside, v, 0.0) * weight[o, rc.var, ry.var, rx.var], axis=[rc, ry, rx])

    return te.compute((data.shape[0], out_c, oh, ow), body, name="conv2d", checks=checker(checks))


def _pool_geometry(name: str, data: te.Tensor, attrs):
    (kh, kw), (sh, sw) = int_pair(name, "pool_size", attrs["pool_size"]), int_pair(name, "strides", attrs["strides"])
    pt, pl, pb, pr = padding4(name, attrs["padding"])
    shape = data.shape[:2] + (window_len(data.shape[2], kh, sh, pt, pb), window_len(data.shape[3], kw, sw, pl, pr))
    return (kh, kw), (sh, sw), (pt, pl), shape


@register_compute("max_pool2d")
def _max_pool2d(inputs, attrs, out_shapes):
    (data,) = inputs
    (kh, kw), (sh, sw), (pt, pl), shape = _pool_geometry("max_pool2d", data, attrs)
    ry, rx = te.reduce_axis(kh, "ry"), te.reduce_axis(kw, "rx")

    def body(n, c, y, x):
        inside, v = padded_read(data, n, c, y * sh + ry.var - pt, x * sw + rx.var - pl)
        return te.max(te.select(inside, v, min_value(data.dtype)), axis=[ry, rx])

    return te.compute(shape, body, name="max_pool2d")


@register_compute("avg_pool2d")
def _avg_pool2d(inputs, attrs, out_shapes):
    """The window sum in float64 over the window size, or over the count of its positions inside the data."""
    (data,) = inputs
    (kh, kw), (sh, sw), (pt, pl), shape = _pool_geometry("avg_pool2d", data, attrs)
    h, w = data.shape[2], data.shape[3]
    ry, rx = te.reduce_axis(kh, "ry"), te.reduce_axis(kw, "rx")

    def window_sum(n, c, y, x):
        inside, v = padded_read(data, n, c, y * sh + ry.var - pt, x * sw + rx.var - pl)
        return te.sum(te.select(inside, te.cast("float64", v), 0.0), axis=[ry, rx])

    total = te.compute(shape, window_sum, name="avg_pool2d_sum")

    def count(y, x):
        if attrs["count_include_pad"]:
            return te.const(float(kh * kw), "float64")
        y0, x0 = y * sh - pt, x * sw - pl
        rows = te.max_(te.min_(y0 + kh, h) - te.max_(y0, 0), 0)
        cols = te.max_(te.min_(x0 + kw, w) - te.max_(x0, 0), 0)
        return te.cast("float64", rows * cols)

    return te.compute(shape, lambda n, c, y, x: te.cast(data.dtype, total[n, c, y, x] / count(y, x)),
                      name="avg_pool2d")


@register_compute("image_patches")
def _image_patches(inputs, attrs, out_shapes):
    """Contiguous along the channels: one bounds test per tap, a vector copy of its channels."""
    data, pad_value = inputs
    (kh, kw), (sh, sw) = int_pair("image_patches", "kernel", attrs["kernel"]), int_pair("image_patches", "strides",
                                                                                      attrs["strides"])
    (dh, dw) = int_pair("image_patches", "dilation", attrs["dilation"])
    pt, pl, pb, pr = padding4("image_patches", attrs["padding"])
    channels = attrs["channels"]
    c_in, h, w = data.shape[3], data.shape[1], data.shape[2]
    if not isinstance(c_in, IntImm) or c_in.value > channels:
        raise ShapeError(f"image_patches: data's channel count must be static and at most channels={channels}, "
                         f"data has shape {data.shape}")
    oh = window_len(h, kh, sh, pt, pb, dh)
    ow = window_len(w, kw, sw, pl, pr, dw)

    def body(n, y, x, i, j, c):
        iy, ix = y * sh + i * dh - pt, x * sw + j * dw - pl
        inside = te.all_(iy >= 0, iy < h, ix >= 0, ix < w)
        if channels != c_in.value:
            inside = te.all_(inside, c < c_in)
        v = data[n, clamp(iy, 0, h - 1), clamp(ix, 0, w - 1), te.min_(c, c_in - 1)]
        return te.select(inside, v, pad_value[()])

    return te.compute((data.shape[0], oh, ow, IntImm(kh), IntImm(kw), IntImm(channels)), body, name="image_patches")
