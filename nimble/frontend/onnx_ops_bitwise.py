"""Converters of ONNX's integer bit operators: BitwiseAnd / Or / Xor / Not and BitShift."""
from __future__ import annotations

from .onnx_graph import ConversionError, converter

_BITWISE = {"BitwiseAnd": "bitwise_and", "BitwiseOr": "bitwise_or", "BitwiseXor": "bitwise_xor"}


def _same_dtype(a, b):
    if a.dtype != b.dtype:
        raise ConversionError(f"inputs have dtypes {a.dtype} and {b.dtype}")


@converter(*_BITWISE)
def bitwise(ctx, node, inputs, attrs):
    a, b = inputs
    _same_dtype(a, b)
    return [ctx.emit(_BITWISE[node.op_type], a, b)]


@converter("BitwiseNot")
def bitwise_not(ctx, node, inputs, attrs):
    return [ctx.emit("bitwise_not", inputs[0])]


@converter("BitShift")
def bit_shift(ctx, node, inputs, attrs):
    """direction LEFT or RIGHT (required); an amount of at least the bit width gives 0 (numpy's result)."""
    x, amount = inputs
    _same_dtype(x, amount)
    direction = attrs.get("direction")
    if direction not in ("LEFT", "RIGHT"):
        raise ConversionError(f"direction must be 'LEFT' or 'RIGHT', got {direction!r}")
    return [ctx.emit("left_shift" if direction == "LEFT" else "right_shift", x, amount)]
