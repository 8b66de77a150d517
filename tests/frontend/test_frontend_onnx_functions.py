"""ONNX operators converted through their schema's function body (nimble.frontend.onnx_functions): fixed and
context-dependent bodies, attribute references and defaults, optional inputs and outputs left empty, symbolic dims;
compared with ONNX Runtime at several shapes of one compiled model."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402
from nimble.frontend.onnx import supported_ops  # noqa: E402
from nimble.frontend.onnx_functions import FUNCTION_OPS, expanded_nodes, function_body, has_function  # noqa: E402
from nimble.frontend.onnx_graph import CONVERTERS, UnsupportedOperatorError  # noqa: E402
from nimble.ir.printer import print_module  # noqa: E402

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, opset):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*o) for o in outputs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _check(model, feeds_list, rtol=1e-5, atol=1e-5):
    """One nimble compile, run on each feed dict, compared with ONNX Runtime."""
    mod = from_onnx(model)
    params = [p.name for p in mod["main"].params]
    vm = nimble.VirtualMachine(nimble.compile(mod))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for feeds in feeds_list:
        want = sess.run(None, feeds)
        got = vm.run(*[feeds[name] for name in params])
        got = list(got) if isinstance(got, (list, tuple)) else [got]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert np.asarray(g).shape == w.shape
            np.testing.assert_allclose(np.asarray(g), w, rtol=rtol, atol=atol)


def test_swish_binds_its_alpha_reference_and_its_default():
    nodes = [helper.make_node("Swish", ["x"], ["a"], alpha=0.7), helper.make_node("Swish", ["a"], ["y"])]
    model = _model(nodes, [("x", F, ["n", 3])], [("y", F, ["n", 3])], 24)
    _check(model, [{"x": _x(n, 3, seed=n)} for n in (1, 7, 0)])


def test_context_dependent_rms_normalization_over_symbolic_dims():
    node = helper.make_node("RMSNormalization", ["x", "s"], ["y"], axis=-1, epsilon=1e-3)
    model = _model([node], [("x", F, ["b", "n", 8]), ("s", F, [8])], [("y", F, ["b", "n", 8])], 23)
    _check(model, [{"x": _x(b, n, 8, seed=n), "s": _x(8, seed=1)} for b, n in ((1, 1), (2, 5), (3, 13))])


def test_causal_attention_with_dynamic_sequence_lengths():
    node = helper.make_node("Attention", ["q", "k", "v"], ["y"], is_causal=1)
    model = _model([node], [("q", F, ["b", 2, "s", 4]), ("k", F, ["b", 2, "t", 4]), ("v", F, ["b", 2, "t", 4])],
                   [("y", F, ["b", 2, "s", 4])], 23)
    _check(model, [{"q": _x(b, 2, s, 4, seed=s), "k": _x(b, 2, t, 4, seed=t + 1), "v": _x(b, 2, t, 4, seed=t + 2)}
                   for b, s, t in ((1, 1, 1), (2, 3, 5), (1, 7, 7))])


def test_attention_with_an_empty_optional_mask_and_past_key_value_outputs():
    node = helper.make_node("Attention", ["q", "k", "v", "", "pk", "pv"], ["y", "present_k", "present_v"])
    inputs = [("q", F, [1, 2, "s", 4]), ("k", F, [1, 2, "s", 4]), ("v", F, [1, 2, "s", 4]),
              ("pk", F, [1, 2, "p", 4]), ("pv", F, [1, 2, "p", 4])]
    outputs = [("y", F, [1, 2, "s", 4]), ("present_k", F, None), ("present_v", F, None)]
    model = _model([node], inputs, outputs, 23)
    _check(model, [{"q": _x(1, 2, s, 4, seed=s), "k": _x(1, 2, s, 4, seed=s + 1), "v": _x(1, 2, s, 4, seed=s + 2),
                    "pk": _x(1, 2, p, 4, seed=p + 3), "pv": _x(1, 2, p, 4, seed=p + 4)}
                   for s, p in ((1, 3), (5, 2))])


def test_rotary_embedding_over_symbolic_batch_and_sequence():
    node = helper.make_node("RotaryEmbedding", ["x", "cos", "sin"], ["y"])
    model = _model([node], [("x", F, ["b", 2, "s", 8]), ("cos", F, ["b", "s", 4]), ("sin", F, ["b", "s", 4])],
                   [("y", F, ["b", 2, "s", 8])], 23)
    _check(model, [{"x": _x(b, 2, s, 8, seed=s), "cos": _x(b, s, 4, seed=s + 1), "sin": _x(b, s, 4, seed=s + 2)}
                   for b, s in ((1, 1), (2, 6))])


def test_an_explicit_converter_wins_over_the_function_body():
    assert has_function("Gelu", 20) and "Gelu" in CONVERTERS
    model = _model([helper.make_node("Gelu", ["x"], ["y"])], [("x", F, ["n"])], [("y", F, ["n"])], 20)
    text = print_module(from_onnx(model, patterns=False))
    assert "gelu(" in text and "erf(" not in text


def test_body_intermediates_are_renamed_apart_and_empty_outputs_stay_empty():
    from nimble.frontend.onnx_values import Value
    from nimble.ir.expr import Var
    from nimble.ir.types import TensorType

    node = helper.make_node("Attention", ["q", "k", "v"], ["y", "", ""], name="att")
    t = TensorType((1, 2, 3, 4), "float32")
    body = function_body(node, 23, [Value(Var(name, t), t) for name in "qkv"])
    first, second = expanded_nodes(node, body, 23), expanded_nodes(node, body, 23)
    made = [o for n in first for o in n.output if o]
    assert "y" in made and len(made) == len(set(made))
    assert not set(made) - {"y"} & {o for n in second for o in n.output}
    assert {i for n in first for i in n.input if i} & {"q", "k", "v"} == {"q", "k", "v"}


def test_an_op_with_neither_converter_nor_function_names_the_op():
    model = _model([helper.make_node("Det", ["x"], ["y"])], [("x", F, [3, 3])], [("y", F, [])], 22)
    with pytest.raises(UnsupportedOperatorError, match="Det"):
        from_onnx(model)


def test_a_body_with_an_unsupported_op_names_both():
    node = helper.make_node("Bernoulli", ["x"], ["y"])
    model = _model([node], [("x", F, [4])], [("y", F, [4])], 22)
    with pytest.raises(UnsupportedOperatorError, match=r"Bernoulli \(via its function body\).*RandomUniformLike"):
        from_onnx(model)


def test_claimed_function_ops_have_no_converter_and_a_function():
    assert set(FUNCTION_OPS) <= set(supported_ops())
    assert not set(FUNCTION_OPS) & set(CONVERTERS)
    assert all(has_function(op, 28) for op in FUNCTION_OPS)


def test_float16_attention_runs_its_body_in_float32():
    """Its inputs cast up, its output cast back: within rounding of ORT's float32 result (a float16 body rounds at
    each step and strays by ulps)."""
    def model(elem):
        node = helper.make_node("Attention", ["q", "k", "v"], ["y"], is_causal=1)
        return _model([node], [(n, elem, [1, 2, "s", 8]) for n in "qkv"], [("y", elem, [1, 2, "s", 8])], 23)

    mod = from_onnx(model(TensorProto.FLOAT16))
    assert "float32" in print_module(mod)
    vm = nimble.VirtualMachine(nimble.compile(mod))
    sess = ort.InferenceSession(model(F).SerializeToString(), providers=["CPUExecutionProvider"])
    for s in (1, 5, 16):
        feeds = {n: _x(1, 2, s, 8, seed=s + k).astype(np.float16) for k, n in enumerate("qkv")}
        got = vm.run(*[feeds[p.name] for p in mod["main"].params])
        want = sess.run(None, {n: a.astype(np.float32) for n, a in feeds.items()})[0].astype(np.float16)
        assert got.dtype == np.float16
        np.testing.assert_array_max_ulp(got, want, maxulp=1)
