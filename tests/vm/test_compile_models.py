"""LSTM, Tree-LSTM and BERT compiled for the VM match the reference interpreter."""
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
