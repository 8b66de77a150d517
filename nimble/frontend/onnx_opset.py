"""Models older than the opset the converters are written for (13): upgraded with onnx's version converter.

ONNX Runtime runs opset 7 and up; so does nimble, by rewriting the model to opset `TARGET_OPSET` before conversion
(Upsample, Split / Squeeze / Unsqueeze / Reduce* attributes that became inputs, BatchNormalization's spatial, ...).
A model the version converter cannot upgrade is refused with the converter's reason and the nodes it names.
"""
from __future__ import annotations

from ..errors import FormatError

TARGET_OPSET = 13
OLDEST_OPSET = 7


def upgrade(model, opset: int):
    """`model` rewritten to opset `TARGET_OPSET` (the model itself when it is already there or newer)."""
    if opset >= TARGET_OPSET:
        return model
    if opset < OLDEST_OPSET:
        raise FormatError(f"ONNX opset {opset} is not supported: nimble (like ONNX Runtime) reads opset "
                          f"{OLDEST_OPSET} and newer")
    import onnx
    from onnx import version_converter

    try:
        upgraded = version_converter.convert_version(model, TARGET_OPSET)
    except Exception as err:  # noqa: BLE001 - the converter raises RuntimeError / ValueError / its C++ errors
        ops = sorted({node.op_type for node in model.graph.node})
        raise FormatError(f"ONNX opset {opset}: onnx's version converter cannot upgrade this model to opset "
                          f"{TARGET_OPSET} ({type(err).__name__}: {str(err).strip().splitlines()[0][:300]}); "
                          f"the model's ops: {ops}") from None
    try:
        onnx.checker.check_model(upgraded)
    except Exception as err:  # noqa: BLE001 - onnx.checker.ValidationError and friends
        raise FormatError(f"ONNX opset {opset}: the model upgraded to opset {TARGET_OPSET} is not valid "
                          f"({str(err).strip().splitlines()[0][:300]})") from None
    return upgraded
