"""transformers models (small configs, random weights) exported to ONNX with dynamic batch and sequence axes,
compiled once by nimble and compared with ONNX Runtime at several shapes."""
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402

SHAPES = [(1, 8), (1, 128), (4, 33)]


class _Wrapper(torch.nn.Module):
    def __init__(self, model, **options):
        super().__init__()
        self.model = model
        self.options = options

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=False, **self.options)


def _export(model, path, outputs, **options):
    ids = torch.randint(0, 100, (2, 8))
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Wrapper(model.eval(), **options), (ids, torch.ones_like(ids)), str(path),
                          input_names=["input_ids", "attention_mask"], output_names=outputs,
                          dynamic_axes=axes | {outputs[0]: {0: "batch", 1: "seq"}}, dynamo=False, opset_version=17)
    return str(path)


def _check(path, vm, shapes, outputs):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for batch, seq in shapes:
        ids = rng.integers(0, 100, (batch, seq)).astype(np.int64)
        mask = np.ones((batch, seq), np.int64)
        if batch > 1:
            mask[1, seq // 2:] = 0  # a padded sequence
        want = sess.run(None, {"input_ids": ids, "attention_mask": mask})
        got = vm.run(ids, mask)
        got = list(got) if isinstance(got, (list, tuple)) else [got]
        for name, g, w in zip(outputs, got, want):
            np.testing.assert_allclose(np.asarray(g), w, rtol=1e-4, atol=1e-4, err_msg=f"{name} at {batch}x{seq}")


@pytest.fixture(scope="module")
def bert_path(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=160)
    return _export(transformers.BertModel(config), tmp_path_factory.mktemp("bert") / "bert.onnx",
                   ["last_hidden_state", "pooler_output"])


@pytest.mark.slow
def test_bert_compiled_once_matches_onnxruntime_at_every_shape(bert_path):
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(bert_path)))
    _check(bert_path, vm, SHAPES, ["last_hidden_state", "pooler_output"])


@pytest.mark.slow
def test_gpt2_with_causal_mask_matches_onnxruntime(tmp_path):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=160,
                                     bos_token_id=0, eos_token_id=0)
    path = _export(transformers.GPT2Model(config), tmp_path / "gpt2.onnx", ["last_hidden_state"], use_cache=False)
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(path)))
    _check(path, vm, SHAPES, ["last_hidden_state"])


class _SmallCNN(torch.nn.Module):
    """A torchvision-style CNN: conv-bn-relu stem, max pool, a residual block, global average pool, linear."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
                                        torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2, 1))
        self.block = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                                         torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1, groups=2))
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        x = torch.nn.functional.adaptive_avg_pool2d(x, 1)
        return self.head(torch.flatten(x, 1))


def test_cnn_with_dynamic_batch_matches_onnxruntime(tmp_path):
    torch.manual_seed(0)
    model = _SmallCNN().eval()
    for bn in (model.stem[1], model.block[1]):  # non-trivial running statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 1.5)
    path = str(tmp_path / "cnn.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 3, 32, 32),), path, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False, opset_version=17)
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(path)))
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
        got = vm.run(x)
        got = got[0] if isinstance(got, (list, tuple)) else got
        np.testing.assert_allclose(np.asarray(got), sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-4)


def _gpt2_path(tmp_path, layers: int = 2):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=layers, n_head=4, n_positions=160,
                                     bos_token_id=0, eos_token_id=0)
    return _export(transformers.GPT2Model(config), tmp_path / "gpt2.onnx", ["last_hidden_state"], use_cache=False)


def _fused_form(vm, layers: int, host_shapes: int):
    """One batched attention kernel per layer, no 4-D matmul or softmax kernels left, and only the prologue's
    host shape callbacks (none per layer), at batch 3."""
    ids = np.ones((3, 7), np.int64)
    report = vm.profile(ids, np.ones_like(ids))
    calls = {name: k["calls"] for name, k in report.kernels.items()}
    assert sum(c for n, c in calls.items() if "attention" in n) == layers, calls
    assert not [n for n in calls if "matmul" in n or "softmax" in n], calls
    assert sum(c for n, c in calls.items() if n.startswith("op_shape")) <= host_shapes, calls


FUSED_SHAPES = [(1, 1), (1, 7), (1, 128), (3, 1), (3, 7), (3, 128)]


@pytest.mark.slow
def test_bert_attention_is_one_batched_kernel_per_layer_and_matches_onnxruntime(bert_path):
    """Batch 3 pads its second sequence (at seq 1: every key of it masked, which ORT's NaN guard makes 0)."""
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(bert_path)))
    _fused_form(vm, layers=2, host_shapes=3)
    _check(bert_path, vm, FUSED_SHAPES, ["last_hidden_state", "pooler_output"])


@pytest.mark.slow
def test_gpt2_attention_is_one_batched_kernel_per_layer_and_matches_onnxruntime(tmp_path):
    path = _gpt2_path(tmp_path)
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(path)))
    _fused_form(vm, layers=2, host_shapes=1)
    _check(path, vm, FUSED_SHAPES, ["last_hidden_state"])
