"""The exported-graph pattern pass and the rows pass on their own: which operators come out, on IR from the ONNX
frontend with its own rewriting off (graphs in tests/frontend/onnx_pattern_models.py)."""
import math

import pytest

pytest.importorskip("onnx")

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
