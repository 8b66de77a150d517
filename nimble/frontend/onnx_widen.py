"""float16 / bfloat16 models computed in float32: the ONNX graph rewritten before conversion.

CPUs other than those with AVX512-FP16 have no half-precision arithmetic; nimble's kernels widen each narrow value
to float32 on load and round it on store, so a float16 graph pays a rounding per operator and, worse, falls off the
float32 templates and patterns (attention, layer_norm, dense epilogues). ``widen_float16`` returns a copy of the
model in which every float16 / bfloat16 initializer, constant and attribute is float32, the graph inputs of those
types are cast to float32 where they enter and the outputs cast back where they leave, and an explicit ``Cast`` to
float16 / bfloat16 keeps its rounding (a cast there and back to float32). Results are then the float32 model's
rounded once at the outputs: within the narrow type's rounding of ONNX Runtime's (which rounds after every
operator), and never further from the float32 model.
"""
from __future__ import annotations

import numpy as np

NARROW = (10, 16)  # TensorProto.FLOAT16, BFLOAT16
FLOAT = 1
DTYPE_ATTRS = ("dtype", "output_dtype")


def has_narrow_floats(model) -> bool:
    """Whether the model has float16 / bfloat16 initializers, graph inputs or outputs."""
    g = model.graph
    return any(t.data_type in NARROW for t in g.initializer) or any(
        v.type.tensor_type.elem_type in NARROW for v in list(g.input) + list(g.output) if v.type.HasField("tensor_type"))


def widen_float16(model):
    """A copy of ``model`` computing in float32 (module docstring); its inputs and outputs keep their types."""
    from onnx import helper

    out = type(model)()
    out.CopyFrom(model)
    g = out.graph
    declared = [{v.name: v.type.tensor_type.elem_type for v in values
                 if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type in NARROW}
                for values in (g.input, g.output)]
    _widen_graph(g)
    for values, types in zip((g.input, g.output), declared):  # the model's interface keeps its types
        for v in values:
            if v.name in types:
                v.type.tensor_type.elem_type = types[v.name]
    initialized = {t.name for t in g.initializer}
    renames, entry = {}, []
    for v in g.input:
        if v.name not in initialized and v.name in declared[0]:
            renames[v.name] = f"{v.name}__float32"
            entry.append(helper.make_node("Cast", [v.name], [renames[v.name]], to=FLOAT, name=f"{v.name}__widen"))
    _rename_uses(g, renames)
    exits = []
    produced = {o for n in g.node for o in n.output}
    for v in g.output:
        if v.name in declared[1] and v.name in produced:
            wide = f"{v.name}__float32"
            for n in g.node:
                n.output[:] = [wide if o == v.name else o for o in n.output]
            _rename_uses(g, {v.name: wide})
            exits.append(helper.make_node("Cast", [wide], [v.name], to=v.type.tensor_type.elem_type,
                                          name=f"{v.name}__narrow"))
    nodes = entry + list(g.node) + exits
    del g.node[:]
    g.node.extend(nodes)
    return out


def _widen_graph(g) -> None:
    """Initializers, constants, attributes and value types of ``g`` (and its subgraphs) float32; explicit casts to
    a narrow type followed by a cast back."""
    from onnx import helper, numpy_helper

    for k, t in enumerate(g.initializer):
        if t.data_type in NARROW:
            g.initializer[k].CopyFrom(numpy_helper.from_array(_float32(numpy_helper.to_array(t)), t.name))
    nodes = []
    for n in g.node:
        for a in n.attribute:
            if a.type == a.TENSOR and a.t.data_type in NARROW:
                a.t.CopyFrom(numpy_helper.from_array(_float32(numpy_helper.to_array(a.t)), a.t.name))
            elif a.type == a.INT and a.name in DTYPE_ATTRS and a.i in NARROW:
                a.i = FLOAT
            elif a.type == a.GRAPH:
                _widen_graph(a.g)
            elif a.type == a.GRAPHS:
                for sub in a.graphs:
                    _widen_graph(sub)
        to = next((a for a in n.attribute if a.name == "to"), None)
        if n.op_type == "Cast" and to is not None and to.i in NARROW:  # its rounding, then float32 again
            rounded = f"{n.output[0]}__rounded"
            nodes.append(helper.make_node("Cast", list(n.input), [rounded], to=to.i, name=f"{n.name}__round"))
            nodes.append(helper.make_node("Cast", [rounded], [n.output[0]], to=FLOAT, name=n.name))
            continue
        nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    for v in list(g.value_info) + list(g.input) + list(g.output):
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type in NARROW:
            v.type.tensor_type.elem_type = FLOAT


def _float32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def _rename_uses(g, renames: dict) -> None:
    """Node inputs (here and in subgraphs, which see the outer scope) named in ``renames`` renamed."""
    if not renames:
        return
    for n in g.node:
        n.input[:] = [renames.get(i, i) for i in n.input]
        for a in n.attribute:
            for sub in ([a.g] if a.type == a.GRAPH else list(a.graphs) if a.type == a.GRAPHS else []):
                _rename_uses(sub, {k: v for k, v in renames.items() if k not in _defined(sub)})


def _defined(g) -> set:
    return {v.name for v in g.input} | {t.name for t in g.initializer} | {o for n in g.node for o in n.output}
