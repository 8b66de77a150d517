"""Exported LayerNorm, GELU, attention and N-D MatMul graphs compiled through the pattern and rows passes match
ONNX Runtime within 1e-4 at sequence lengths 1, 7, 33 and 128 (one compile per model), and come out as the
operators a model built in Python uses."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402
from nimble.passes.let_chain import LetChain  # noqa: E402
from tests.frontend import onnx_pattern_models as models  # noqa: E402

SEQS = (1, 7, 33, 128)


def ops(mod) -> set:
    return {v.op.name for _, v in LetChain.of(mod["main"].body).bindings if hasattr(getattr(v, "op", None), "name")}


def feeds(model, seq: int, batch: int = 1) -> dict:
    rng = np.random.default_rng(seq)
    out = {}
    for info in model.graph.input:
        dims = [d.dim_value if d.HasField("dim_value") else seq if d.dim_param == "seq" else batch
                for d in info.type.tensor_type.shape.dim]
        out[info.name] = rng.standard_normal(dims).astype(np.float32)
    if "mask" in out:
        out["mask"] = np.where(out["mask"] > 1.0, np.float32(-1e4), np.float32(0.0))
    return out


def check_against_ort(model, seqs=SEQS, batch: int = 1):
    mod = from_onnx(model)
    vm = nimble.VirtualMachine(nimble.compile(mod))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for seq in seqs:
        inputs = feeds(model, seq, batch)
        want = sess.run(None, inputs)[0]
        got = np.asarray(vm.run(*[inputs[i.name] for i in model.graph.input]))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=f"seq {seq}")
    return mod


@pytest.mark.parametrize("opset", [13, 17])
def test_decomposed_layer_norm_matches_onnxruntime(opset):
    mod = check_against_ort(models.layer_norm_model(opset=opset))
    assert ops(mod) == {"layer_norm"}


def test_erf_gelu_matches_onnxruntime():
    mod = check_against_ort(models.gelu_model())
    assert ops(mod) == {"gelu"}


@pytest.mark.parametrize("mask", [True, False])
def test_attention_scores_match_onnxruntime(mask):
    mod = check_against_ort(models.attention_model(mask=mask))
    assert "matmul" not in ops(mod) and {"batch_matmul", "softmax"} <= ops(mod)


def test_nd_matmul_block_matches_onnxruntime_with_a_dynamic_batch():
    mod = check_against_ort(models.dense_block_model(), seqs=(1, 7, 33), batch=3)
    assert "dense" in ops(mod)


def test_two_paths_on_rows_match_onnxruntime_with_a_dynamic_batch():
    check_against_ort(models.two_path_model(), seqs=(1, 7), batch=2)
