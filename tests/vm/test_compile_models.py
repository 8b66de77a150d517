"""LSTM, Tree-LSTM and BERT compiled for the VM match the reference interpreter."""
import functools
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nimble
from nimble import ir
from nimble.models import bert, lstm, tree_lstm


def flat(v):
    if isinstance(v, (tuple, list)):
        return [y for x in v for y in flat(x)]
    if hasattr(v, "fields"):
        return [y for x in v.fields for y in flat(x)]
    return [np.asarray(v)]


def assert_matches(out, ref, tol=1e-4):
    a, b = flat(out), flat(ref)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol)


@pytest.fixture(scope="module")
def lstm_case():
    cfg = lstm.LSTMConfig()
    mod = lstm.build_module(lstm.random_weights(cfg, 0), cfg)
    return mod, nimble.VirtualMachine(nimble.compile(mod))


def test_lstm_matches_the_interpreter_on_20_lengths(lstm_case):
    mod, vm = lstm_case
    rng = np.random.default_rng(1)
    for n in [1, 2] + list(rng.integers(3, 40, size=18)):
        ins = lstm.to_inputs(rng.standard_normal((int(n), 300)).astype("float32"))
        assert_matches(vm.run(*ins), ir.evaluate(mod, *ins))


def test_tree_lstm_matches_the_interpreter_on_20_trees():
    cfg = tree_lstm.TreeLSTMConfig()
    mod = tree_lstm.build_module(tree_lstm.random_weights(cfg, 0), cfg)
    vm = nimble.VirtualMachine(nimble.compile(mod))
    rng = np.random.default_rng(2)
    for leaves in [1, 2] + list(rng.integers(3, 30, size=18)):
        ins = tree_lstm.to_inputs(tree_lstm.random_tree(rng, int(leaves), cfg.input_size), cfg)
        assert_matches(vm.run(*ins), ir.evaluate(mod, *ins))


def test_bert_matches_the_interpreter_on_20_lengths():
    cfg = bert.BertConfig(num_layers=2, hidden_size=64, num_heads=4, intermediate_size=128)
    mod = bert.build_module(bert.random_weights(cfg, 0), cfg)
    vm = nimble.VirtualMachine(nimble.compile(mod))
    rng = np.random.default_rng(3)
    for n in [1, 2] + list(rng.integers(3, 70, size=18)):
        x = rng.standard_normal((int(n), 64)).astype("float32")
        assert_matches(vm.run(x), ir.evaluate(mod, x))


def test_shared_kernels_across_layers():
    cfg = bert.BertConfig(num_layers=4, hidden_size=64, num_heads=4, intermediate_size=128)
    exe = nimble.compile(bert.build_module(bert.random_weights(cfg, 0), cfg))
    kernels = [p for p in exe.packed if not p.name.startswith(("shape_expr", "op_shape"))]
    assert len(kernels) <= 20  # one layer's worth, not four


SAVE_AND_RUN = textwrap.dedent("""
    import json, sys, numpy as np, nimble
    from nimble.codegen import jit
    exe = nimble.Executable.load(sys.argv[1])
    x = np.load(sys.argv[2])
    out = nimble.VirtualMachine(exe).run(x)
    np.save(sys.argv[3], np.asarray(out[0]))
    print(json.dumps(jit.stats))
""")


def test_save_load_in_a_fresh_process_without_llvm(tmp_path, lstm_case):
    mod, vm = lstm_case
    path = tmp_path / "lstm.nimble"
    vm.exe.save(path) if hasattr(vm, "exe") else nimble.compile(mod).save(path)
    x = np.random.default_rng(4).standard_normal((7, 300)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, NIMBLE_CACHE_DIR=str(tmp_path / "empty-cache"))
    out = subprocess.run([sys.executable, "-c", SAVE_AND_RUN, str(path), str(tmp_path / "x.npy"),
                          str(tmp_path / "out.npy")], env=env, capture_output=True, text=True, check=True)
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert stats["llvm_compiles"] == 0
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), flat(vm.run(x))[0], rtol=1e-6)


def test_bad_inputs_to_run(lstm_case):
    mod, vm = lstm_case
    with pytest.raises(nimble.TypeError):
        vm.run(np.zeros((3, 300), "float64"))
    with pytest.raises(nimble.ShapeError):
        vm.run(np.zeros((3, 299), "float32"))
    with pytest.raises(nimble.ShapeError):
        vm.run(np.zeros((3,), "float32"))
    with pytest.raises((nimble.TypeError, nimble.ShapeError)):
        vm.run()
    assert np.isnan(flat(vm.run(np.full((2, 300), np.nan, "float32")))[0]).all()  # a NaN is fine


def _torch_bert(weights: dict, cfg):
    """The builder BERT (`nimble.models.bert`) in PyTorch with the same weights, on (1, seq, hidden) inputs."""
    import math

    import torch

    h, heads, d = cfg.hidden_size, cfg.num_heads, cfg.head_size
    t = {k: torch.from_numpy(v) for k, v in weights.items()}

    def linear(x, name):
        return x @ t[name + ".weight"].T + t[name + ".bias"]

    def norm(x, name):
        return torch.nn.functional.layer_norm(x, (h,), t[name + ".weight"], t[name + ".bias"], cfg.layer_norm_eps)

    class Encoder(torch.nn.Module):
        def forward(self, x):
            b, s, _ = x.shape
            for i in range(cfg.num_layers):
                p = f"layer.{i}."
                q, k, v = (linear(x, p + "attention.self." + n).view(b, s, heads, d).transpose(1, 2)
                           for n in ("query", "key", "value"))
                probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
                ctx = (probs @ v).transpose(1, 2).reshape(b, s, h)
                x = norm(linear(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
                inter = torch.nn.functional.gelu(linear(x, p + "intermediate.dense"))
                x = norm(linear(inter, p + "output.dense") + x, p + "output.LayerNorm")
            return x

    return Encoder()


_ONNX_BERT = bert.BertConfig(num_layers=2, hidden_size=32, num_heads=4, intermediate_size=64)


@functools.cache
def _onnx_bert_executables(opset: int, folder: str):
    """(ONNX executable, builder executable) of one small BERT, compiled once for both VMs (compiling does not
    depend on the backend; the runs below do)."""
    import warnings

    import torch

    from nimble.frontend import from_onnx

    weights = bert.random_weights(_ONNX_BERT, 0)
    path = os.path.join(folder, f"bert{opset}.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_torch_bert(weights, _ONNX_BERT), (torch.zeros(1, 7, 32),), path, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {1: "seq"}, "y": {1: "seq"}}, dynamo=False,
                          opset_version=opset)
    return nimble.compile(from_onnx(path)), _builder_bert_executable()


@functools.cache
def _builder_bert_executable():
    return nimble.compile(bert.build_module(bert.random_weights(_ONNX_BERT, 0), _ONNX_BERT))


@pytest.mark.parametrize("opset", [14, 17])
def test_onnx_bert_runs_the_builder_models_kernels(tmp_path_factory, opset):
    """An ONNX export of the builder BERT compiles to the same kernel families: every dense layer (3-D MatMul with a
    constant weight) through the dense template with its bias / gelu / residual epilogue, attention as one
    attention kernel (no batch_matmul, softmax or head copies), layer_norm alone; and it computes what the builder
    model computes."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from nimble.dispatch.table import DispatchEntry

    exe, builder_exe = _onnx_bert_executables(opset, str(tmp_path_factory.getbasetemp()))
    kinds = {}
    for p in exe.packed:
        family = p.name.split("_", 1)[1] if "_" in p.name else p.name
        kinds.setdefault(family, set()).add(type(p))
    dense = {f: k for f, k in kinds.items() if "dense" in f}
    assert {"dense_add", "dense_add_add", "dense_add_gelu"} <= set(dense)
    assert all(k == {DispatchEntry} for k in dense.values())  # all through the dense template's dispatch tables
    assert {"attention", "layer_norm"} <= set(kinds)
    assert not [f for f in kinds if "matmul" in f or "softmax" in f or "transpose" in f]
    onnx_vm, builder_vm = nimble.VirtualMachine(exe), nimble.VirtualMachine(builder_exe)
    for n in (1, 7, 33):
        x = np.random.default_rng(n).standard_normal((n, 32)).astype("float32")
        np.testing.assert_allclose(flat(onnx_vm.run(x[None]))[0][0], flat(builder_vm.run(x))[0], rtol=1e-4, atol=1e-4)
