"""te computes of quantize_linear and dense_integer.

quantize_linear rounds x / scale half to even in its float dtype (``round``: LLVM's roundeven, CUDA's rint), adds
the zero point and clips to the output range there, then converts: a rounded value is an integer, exact in float32
below 2**24, and anything larger saturates to the range either way."""
from __future__ import annotations

from .. import te
from ..dtypes import int_range
from .compute import broadcast_dims, broadcast_index, checker, dim_checks, register_compute
from .quantize import compute_dtype

@register_compute("quantize_linear")
def _quantize_linear(inputs, attrs, out_shapes):
    x, scale, zero_point = inputs
    dtype = attrs["dtype"]
    wide = compute_dtype(x.dtype)
    shape, checks = broadcast_dims("quantize_linear", [x.shape, scale.shape, zero_point.shape],
                                   ["x", "scale", "zero_point"])
    low, high = int_range(dtype)

    def body(*i):
        xv = te.cast(wide, x[broadcast_index(x.shape, shape, i)])
        sv = te.cast(wide, scale[broadcast_index(scale.shape, shape, i)])
        v = xv / sv
        v = te.select(te.ne(v, v), te.const(0.0, wide), v)  # NaN: the zero point (ONNX leaves it undefined)
        q = te.math_call("round", v) + te.cast(wide, zero_point[broadcast_index(zero_point.shape, shape, i)])
        return te.cast(dtype, te.min_(te.max_(q, float(low)), float(high)))

    return te.compute(shape, body, name="quantize_linear", checks=checker(checks))


@register_compute("dense_integer")
def _dense_integer(inputs, attrs, out_shapes):
    x, w, zero = inputs
    k = te.reduce_axis(x.shape[-1], "k")
    checks = dim_checks("dense_integer", [(x.shape[-1], w.shape[1], "x's columns and weight's columns")])

    def body(*i):
        xv = te.cast("int32", x[i[:-1] + (k.var,)]) - te.cast("int32", zero[()])
        return te.sum(xv * te.cast("int32", w[i[-1], k.var]), axis=k)

    return te.compute(x.shape[:-1] + (w.shape[0],), body, name="dense_integer", checks=checker(checks))
