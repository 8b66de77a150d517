"""A node checked against its ONNX operator schema (``onnx.defs``) before it is converted: input and
output counts, attribute names (none unknown, none repeated, every required one present) and
attribute types. ONNX Runtime refuses such nodes when it loads the model; a converter that only
reads the attributes it knows would run them and silently ignore the rest (an extra input of a
Softmax, an ``axis`` on a Relu, an ``axes`` attribute where the opset takes an input)."""
from __future__ import annotations

from .onnx_graph import MalformedNodeError


def check_node_schema(node, opset: int) -> None:
    """Raise ``MalformedNodeError`` naming the node when it does not fit its schema at ``opset``;
    operators without a schema (other domains, unknown ones) are left to the converter lookup."""
    from onnx import defs

    try:
        schema = defs.get_schema(node.op_type, opset, node.domain if node.domain != "ai.onnx" else "")
    except defs.SchemaError:
        return
    where = f"{node.op_type} node {node.name or (node.output[:1] or ['?'])[0]!r} (opset {opset})"
    for what, count, lo, hi in (("inputs", len(node.input), schema.min_input, schema.max_input),
                                ("outputs", len(node.output), schema.min_output, schema.max_output)):
        if not lo <= count <= hi:
            expected = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi < 2**31 - 1 else f"at least {lo}"
            raise MalformedNodeError(f"{where}: malformed: expected {expected} {what}, got {count}")
    seen = set()
    for attr in node.attribute:
        if attr.name in seen:
            raise MalformedNodeError(f"{where}: attribute {attr.name!r} appears twice")
        seen.add(attr.name)
        spec = schema.attributes.get(attr.name)
        if spec is None:
            raise MalformedNodeError(f"{where}: unknown attribute {attr.name!r} (expected one of "
                                     f"{sorted(schema.attributes)})")
        if attr.type and int(attr.type) != int(spec.type.value):
            from onnx import AttributeProto

            raise MalformedNodeError(f"{where}: attribute {attr.name!r} must be of type {spec.type.name}, "
                                     f"got {AttributeProto.AttributeType.Name(attr.type)}")
    missing = sorted(name for name, spec in schema.attributes.items() if spec.required and name not in seen)
    if missing:
        raise MalformedNodeError(f"{where}: required attribute(s) {missing} missing")
