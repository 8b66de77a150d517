"""Exported LayerNorm, GELU, attention and N-D MatMul graphs compiled through the pattern and rows passes match
ONNX Runtime within 1e-4 at sequence lengths 1, 7, 33 and 128 (one compile per model), and come out as the
operators a model built in Python uses."""
import warnings

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


# ---- the same patterns as PyTorch exports them ------------------------------------------------------------------
torch = pytest.importorskip("torch")


def _export(module, example, path, opset, axes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), example, str(path), input_names=[f"in{i}" for i in range(len(example))],
                          output_names=["y"], dynamic_axes=axes, dynamo=False, opset_version=opset)
    return onnx.load(str(path))


class _Block(torch.nn.Module):
    """A BERT-style feed-forward block: dense, erf GELU, dense, residual, LayerNorm."""

    def __init__(self, h=32, m=64):
        super().__init__()
        self.up, self.down, self.norm = torch.nn.Linear(h, m), torch.nn.Linear(m, h), torch.nn.LayerNorm(h, eps=1e-12)

    def forward(self, x):
        return self.norm(x + self.down(torch.nn.functional.gelu(self.up(x))))


class _Attention(torch.nn.Module):
    def __init__(self, h=32, heads=4):
        super().__init__()
        self.qkv, self.heads = torch.nn.Linear(h, 3 * h), heads

    def forward(self, x, mask):
        b, s, h = x.shape
        q, k, v = (t.view(b, s, self.heads, h // self.heads).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        scores = q @ k.transpose(-1, -2) / (h // self.heads) ** 0.5 + mask
        return (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, h)


@pytest.mark.parametrize("opset", [13, 14, 17])
def test_torch_feed_forward_block_matches_onnxruntime(tmp_path, opset):
    torch.manual_seed(0)
    model = _export(_Block(), (torch.randn(1, 5, 32),), tmp_path / "block.onnx", opset,
                    {"in0": {1: "seq"}, "y": {1: "seq"}})
    mod = check_against_ort(model)
    assert {"layer_norm", "gelu", "dense"} <= ops(mod) and not {"mean", "erf", "sqrt"} & ops(mod)


def test_torch_attention_matches_onnxruntime(tmp_path):
    torch.manual_seed(0)
    model = _export(_Attention(), (torch.randn(1, 5, 32), torch.zeros(1, 1, 1, 5)), tmp_path / "attn.onnx", 14,
                    {"in0": {1: "seq"}, "in1": {3: "seq"}, "y": {1: "seq"}})
    renamed = {"in0": "x", "in1": "mask"}
    for info in model.graph.input:  # feeds() fills a float mask of 0 / -1e4 for an input named mask
        info.name = renamed[info.name]
    for node in model.graph.node:
        node.input[:] = [renamed.get(n, n) for n in node.input]
    mod = check_against_ort(model)
    assert "matmul" not in ops(mod) and "batch_matmul" in ops(mod)
