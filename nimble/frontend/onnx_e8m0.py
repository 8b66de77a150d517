"""ONNX Cast to FLOAT8E8M0 (a power of two 2**(code - 127): no sign, no zero, no inf, 0xFF NaN) as ONNX's reference
converts (``onnx.numpy_helper.to_float8e8m0``): x is taken as float32 and only the exponent of |x| matters (ONNX
leaves negatives unspecified; the reference drops the sign).

* round_mode 'up' (the default): the smallest power of two >= |x|; 'down': the largest <= |x|; 'nearest': the
  nearer one, a tie (1.5 * 2**e) going up.
* Below 2**-126 (float32 exponent bits 0): 'up' gives 2**-126 for any x != 0 and 2**-127 (code 0) for 0; 'down'
  2**-127; 'nearest' 2**-126 above 2**-127, else 2**-127.
* A result beyond 2**127 (E8M0_MAX): 2**127 with saturate=1, NaN with saturate=0.
* inf and NaN give NaN whatever `saturate` does (the reference; the table in ONNX's Cast text says E8M0_MAX for inf
  with saturate + up, but its reference and test data say NaN).

The result is computed as a float32 power of two, then converted by the exact e8m0 cast (ml_dtypes' rounding: to
nearest, ties up). The largest power of two <= |x| is e8m0(0.75 * |x|) for |x| in [2**-126, 2**128): 0.75 * [2**e,
2**(e+1)) lies in [0.75 * 2**e, 1.5 * 2**e), which that cast takes to 2**e (the float32 product rounds inside it).
"""
from __future__ import annotations

import numpy as np

from .onnx_graph import ConversionError

E8M0 = "float8_e8m0fnu"
ROUND_MODES = ("up", "down", "nearest")
E8M0_MAX = 2.0**127
SMALLEST_NORMAL = 2.0**-126  # float32's, and e8m0's code 1
E8M0_MIN = 2.0**-127  # e8m0's code 0, a float32 subnormal


def _f32(value) -> np.ndarray:
    return np.asarray(value, np.float32)


def cast_to_e8m0(ctx, x, saturate: bool = True, round_mode: str = "up"):
    """x cast to float8_e8m0fnu as ONNX's Cast with `saturate` and `round_mode` (module docstring). Every
    intermediate is built once per use (a tree, no shared nodes), so the whole conversion fuses into one kernel."""
    if round_mode not in ROUND_MODES:
        raise ConversionError(f"Cast to FLOAT8E8M0: round_mode must be one of {ROUND_MODES}, got {round_mode!r}")
    if x.dtype == E8M0:
        return x
    emit = ctx.emit

    def mag():  # |x| in float32
        return emit("abs", x if x.dtype == "float32" else emit("cast", x, dtype="float32"))

    def low():  # the largest power of two <= |x| (for |x| in [2**-126, 2**128); NaN for inf and NaN)
        return emit("cast", emit("cast", emit("multiply", mag(), _f32(0.75)), dtype=E8M0), dtype="float32")

    def high():  # twice low, used only when |x| > low (so low is finite): 2**128 saturates or overflows to inf
        if saturate:
            return emit("where", emit("less", low(), _f32(E8M0_MAX)), emit("multiply", low(), _f32(2)), _f32(E8M0_MAX))
        return emit("multiply", low(), _f32(2))

    if round_mode == "up":
        pow2 = emit("where", emit("greater", mag(), low()), high(), low())
        tiny = emit("where", emit("greater", mag(), _f32(0)), _f32(SMALLEST_NORMAL), _f32(E8M0_MIN))
    elif round_mode == "nearest":
        pow2 = emit("where", emit("greater_equal", mag(), emit("multiply", low(), _f32(1.5))), high(), low())
        tiny = emit("where", emit("greater", mag(), _f32(E8M0_MIN)), _f32(SMALLEST_NORMAL), _f32(E8M0_MIN))
    else:
        pow2, tiny = low(), _f32(E8M0_MIN)
    pow2 = emit("where", emit("less", mag(), _f32(SMALLEST_NORMAL)), tiny, pow2)
    return emit("cast", pow2, dtype=E8M0)
