"""The exported-graph pattern pass and the rows pass on their own: which operators come out, on IR from the ONNX
frontend with its own rewriting off (graphs in tests/frontend/onnx_pattern_models.py)."""
import math

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from nimble.frontend import from_onnx  # noqa: E402
from nimble.passes.let_chain import LetChain  # noqa: E402
from nimble.passes.patterns import rewrite_patterns  # noqa: E402
from nimble.passes.rows import fold_rows  # noqa: E402
from tests.frontend import onnx_pattern_models as models  # noqa: E402


def ops(mod) -> list:
    chain = LetChain.of(mod["main"].body)
    return [v.op.name for _, v in chain.bindings if hasattr(v, "op") and hasattr(v.op, "name")]


def raw(model):
    return from_onnx(model, patterns=False)


@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize("gamma_first", [False, True])
def test_decomposed_layer_norm_becomes_layer_norm(opset, gamma_first):
    out = ops(rewrite_patterns(raw(models.layer_norm_model(opset=opset, gamma_first=gamma_first))))
    assert out == ["layer_norm"]


def test_layer_norm_keeps_its_epsilon():
    mod = rewrite_patterns(raw(models.layer_norm_model(eps=1e-5)))
    (_, call), = LetChain.of(mod["main"].body).bindings
    assert call.attrs["epsilon"] == pytest.approx(1e-5, rel=1e-6) and call.attrs["axis"] == -1


@pytest.mark.parametrize("variant", [{"axis": 1}, {"exponent": 3.0}])
def test_layer_norm_lookalikes_stay(variant):
    out = ops(rewrite_patterns(raw(models.layer_norm_model(**variant))))
    assert "layer_norm" not in out and "mean" in out


@pytest.mark.parametrize("half_first", [False, True])
def test_erf_gelu_becomes_gelu(half_first):
    assert ops(rewrite_patterns(raw(models.gelu_model(half_first=half_first)))) == ["gelu"]


@pytest.mark.parametrize("variant", [{"half": 0.6}, {"root": 1.5}])
def test_gelu_lookalikes_stay(variant):
    out = ops(rewrite_patterns(raw(models.gelu_model(**variant))))
    assert "gelu" not in out and "erf" in out


@pytest.mark.parametrize("scale_op", ["Div", "Mul"])
@pytest.mark.parametrize("mask", [True, False])
def test_attention_scores_become_batch_matmuls(scale_op, mask):
    out = ops(rewrite_patterns(raw(models.attention_model(scale_op=scale_op, mask=mask))))
    assert "matmul" not in out and out.count("batch_matmul") == 2 and "softmax" in out
    mod = rewrite_patterns(raw(models.attention_model(scale_op=scale_op, mask=mask)))
    chain = LetChain.of(mod["main"].body)
    mult = [v for _, v in chain.bindings if v.op.name == "multiply"]
    assert len(mult) == 1 and float(mult[0].args[1].value) == pytest.approx(1 / math.sqrt(8), rel=1e-6)


def test_matmul_with_a_constant_weight_folds_batch_dims_into_rows():
    mod = raw(models.dense_block_model())
    before = ops(mod)
    assert before.count("dense") == 2 and "reshape" in before
    after = fold_rows(mod)
    chain = LetChain.of(after["main"].body)
    row_wise = [var.type_annotation for var, v in chain.bindings if v.op.name in ("dense", "add", "gelu")]
    assert len(row_wise) == 6 and all(len(t.shape) == 2 for t in row_wise)  # all on (rows, features)
    assert ops(after).count("reshape") == 1 and ops(after).count("dyn.reshape") == 1  # into rows, back out


def test_paths_through_the_same_dynamic_reshape_meet_on_rows():
    after = fold_rows(raw(models.two_path_model()))
    chain = LetChain.of(after["main"].body)
    floats = [(v.op.name, var.type_annotation) for var, v in chain.bindings if var.type_annotation.dtype == "float32"]
    assert [name for name, _ in floats].count("dyn.reshape") == 1  # only the result goes back to (batch, seq, m)
    assert all(len(t.shape) == 2 for name, t in floats if name not in ("dyn.reshape",))


def test_attention_mask_may_come_first_in_the_add():
    out = ops(rewrite_patterns(raw(models.attention_model(mask_first=True))))
    assert "matmul" not in out and out.count("batch_matmul") == 2


def test_attention_with_a_dynamic_batch_stays():
    model = models.attention_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    assert "matmul" in ops(rewrite_patterns(raw(model)))


def _quantized_chain_model():
    """x (batch, seq, 16) -> two dynamically quantized projections (DynamicQuantizeLinear, MatMulInteger, Cast,
    Mul by the scales, Add a bias), as onnxruntime's quantize_dynamic writes each Linear."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, last = [], [], "x"
    for i, (k, m) in enumerate([(16, 24), (24, 8)]):
        inits += [numpy_helper.from_array(rng.integers(-128, 128, (k, m)).astype(np.int8), f"w{i}"),
                  numpy_helper.from_array(np.array(0.01, np.float32), f"ws{i}"),
                  numpy_helper.from_array(rng.standard_normal(m).astype(np.float32), f"b{i}")]
        nodes += [helper.make_node("DynamicQuantizeLinear", [last], [f"q{i}", f"s{i}", f"z{i}"]),
                  helper.make_node("MatMulInteger", [f"q{i}", f"w{i}", f"z{i}"], [f"acc{i}"]),
                  helper.make_node("Cast", [f"acc{i}"], [f"f{i}"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", [f"s{i}", f"ws{i}"], [f"scale{i}"]),
                  helper.make_node("Mul", [f"f{i}", f"scale{i}"], [f"y{i}"]),
                  helper.make_node("Add", [f"y{i}", f"b{i}"], [f"out{i}"])]
        last = f"out{i}"
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", 16])],
                              [helper.make_tensor_value_info(last, TensorProto.FLOAT, None)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_dynamic_quantization_stays_on_rows_and_matches_onnxruntime():
    """The per-tensor min / max and quantize_linear of the second projection's input run on its 2-D rows: one
    reshape into rows, one back out, none between the projections."""
    import nimble

    model = _quantized_chain_model()
    after = fold_rows(raw(model))
    chain = LetChain.of(after["main"].body)
    rank = {v.op.name: len(var.type_annotation.shape) for var, v in chain.bindings
            if hasattr(v, "op") and v.op.name in ("quantize_linear", "dense_integer", "max", "min") and
            var.type_annotation.shape}
    assert rank == {"quantize_linear": 2, "dense_integer": 2}, rank
    reduced = [v.args[0] for _, v in chain.bindings if hasattr(v, "op") and v.op.name in ("max", "min")]
    assert sum(len(chain.type_of(a).shape) == 2 for a in reduced) == 2  # the second projection's, on rows
    assert ops(after).count("dyn.reshape") + ops(after).count("reshape") == 2
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(model)))
    for shape in [(1, 5, 16), (3, 7, 16), (2, 1, 16)]:
        x = np.random.default_rng(shape[1]).standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(vm.run(x), sess.run(None, {"x": x})[0], rtol=1e-5, atol=1e-5)
