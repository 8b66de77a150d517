"""Real models through the ONNX frontend: each exported (small configs, random weights; nothing downloaded) with
dynamic axes, compiled once by nimble, and compared with ONNX Runtime at several shapes.

    python scripts/onnx_model_report.py   # CNN (opset 9, 13; int8), BERT, DistilBERT, GPT-2, ViT, T5 and Whisper encoders, BERT int8
    python scripts/onnx_model_report.py --light squeezenet   # also the onnx package's light CNNs (opset 9, 224x224)

Columns: model, the dims left dynamic, the shapes run, max abs error vs ORT over them (relative to the largest
output when that is above 1), and median ms per run of nimble and ORT at one thread (NIMBLE_NUM_THREADS=1,
ORT intra_op_num_threads=1) at the last shape.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings

os.environ.setdefault("NIMBLE_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

LIGHT = ("squeezenet", "resnet50", "shufflenet", "densenet121", "inception_v2", "vgg19", "bvlc_alexnet",
         "inception_v1", "zfnet512")


def _median_ms(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def _torch_export(module, args, path, names, axes, opset):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, path, input_names=names[0], output_names=names[1],
                          dynamic_axes=axes, dynamo=False, opset_version=opset)
    return path


class _TokensOnly:
    """A transformers model called with input_ids / attention_mask, returning the first output only."""

    def __new__(cls, model, **options):
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask):
                return self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=False,
                                  **options)[0]

        return Wrapper()


def _token_feeds():
    """feeds(batch, seq): token ids and an attention mask whose last sequence is half padding (when batch > 1)."""
    import numpy as np

    rng = np.random.default_rng(0)

    def feeds(batch, seq):
        mask = np.ones((batch, seq), np.int64)
        mask[-1, seq // 2:] = 0 if batch > 1 else 1
        return [rng.integers(0, 100, (batch, seq)).astype(np.int64), mask]

    return feeds


def text_models(tmp):
    import torch
    import transformers

    torch.manual_seed(0)
    small = {"vocab_size": 100, "max_position_embeddings": 160}
    configs = {
        "BERT": transformers.BertModel(transformers.BertConfig(hidden_size=32, num_hidden_layers=2,
                                                               num_attention_heads=4, intermediate_size=64, **small)),
        "DistilBERT": transformers.DistilBertModel(transformers.DistilBertConfig(dim=32, n_layers=2, n_heads=4,
                                                                                 hidden_dim=64, **small)),
        "GPT-2": transformers.GPT2Model(transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4,
                                                                n_positions=160, bos_token_id=0,
                                                                eos_token_id=0)),
    }
    ids = torch.randint(0, 100, (2, 8))
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "out": {0: "batch", 1: "seq"}}
    for name, model in configs.items():
        options = {"use_cache": False} if name == "GPT-2" else {}
        path = _torch_export(_TokensOnly(model, **options), (ids, torch.ones_like(ids)), f"{tmp}/{name}.onnx",
                             (["input_ids", "attention_mask"], ["out"]), axes, 17)

        yield name, path, "batch, seq", [(1, 8), (4, 33), (1, 128)], _token_feeds()


def encoder_models(tmp):
    """T5's encoder (tokens), Whisper's encoder (mel frames), and BERT quantized to int8 by ONNX Runtime's
    ``quantize_dynamic`` and converted to float16 by ONNX Runtime's float16 converter (float16 weights, inputs and
    outputs; ``onnxruntime.transformers.float16``, the same code as onnxconverter-common's)."""
    import numpy as np
    import torch
    import transformers

    torch.manual_seed(0)
    t5 = transformers.T5EncoderModel(transformers.T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                                           num_heads=4))
    ids = torch.randint(0, 100, (2, 8))
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "out": {0: "batch", 1: "seq"}}
    path = _torch_export(_TokensOnly(t5), (ids, torch.ones_like(ids)), f"{tmp}/t5.onnx",
                         (["input_ids", "attention_mask"], ["out"]), axes, 17)
    rng = np.random.default_rng(0)
    tokens = _token_feeds()
    yield "T5 encoder", path, "batch, seq", [(1, 8), (4, 33), (1, 128)], tokens

    whisper = transformers.WhisperModel(transformers.WhisperConfig(
        vocab_size=100, d_model=32, encoder_layers=2, encoder_attention_heads=4, decoder_layers=1,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=16, max_source_positions=64,
        pad_token_id=0, bos_token_id=0, eos_token_id=0, decoder_start_token_id=0)).get_encoder()

    class Whisper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = whisper

        def forward(self, features):
            return self.encoder(input_features=features, return_dict=False)[0]

    path = _torch_export(Whisper(), (torch.randn(2, 16, 128),), f"{tmp}/whisper.onnx", (["features"], ["out"]),
                         {"features": {0: "batch"}, "out": {0: "batch"}}, 17)
    yield ("Whisper encoder", path, "batch", [(1, 0), (3, 0)],
           lambda batch, _, rng=rng: [rng.standard_normal((batch, 16, 128)).astype(np.float32)])

    bert = transformers.BertModel(transformers.BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2,
                                                          num_attention_heads=4, intermediate_size=128,
                                                          max_position_embeddings=160))
    path = _torch_export(_TokensOnly(bert), (ids, torch.ones_like(ids)), f"{tmp}/bert64.onnx",
                         (["input_ids", "attention_mask"], ["out"]), axes, 17)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(path, f"{tmp}/bert_int8.onnx", weight_type=QuantType.QInt8)
    yield "BERT int8 (quantize_dynamic)", f"{tmp}/bert_int8.onnx", "batch, seq", [(1, 8), (4, 33), (1, 128)], tokens

    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    half = convert_float_to_float16(onnx.load(path), keep_io_types=False)
    onnx.save(half, f"{tmp}/bert_fp16.onnx")
    yield "BERT float16 (ORT's float16 converter)", f"{tmp}/bert_fp16.onnx", "batch, seq", [(1, 8), (4, 33), (1, 128)], tokens


def image_models(tmp):
    import numpy as np
    import torch
    import transformers

    torch.manual_seed(0)

    class TinyResNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False),
                                            torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2, 1))
            self.block = torch.nn.Sequential(torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.BatchNorm2d(16),
                                             torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 3, padding=1))
            self.head = torch.nn.Linear(16, 10)

        def forward(self, x):
            x = self.stem(x)
            x = torch.relu(x + self.block(x))
            return self.head(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))

    rng = np.random.default_rng(1)

    def images(batch, size):
        return [rng.standard_normal((batch, 3, size, size)).astype(np.float32)]

    for opset in (9, 13):
        path = _torch_export(TinyResNet(), (torch.randn(2, 3, 32, 32),), f"{tmp}/cnn{opset}.onnx", (["x"], ["y"]),
                             {"x": {0: "batch"}, "y": {0: "batch"}}, opset)
        yield f"ResNet-like CNN (opset {opset})", path, "batch", [(1, 32), (4, 32)], images
    yield from _int8_cnn(tmp, images)
    vit = transformers.ViTModel(transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32,
                                                       num_hidden_layers=2, num_attention_heads=4,
                                                       intermediate_size=64), add_pooling_layer=False)

    class ViT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vit = vit

        def forward(self, x):
            return self.vit(pixel_values=x, return_dict=False)[0]

    path = _torch_export(ViT(), (torch.randn(2, 3, 32, 32),), f"{tmp}/vit.onnx", (["x"], ["y"]),
                         {"x": {0: "batch"}, "y": {0: "batch"}}, 17)
    yield "ViT", path, "batch", [(1, 32), (4, 32)], images


def _int8_cnn(tmp, images):
    """A ResNet-18-like stem and three basic blocks (64 and 128 channels) at 224 x 224, quantized by ONNX Runtime's
    ``quantize_dynamic`` (ConvInteger and MatMulInteger with DynamicQuantizeLinear), dynamic batch and size."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class Block(torch.nn.Module):
        def __init__(self, c):
            super().__init__()
            self.c1, self.c2 = torch.nn.Conv2d(c, c, 3, padding=1), torch.nn.Conv2d(c, c, 3, padding=1)

        def forward(self, x):
            return torch.relu(x + self.c2(torch.relu(self.c1(x))))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 7, stride=2, padding=3), torch.nn.ReLU(),
                                            torch.nn.MaxPool2d(3, 2, 1))
            self.b1, self.b2 = Block(64), Block(64)
            self.down, self.b3 = torch.nn.Conv2d(64, 128, 3, stride=2, padding=1), Block(128)
            self.head = torch.nn.Linear(128, 10)

        def forward(self, x):
            x = self.b3(torch.relu(self.down(self.b2(self.b1(self.stem(x))))))
            return self.head(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))

    torch.manual_seed(0)
    fp32 = _torch_export(Net().eval(), (torch.randn(1, 3, 224, 224),), f"{tmp}/resnet_like.onnx", (["x"], ["y"]),
                         {"x": {0: "batch", 2: "h", 3: "w"}, "y": {0: "batch"}}, 13)
    quantize_dynamic(fp32, f"{tmp}/resnet_like_int8.onnx", weight_type=QuantType.QInt8)
    yield ("ResNet-like CNN int8 (quantize_dynamic)", f"{tmp}/resnet_like_int8.onnx", "batch, h, w",
           [(2, 96), (1, 224)], images)


def light_models(tmp, names):
    """The onnx package's light CNNs with random weights and the final softmax dropped
    (``onnx_conformance.light_model``: their own weights are constant fills, every output 0.001)."""
    import numpy as np
    import onnx

    from nimble.frontend.onnx_conformance import light_model

    for name in names:
        model = light_model(name)
        if model is None:
            print(f"{name}: not in this onnx wheel", file=sys.stderr)
            continue
        path = os.path.join(tmp, f"light_{name}.onnx")
        onnx.save(model, path)
        rng = np.random.default_rng(2)
        yield (f"{name} (onnx light, opset 9)", path, "-", [(1, 224)],
               lambda batch, size, rng=rng: [rng.standard_normal((batch, 3, size, size)).astype(np.float32)])


def measure(name, path, dynamic, shapes, feeds, repeat):
    import numpy as np
    import onnxruntime as ort

    import nimble
    from nimble.frontend import from_onnx

    t0 = time.perf_counter()
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(path)))
    compile_s = time.perf_counter() - t0
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    err = 0.0
    for shape in shapes:
        inputs = feeds(*shape)
        want = sess.run(None, dict(zip(names, inputs)))[0]
        got = vm.run(*inputs)
        got = np.asarray(got[0] if isinstance(got, (list, tuple)) else got)
        if got.shape != want.shape:
            raise AssertionError(f"{name}: shape {got.shape} != ORT's {want.shape} at {shape}")
        err = max(err, float(np.max(np.abs(got.astype(np.float64) - want)) / max(1.0, float(np.max(np.abs(want))))))
    nimble_ms = _median_ms(lambda: vm.run(*inputs), repeat)
    ort_ms = _median_ms(lambda: sess.run(None, dict(zip(names, inputs))), repeat)
    return err, nimble_ms, ort_ms, compile_s


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--light", nargs="*", default=[], choices=LIGHT, help="onnx light CNNs to add")
    parser.add_argument("--only", default="", help="only models whose name contains this")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per model")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    logging.getLogger("nimble").setLevel(logging.ERROR)
    print(f"{'model':<32} {'dynamic dims':<12} {'shapes run':<24} {'max err':>9} {'nimble ms':>10} {'ORT ms':>8} "
          f"{'ratio':>6} {'compile s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, path, dynamic, shapes, feeds in [*image_models(tmp), *text_models(tmp), *encoder_models(tmp),
                                                     *light_models(tmp, args.light)]:
            if args.only not in name:
                continue
            try:
                err, ms, ort_ms, compile_s = measure(name, path, dynamic, shapes, feeds, args.repeat)
            except Exception as e:  # noqa: BLE001 - a failing model is a row of the table
                print(f"{name:<32} FAILED: {type(e).__name__}: {str(e).splitlines()[0][:160]}", flush=True)
                continue
            shown = " ".join("x".join(map(str, s)) for s in shapes)
            print(f"{name:<32} {dynamic:<12} {shown:<24} {err:>9.2e} {ms:>10.3f} {ort_ms:>8.3f} {ms / ort_ms:>6.2f} "
                  f"{compile_s:>9.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
