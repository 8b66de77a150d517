"""te compute of quantize_linear: round half to even without a rounding intrinsic (floor through a truncating
int64 cast, then the tie rule), the zero point added and the result clipped in int64."""
from __future__ import annotations

from .. import te
from ..dtypes import int_range
from ..te.expr import Expr
from .compute import broadcast_dims, broadcast_index, checker, dim_checks, register_compute
from .quantize import compute_dtype

LIMIT = 2.0**40  # |x / scale| is clipped here first so the int64 cast is defined; far outside any int8 range


def round_half_even(v: Expr) -> Expr:
    """The nearest int64 to a float v (|v| <= LIMIT), ties to even; NaN gives 0."""
    v = te.select(te.ne(v, v), te.const(0.0, v.dtype), te.min_(te.max_(v, -LIMIT), LIMIT))
    t = te.cast("int64", v)  # toward zero
    floor = t - te.select(te.cast(v.dtype, t) > v, 1, 0)
    frac = v - te.cast(v.dtype, floor)
    up = te.any_(frac > 0.5, te.all_(te.eq(frac, te.const(0.5, v.dtype)), te.ne(floor % 2, 0)))
    return floor + te.select(up, 1, 0)


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
        q = round_half_even(xv / sv) + te.cast("int64", zero_point[broadcast_index(zero_point.shape, shape, i)])
        return te.cast(dtype, te.min_(te.max_(q, low), high))

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
