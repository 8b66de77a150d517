"""quantize_linear: ONNX QuantizeLinear's saturate(round_half_even(x / scale) + zero_point) into int8 / uint8 / int16 / uint16
(and int4 / uint4 / int2 / uint2, ml_dtypes' one-per-byte storage),
x, scale and zero_point broadcasting (numpy rules; per-axis scales arrive reshaped to broadcast).

x / scale is computed in float32 (float64 for float64 x), rounded half to even (numpy's rint), offset by the zero
point and clipped to the output dtype's range; NaN quantizes to the zero point clipped (ONNX leaves it undefined).
"""
from __future__ import annotations

import numpy as np

from ..dtypes import int_range, numpy_dtype
from ..ir.types import TensorType
from .registry import OpPattern, register
from .relations import FLOAT_DTYPES, broadcast_shapes, tensor_arg

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
