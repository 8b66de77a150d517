"""quantize_linear: ONNX QuantizeLinear's saturate(round_half_even(x / scale) + zero_point) into int8 / uint8 / int16 / uint16
(and int4 / uint4 / int2 / uint2, ml_dtypes' one-per-byte storage),
x, scale and zero_point broadcasting (numpy rules; per-axis scales arrive reshaped to broadcast).

x / scale is computed in float32 (float64 for float64 x), rounded half to even (numpy's rint), offset by the zero
point and clipped to the output dtype's range; NaN quantizes to the zero point clipped (ONNX leaves it undefined).

dense_integer: the int32 product of 8-bit matrices, ``(x - x_zero_point) @ weight.T`` (ONNX MatMulInteger with a
constant weight), exact modulo 2**32 like numpy's int32 arithmetic.
"""
from __future__ import annotations

import numpy as np

from ..dtypes import int_range, numpy_dtype
from ..ir.types import TensorType
from .registry import OpPattern, register
from .relations import FLOAT_DTYPES, broadcast_shapes, dims_equal, rank_at_least, rank_is, tensor_arg

QUANT_DTYPES = ("int8", "uint8", "int16", "uint16", "int4", "uint4", "int2", "uint2")


def compute_dtype(dtype: str) -> str:
    return "float64" if dtype == "float64" else "float32"


def _rel(x, scale, zero_point, dtype):
    x = tensor_arg("quantize_linear", "x", x, FLOAT_DTYPES)
    scale = tensor_arg("quantize_linear", "scale", scale, FLOAT_DTYPES)
    zero_point = tensor_arg("quantize_linear", "zero_point", zero_point, QUANT_DTYPES)
    if dtype not in QUANT_DTYPES:
        from ..errors import TypeError as NimbleTypeError

        raise NimbleTypeError(f"quantize_linear: dtype must be one of {QUANT_DTYPES}, got {dtype!r}")
    shape = broadcast_shapes("quantize_linear", ("x", x), ("scale", scale), ("zero_point", zero_point))
    return TensorType(shape, dtype)


def _shape(x, scale, zero_point, dtype):
    return [np.array(np.broadcast_shapes(*(tuple(int(d) for d in s) for s in (x, scale, zero_point))), np.int64)]


def _reference(x, scale, zero_point, dtype):
    wide = compute_dtype(str(x.dtype))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        q = np.rint(x.astype(wide) / scale.astype(wide))
        q = np.where(np.isnan(q), 0, q)
        low, high = int_range(dtype)
        q = np.clip(q, -2.0**40, 2.0**40) + zero_point.astype(np.float64)
    return np.clip(q, low, high).astype(np.int64).astype(numpy_dtype(dtype))


quantize_linear = register(
    "quantize_linear", args=("x", "scale", "zero_point"), attrs={"dtype": "uint8"}, type_rel=_rel,
    shape_func=_shape, reference=_reference, pattern=OpPattern.BROADCAST,
    doc="saturate(round_half_even(x / scale) + zero_point) as dtype (int8, uint8, int16, uint16, int4, uint4, int2 or "
    "uint2), with numpy "
    "broadcasting.",
)


# ---- dense_integer: (x (..., k) - x_zero_point) @ weight (m, k)^T in int32 -------------------------------------------
BYTE_DTYPES = ("int8", "uint8")


def _dense_integer_rel(x, weight, x_zero_point):
    x = tensor_arg("dense_integer", "x", x, BYTE_DTYPES)
    weight = tensor_arg("dense_integer", "weight", weight, BYTE_DTYPES)
    zero = tensor_arg("dense_integer", "x_zero_point", x_zero_point, (x.dtype,))
    rank_at_least("dense_integer", "x", x, 1)
    rank_is("dense_integer", "weight", weight, 2)
    rank_is("dense_integer", "x_zero_point", zero, 0)
    dims_equal("dense_integer", x.shape[-1], weight.shape[1], "x has {a} columns, weight expects {b}")
    return TensorType(x.shape[:-1] + (weight.shape[0],), "int32")


def _dense_integer_reference(x, weight, x_zero_point):
    with np.errstate(over="ignore"):
        return np.matmul(x.astype(np.int32) - np.int32(x_zero_point), weight.astype(np.int32).T)


dense_integer = register(
    "dense_integer", args=("x", "weight", "x_zero_point"), type_rel=_dense_integer_rel,
    shape_func=lambda x, weight, x_zero_point: [np.concatenate([x[:-1], weight[:1]])],
    reference=_dense_integer_reference, pattern=OpPattern.OPAQUE,
    doc="int32 (x (..., k) - x_zero_point) times weight (m, k) transposed: (..., m); x and weight int8 or uint8, "
    "x_zero_point a scalar of x's dtype (ONNX MatMulInteger with a constant weight). A kernel of its own: uint8 x "
    "and int8 weight with k a multiple of 4 run the dense_integer template (VNNI byte dot products).",
)
