"""float16 models (storage float16, compute float32, rounded on store): torch exports converted with
onnxruntime's float16 helper (`onnxruntime.transformers.float16.convert_float_to_float16`, the same code as
onnxconverter-common's, float16 inputs and outputs) run with dynamic dims and match ONNX Runtime within float16
tolerance."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
float16_helper = pytest.importorskip("onnxruntime.transformers.float16")

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402


class _Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l1, self.ln, self.l2 = torch.nn.Linear(16, 32), torch.nn.LayerNorm(32), torch.nn.Linear(32, 8)

    def forward(self, x):
        return torch.softmax(self.l2(torch.nn.functional.gelu(self.ln(self.l1(x)))), -1)


def _cnn():
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2, 1),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))


def _float16_model(module, example, dynamic_axes, path):
    torch.manual_seed(0)
    module = module.eval()
    with torch.no_grad():  # random BatchNorm statistics, so the folded scale is not 1
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    torch.onnx.export(module, (example,), path, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes=dynamic_axes, opset_version=17)
    model = float16_helper.convert_float_to_float16(onnx.load(path), keep_io_types=False)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(model)))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return vm, sess


def _check(vm, sess, shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float16)
    got, want = np.asarray(vm.run(x)), sess.run(None, {"x": x})[0]
    assert got.dtype == np.float16 and got.shape == want.shape
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=4e-3, atol=2e-3)


def test_float16_mlp_with_layer_norm_gelu_softmax_matches_onnxruntime(tmp_path):
    torch.manual_seed(0)
    vm, sess = _float16_model(_Mlp(), torch.randn(3, 16), {"x": {0: "n"}, "y": {0: "n"}}, str(tmp_path / "mlp.onnx"))
    for seed, n in enumerate((0, 1, 5, 13)):
        _check(vm, sess, (n, 16), seed)


def test_float16_cnn_with_dynamic_batch_and_image_size_matches_onnxruntime(tmp_path):
    torch.manual_seed(0)
    vm, sess = _float16_model(_cnn(), torch.randn(1, 3, 9, 9), {"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n"}},
                              str(tmp_path / "cnn.onnx"))
    for seed, shape in enumerate(((1, 3, 9, 9), (2, 3, 7, 13), (0, 3, 5, 5), (3, 3, 1, 1))):
        _check(vm, sess, shape, seed)
