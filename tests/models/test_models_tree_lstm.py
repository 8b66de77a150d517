"""The binary Tree-LSTM: types, and outputs against plain numpy and against a torch module of nn.Linear layers."""
import numpy as np
import pytest

import nimble
import nimble.ir as ir
from nimble.ir import TensorType, prelude
from nimble.models import tree_lstm
from nimble.models.torch_peers import torch_tree_lstm

CONFIG = tree_lstm.TreeLSTMConfig()  # input 300, hidden 150


@pytest.fixture(scope="module")
def model():
    weights = tree_lstm.random_weights(CONFIG, seed=2)
    return weights, tree_lstm.build_module(weights, CONFIG)


def numpy_tree_lstm(weights: dict, tree, hidden: int):
    """An independent recursive Tree-LSTM in float64 numpy."""

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    def lin(name, v):
        return weights[f"{name}.weight"].astype(np.float64) @ v + weights[f"{name}.bias"]

    if not isinstance(tree, tuple):
        iou = lin("ioux", np.asarray(tree, np.float64))
        c = sigmoid(iou[:hidden]) * np.tanh(iou[2 * hidden:])
        return sigmoid(iou[hidden:2 * hidden]) * np.tanh(c), c
    (hl, cl), (hr, cr) = numpy_tree_lstm(weights, tree[0], hidden), numpy_tree_lstm(weights, tree[1], hidden)
    hs = np.concatenate([hl, hr])
    iou, f = lin("iouh", hs), sigmoid(lin("fh", hs))
    c = sigmoid(iou[:hidden]) * np.tanh(iou[2 * hidden:]) + f[:hidden] * cl + f[hidden:] * cr
    return sigmoid(iou[hidden:2 * hidden]) * np.tanh(c), c


def test_main_takes_a_tree_and_returns_the_root_state(model):
    _, mod = model
    main = ir.infer_types(mod).function("main")
    assert main.arg_types == (prelude.tree_type(TensorType((1, 300))),)
    assert main.ret_type == ir.TupleType((TensorType((1, 150)), TensorType((1, 150))))


@pytest.mark.parametrize("seed", range(20))
def test_tree_lstm_matches_numpy(model, seed):
    weights, mod = model
    rng = np.random.default_rng(seed)
    tree = tree_lstm.random_tree(rng, int(rng.integers(1, 61)), CONFIG.input_size)
    h, c = ir.evaluate(mod, *tree_lstm.to_inputs(tree, CONFIG), check_types=True)
    want_h, want_c = numpy_tree_lstm(weights, tree, CONFIG.hidden_size)
    np.testing.assert_allclose(h[0], want_h, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(c[0], want_c, rtol=1e-4, atol=1e-5)


def test_a_deep_chain_tree_evaluates(model):
    _, mod = model
    leaf = np.ones(CONFIG.input_size, np.float32)
    tree = leaf
    for _ in range(300):
        tree = (tree, leaf)
    h, _ = ir.evaluate(mod, *tree_lstm.to_inputs(tree, CONFIG))
    assert h.shape == (1, 150) and np.isfinite(h).all()


def test_leaf_of_the_wrong_size_is_rejected():
    with pytest.raises(nimble.ShapeError, match="a tree leaf must hold 300 values, got 4"):
        tree_lstm.to_inputs((np.ones(300), np.ones(4)), CONFIG)


def test_tree_lstm_matches_torch_for_20_trees(model):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    weights, mod = model
    ref = torch_tree_lstm(weights, CONFIG)

    def to_torch(tree):
        return tuple(to_torch(t) for t in tree) if isinstance(tree, tuple) else torch.from_numpy(tree)[None]

    rng = np.random.default_rng(11)
    for _ in range(20):
        tree = tree_lstm.random_tree(rng, int(rng.integers(1, 61)), CONFIG.input_size)
        with torch.no_grad():
            want_h, want_c = ref(to_torch(tree))
        h, c = ir.evaluate(mod, *tree_lstm.to_inputs(tree, CONFIG))
        np.testing.assert_allclose(h, want_h.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(c, want_c.numpy(), rtol=1e-4, atol=1e-4)
