"""The patterns as PyTorch exports them (opsets 13, 14, 17): compiled through the pattern and rows passes, they match
ONNX Runtime within 1e-4 at sequence lengths 1, 7, 33 and 128 and come out as nimble's operators."""
import warnings

import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from tests.frontend.test_frontend_onnx_patterns import check_against_ort, ops  # noqa: E402


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
