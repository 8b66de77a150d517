"""transformers encoders beyond BERT (small configs, random weights), exported to ONNX with dynamic axes, compiled
once and compared with ONNX Runtime: T5's encoder (relative position bias, a (?, ...) mask whose ? is 1 at run
time beside 4 heads: a symbolic 1 that must broadcast) and Whisper's (conv front end over mel frames)."""
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402


def _export(module, args, path, names, axes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, str(path), input_names=names, output_names=["out"],
                          dynamic_axes=axes, dynamo=False, opset_version=17)
    return str(path), ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


class _T5Encoder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0]


@pytest.mark.slow
def test_t5_encoder_matches_onnxruntime_at_every_batch_and_length(tmp_path):
    torch.manual_seed(0)
    config = transformers.T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    ids = torch.randint(0, 100, (2, 8))
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "out": {0: "batch", 1: "seq"}}
    path, sess = _export(_T5Encoder(transformers.T5EncoderModel(config)), (ids, torch.ones_like(ids)),
                         tmp_path / "t5.onnx", ["input_ids", "attention_mask"], axes)
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(path)))
    rng = np.random.default_rng(0)
    for batch, seq in [(1, 8), (3, 17), (1, 1), (2, 64)]:
        ids = rng.integers(0, 100, (batch, seq)).astype(np.int64)
        mask = np.ones((batch, seq), np.int64)
        if batch > 1:
            mask[-1, seq // 2:] = 0  # a padded sequence
        want = sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        np.testing.assert_allclose(np.asarray(vm.run(ids, mask)), want, rtol=1e-4, atol=1e-4,
                                   err_msg=f"T5 encoder at {batch}x{seq}")


class _WhisperEncoder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, features):
        return self.model(input_features=features, return_dict=False)[0]


@pytest.mark.slow
def test_whisper_encoder_matches_onnxruntime_with_a_dynamic_batch(tmp_path):
    torch.manual_seed(0)
    config = transformers.WhisperConfig(vocab_size=100, d_model=32, encoder_layers=2, encoder_attention_heads=4,
                                        decoder_layers=1, decoder_attention_heads=4, encoder_ffn_dim=64,
                                        decoder_ffn_dim=64, num_mel_bins=16, max_source_positions=64,
                                        pad_token_id=0, bos_token_id=0, eos_token_id=0, decoder_start_token_id=0)
    encoder = transformers.WhisperModel(config).get_encoder()
    path, sess = _export(_WhisperEncoder(encoder), (torch.randn(2, 16, 128),), tmp_path / "whisper.onnx",
                         ["features"], {"features": {0: "batch"}, "out": {0: "batch"}})
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(path)))
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 16, 128)).astype(np.float32)
        want = sess.run(None, {"features": x})[0]
        np.testing.assert_allclose(np.asarray(vm.run(x)), want, rtol=1e-4, atol=1e-4, err_msg=f"batch {batch}")


@pytest.mark.slow
def test_a_float16_bert_from_onnxruntimes_converter_matches_onnxruntime(tmp_path):
    """BERT converted to float16 end to end (weights, inputs, outputs) by ONNX Runtime's float16 converter: nimble
    agrees with ORT on the float16 file, and both stay near the float32 model."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=80)
    ids = torch.randint(0, 100, (2, 8))
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "out": {0: "batch", 1: "seq"}}
    path, fp32 = _export(_T5Encoder(transformers.BertModel(config)), (ids, torch.ones_like(ids)), tmp_path / "b.onnx",
                         ["input_ids", "attention_mask"], axes)
    half_path = str(tmp_path / "b16.onnx")
    onnx.save(convert_float_to_float16(onnx.load(path), keep_io_types=False), half_path)
    fp16 = ort.InferenceSession(half_path, providers=["CPUExecutionProvider"])
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(half_path)))
    rng = np.random.default_rng(1)
    for batch, seq in [(1, 8), (3, 17), (2, 33)]:
        feed = {"input_ids": rng.integers(0, 100, (batch, seq)).astype(np.int64),
                "attention_mask": np.ones((batch, seq), np.int64)}
        feed["attention_mask"][-1, seq // 2:] = 0
        got = np.asarray(vm.run(feed["input_ids"], feed["attention_mask"]))
        want = fp16.run(None, feed)[0]
        assert got.dtype == np.float16 and got.shape == want.shape
        np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), atol=2e-2, rtol=2e-2)
        np.testing.assert_allclose(got.astype(np.float32), fp32.run(None, feed)[0], atol=3e-2, rtol=3e-2)
