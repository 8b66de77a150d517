"""The onnx package's light CNNs (opset 9, upgraded on import) with random weights, against ONNX Runtime: squeezenet
(fire modules: concat) and resnet50 (batch norm, residual adds). The others (shufflenet, inception_v1/v2,
densenet121, vgg19, alexnet, zfnet512: 20-50 s each to compile and run here, too long for the suite) are in
scripts/onnx_model_report.py --light."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402
from nimble.frontend.onnx_conformance import light_model  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("name", ["squeezenet", "resnet50"])
def test_light_cnn_with_random_weights_matches_onnxruntime(name):
    model = light_model(name, seed=1)
    if model is None:
        pytest.skip(f"light_{name}.onnx is not in this onnx wheel")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    want = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert float(np.std(want)) > 1e-3 * float(np.max(np.abs(want)))  # not a constant output
    got = np.asarray(nimble.VirtualMachine(nimble.compile(from_onnx(model))).run(x))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.max(np.abs(want))))
