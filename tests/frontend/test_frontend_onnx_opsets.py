"""Models older than opset 13 (7 and up, as ONNX Runtime reads): upgraded by onnx's version converter, then
converted; compared with ONNX Runtime on the original model."""
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402


def _run_both(model, *inputs):
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(model)))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), inputs)})
    got = vm.run(*inputs)
    got = list(got) if isinstance(got, (list, tuple)) else [got]
    return [np.asarray(g) for g in got], want


def _attr_form_model(opset: int):
    """Split / Squeeze / Unsqueeze / ReduceSum with their axes as attributes (inputs from opset 13 on)."""
    graph = helper.make_graph(
        [helper.make_node("Split", ["x"], ["a", "b"], axis=1, split=[2, 4]),
         helper.make_node("ReduceSum", ["b"], ["s"], axes=[1], keepdims=1),
         helper.make_node("Unsqueeze", ["s"], ["u"], axes=[0]),
         helper.make_node("Squeeze", ["u"], ["q"], axes=[0]),
         helper.make_node("Mul", ["a", "q"], ["y"])],
        "attrs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=6)


@pytest.mark.parametrize("opset", [9, 11])
def test_attribute_forms_of_old_opsets_match_onnxruntime(opset):
    x = np.random.default_rng(opset).standard_normal((3, 6)).astype(np.float32)
    (got,), (want,) = _run_both(_attr_form_model(opset), x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_opset_older_than_7_is_refused_naming_the_opset():
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 5)], ir_version=3)
    with pytest.raises(nimble.FormatError, match="opset 5 .*opset 7 and newer"):
        from_onnx(model)


def test_model_the_version_converter_cannot_upgrade_is_refused_with_its_reason():
    # opset 7's BatchNormalization with spatial=0 (per-element statistics) has no opset-9 form
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in
           (("x", [2, 3]), ("scale", [3]), ("b", [3]), ("mean", [3]), ("var", [3]))]
    graph = helper.make_graph([helper.make_node("BatchNormalization", [i.name for i in ins], ["y"], spatial=0)],
                              "g", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 7)], ir_version=3)
    with pytest.raises(nimble.FormatError, match="opset 7.*cannot upgrade.*spatial"):
        from_onnx(model)


torch = pytest.importorskip("torch")


class _TinyResNet(torch.nn.Module):
    """conv-bn-relu stem, max pool, one residual block, global average pool, flatten, linear."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
                                        torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2, 1))
        self.block = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                                         torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1))
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        x = torch.nn.functional.adaptive_avg_pool2d(x, 1)
        return torch.softmax(self.head(torch.flatten(x, 1)), dim=1)


@pytest.mark.parametrize("opset", [9, 11])
def test_cnn_exported_at_old_opset_with_dynamic_batch_matches_onnxruntime(tmp_path, opset):
    torch.manual_seed(opset)
    model = _TinyResNet().eval()
    for bn in (model.stem[1], model.block[1]):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 1.5)
    path = str(tmp_path / "cnn.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 3, 16, 16),), path, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False, opset_version=opset)
    loaded = onnx.load(path)
    assert loaded.opset_import[0].version == opset
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(loaded)))
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 16, 16)).astype(np.float32)
        got = vm.run(x)
        got = got[0] if isinstance(got, (list, tuple)) else got
        np.testing.assert_allclose(np.asarray(got), sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-5)
