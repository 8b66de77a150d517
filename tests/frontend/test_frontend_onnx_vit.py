"""A vision transformer (transformers' ViT, tiny config, random weights) exported with a dynamic batch: patch
embedding by a strided Conv, class token Concat / Expand, attention; compared with ONNX Runtime."""
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402


class _ViT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        config = transformers.ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=32)
        self.vit = transformers.ViTModel(config, add_pooling_layer=False)

    def forward(self, x):
        return self.vit(pixel_values=x, return_dict=False)[0]


@pytest.mark.slow
def test_vit_with_dynamic_batch_matches_onnxruntime(tmp_path):
    torch.manual_seed(0)
    path = str(tmp_path / "vit.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_ViT().eval(), (torch.randn(2, 3, 16, 16),), path, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False, opset_version=17)
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(path)))
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 16, 16)).astype(np.float32)
        got = vm.run(x)
        got = np.asarray(got[0] if isinstance(got, (list, tuple)) else got)
        np.testing.assert_allclose(got, sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-4)
