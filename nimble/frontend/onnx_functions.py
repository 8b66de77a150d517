"""ONNX operators defined by a function: a node without a converter of its own is expanded into its schema's
function body (``onnx.defs``) and those nodes are converted instead.

A schema either holds one body per opset version (``get_function_with_opset_version``; its attributes are
``ref_attr_name`` references bound here) or builds a body for the node at hand from its attributes and input types
(``get_context_dependent_function_with_opset_version``; the input types come from the values already converted).
The body's formal inputs and outputs are renamed to the node's actual ones (an optional one left empty stays
empty), its intermediates to names of their own, and its nodes are converted at the opset the body is written in;
a body node whose op has a function again is expanded in turn. An explicit converter always wins: this module is
only asked when ``CONVERTERS`` has none.
"""
from __future__ import annotations

import itertools

from .onnx_graph import ConversionError, UnsupportedOperatorError

# ops without a converter that pass ONNX's node tests through their function body (nimble claims them). Not
# claimed: AffineGrid (its output shape is the values of its `size` input), LinearAttention (Scan), Bernoulli
# (random), SequenceMap (sequences). Attention runs float16 / bfloat16 bodies in float32 (`_IN_FLOAT32`); its
# bfloat16 cases differ from ONNX's reference, which rounds to bfloat16 at each step, by an ulp.
FUNCTION_OPS = ("Attention", "BlackmanWindow", "CausalConvWithState", "CenterCropPad", "DepthToSpace",
                "GroupNormalization", "HammingWindow", "HannWindow", "MeanVarianceNormalization",
                "NegativeLogLikelihoodLoss", "RMSNormalization", "RotaryEmbedding", "SoftmaxCrossEntropyLoss",
                "SpaceToDepth", "SwiGLU", "Swish")

_expansions = itertools.count()


def _schema(op_type: str, opset: int):
    from onnx import defs

    try:
        return defs.get_schema(op_type, opset, "")
    except defs.SchemaError:
        return None


def _version_at(versions, opset: int):
    fitting = [v for v in versions if v <= opset]
    return max(fitting) if fitting else None


def has_function(op_type: str, opset: int) -> bool:
    """Whether ai.onnx operator `op_type` at `opset` is defined by a function (fixed or context-dependent)."""
    schema = _schema(op_type, opset)
    if schema is None:
        return False
    return (_version_at(schema.function_opset_versions, opset) is not None
            or _version_at(schema.context_dependent_function_opset_versions, opset) is not None)


def _type_proto(value):
    """The ONNX TypeProto of a converted value (static dims as values, symbolic ones by name, unknown ones empty)."""
    from onnx import helper

    from ..dtypes import numpy_dtype
    from ..ir.types import AnyDim, SymDim, TensorType

    if value is None or not isinstance(value.type, TensorType):
        from onnx import TypeProto

        return TypeProto()
    dims = [None if isinstance(d, AnyDim) else str(d.name) if isinstance(d, SymDim) else int(d)
            for d in value.type.shape]
    elem = helper.np_dtype_to_tensor_dtype(numpy_dtype(value.type.dtype))
    return helper.make_tensor_type_proto(elem, dims)


def function_body(node, opset: int, inputs: list):
    """The FunctionProto defining `node` at `opset`, or None when its schema has no function.
    `inputs`: the node's converted input values (None for an empty one), for a context-dependent body."""
    from onnx import FunctionProto

    schema = _schema(node.op_type, opset)
    if schema is None:
        return None
    body = FunctionProto()
    version = _version_at(schema.function_opset_versions, opset)
    if version is not None:
        body.ParseFromString(schema.get_function_with_opset_version(version))
        return body
    version = _version_at(schema.context_dependent_function_opset_versions, opset)
    if version is None:
        return None
    types = [_type_proto(v).SerializeToString() for v in inputs]
    try:
        data = schema.get_context_dependent_function_with_opset_version(version, node.SerializeToString(), types)
    except Exception as err:  # noqa: BLE001 - onnx's builder raises RuntimeError / ValueError by case
        raise ConversionError(f"{node.op_type}: ONNX could not build its function body for these inputs "
                              f"({type(err).__name__}: {err})") from None
    if not data:
        raise ConversionError(f"{node.op_type}: ONNX builds no function body for these attributes and input types")
    body.ParseFromString(data)
    return body


def _attribute_values(node, body, schema) -> dict:
    """name -> AttributeProto that a ``ref_attr_name`` of the body resolves to: the node's own, else the
    function's default, else the schema's default."""
    values = {}
    if schema is not None:
        for name, spec in schema.attributes.items():
            if spec.default_value.type:
                values[name] = spec.default_value
    for a in body.attribute_proto:
        values[a.name] = a
    for a in node.attribute:
        values[a.name] = a
    return values


def _bind_attributes(body_node, values: dict, rename) -> None:
    """Replace `body_node`'s attribute references by the bound values (dropped when unbound) and rename the
    names its subgraphs use from the function's scope."""
    from onnx import AttributeProto

    kept = []
    for a in body_node.attribute:
        if a.ref_attr_name:
            bound = values.get(a.ref_attr_name)
            if bound is None:
                continue
            b = AttributeProto()
            b.CopyFrom(bound)
            b.name = a.name
            a = b
        if a.type == AttributeProto.GRAPH:
            _rename_graph(a.g, rename)
        elif a.type == AttributeProto.GRAPHS:
            for g in a.graphs:
                _rename_graph(g, rename)
        kept.append(a)
    del body_node.attribute[:]
    body_node.attribute.extend(kept)


def _rename_graph(graph, rename, outer_locals: frozenset = frozenset()) -> None:
    """Rename the function-scope names a subgraph uses (its own names, and those of the subgraphs around it, are
    left alone)."""
    local = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    for n in graph.node:
        local |= set(n.output)
    local = frozenset(local) | outer_locals
    for n in graph.node:
        n.input[:] = [name if not name or name in local else rename(name) for name in n.input]
        for a in n.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                _rename_graph(g, rename, local)
    for o in graph.output:
        if o.name not in local:
            o.name = rename(o.name)


def expanded_nodes(node, body, opset: int) -> list:
    """`body`'s nodes with the node's inputs, outputs and attributes bound and intermediates renamed apart."""
    from onnx import NodeProto

    tag = f"{node.op_type}_{next(_expansions)}"
    names = {formal: (node.input[k] if k < len(node.input) else "") for k, formal in enumerate(body.input)}
    names.update({formal: (node.output[k] if k < len(node.output) else "") for k, formal in enumerate(body.output)})

    def rename(name: str) -> str:
        if not name:
            return ""
        if name not in names:
            names[name] = f"{tag}__{name}"
        return names[name]

    values = _attribute_values(node, body, _schema(node.op_type, opset))
    out = []
    for k, body_node in enumerate(body.node):
        n = NodeProto()
        n.CopyFrom(body_node)
        n.input[:] = [rename(name) for name in body_node.input]
        n.output[:] = [rename(name) for name in body_node.output]
        n.name = f"{node.name or node.output[0]}/{tag}/{body_node.name or k}"
        _bind_attributes(n, values, rename)
        out.append(n)
    return out


def body_opset(body, default: int) -> int:
    for imp in body.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return default


# ops whose float16 / bfloat16 bodies run in float32 (their inputs cast up, outputs cast back): rounding at each
# step of a long body (Attention: scale, matmul, mask, softmax, matmul) strays from ONNX's reference and ORT
_IN_FLOAT32 = ("Attention",)


def _in_float32(ctx, node):
    """A copy of `node` reading float32 copies of its float16 / bfloat16 inputs, and the (float32 name, name, dtype)
    of each output to cast back; None when no input is narrow."""
    from onnx import NodeProto

    inputs = [ctx.lookup(name) if name else None for name in node.input]
    narrow = {v.dtype for v in inputs if v is not None} & {"float16", "bfloat16"}
    if node.op_type not in _IN_FLOAT32 or not narrow:
        return None
    tag = f"{node.op_type}_{next(_expansions)}"
    wide = NodeProto()
    wide.CopyFrom(node)
    for k, v in enumerate(inputs):
        if v is not None and v.dtype in narrow:
            wide.input[k] = f"{tag}__in{k}_f32"
            ctx.env[wide.input[k]] = ctx.emit("cast", v, dtype="float32")
    back = []
    for k, name in enumerate(node.output):
        if name:
            wide.output[k] = f"{tag}__out{k}_f32"
            back.append((wide.output[k], name))
    return wide, back, narrow.pop()


def convert_by_function(ctx, node) -> bool:
    """Convert `node` through its function body into `ctx`; False when its schema defines no function."""
    widened = _in_float32(ctx, node)
    if widened is not None:
        wide, back, dtype = widened
        if not convert_by_function(ctx, wide):
            return False
        for wide_name, name in back:
            value = ctx.lookup(wide_name)
            ctx.env[name] = ctx.emit("cast", value, dtype=dtype) if value.dtype == "float32" else value
        return True
    inputs = [ctx.lookup(name) if name else None for name in node.input]
    body = function_body(node, ctx.opset, inputs)
    if body is None:
        return False
    nodes = expanded_nodes(node, body, ctx.opset)
    saved = ctx.opset
    ctx.opset = body_opset(body, saved)
    try:
        for n in nodes:
            ctx.convert_node(n)
    except UnsupportedOperatorError as err:
        raise UnsupportedOperatorError(f"{node.op_type} (via its function body): {err}") from err
    finally:
        ctx.opset = saved
    for name in node.output:
        if name:
            ctx.lookup(name)  # every wanted output was defined by the body
    return True
