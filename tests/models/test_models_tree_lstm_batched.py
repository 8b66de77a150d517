"""The autobatched Tree-LSTM: its level schedule, and outputs equal to the per-node recursion and numpy."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_models_tree_lstm import numpy_tree_lstm

import nimble
from nimble.errors import ShapeError
from nimble.models import tree_lstm, tree_lstm_batched

CONFIG = tree_lstm.TreeLSTMConfig()


@pytest.fixture(scope="module")
def vms():
    weights = tree_lstm.random_weights(CONFIG, seed=3)
    batched = nimble.VirtualMachine(nimble.compile(tree_lstm_batched.build_module(weights, CONFIG)))
    return weights, batched


def test_schedule_orders_nodes_by_height():
    leaf = np.zeros(4, np.float32)
    tree = ((leaf, leaf), ((leaf, leaf), leaf))
    leaves, levels = tree_lstm_batched.schedule(tree, 4)
    assert leaves.shape == (5, 4)
    # height 1: (0, 1) and (2, 3) -> rows 5, 6; height 2: (6, 4) -> row 7; height 3: (5, 7) -> row 8
    assert [lv.tolist() for lv in levels] == [[[0, 2], [1, 3]], [[6], [4]], [[5], [7]]]


def test_schedule_rejects_bad_trees():
    with pytest.raises(ShapeError, match="2 children"):
        tree_lstm_batched.schedule((np.zeros(3, np.float32),) * 3, 3)
    with pytest.raises(ShapeError, match="hold 3 values"):
        tree_lstm_batched.schedule((np.zeros(3, np.float32), np.zeros(4, np.float32)), 3)


@settings(max_examples=12, deadline=None)
@given(leaves=st.sampled_from([1, 2, 3, 7, 13, 31, 60]), seed=st.integers(0, 10_000))
def test_matches_numpy_recursion(vms, leaves, seed):
    weights, vm = vms
    tree = tree_lstm.random_tree(np.random.default_rng(seed), leaves, CONFIG.input_size)
    h, c = vm.run(*tree_lstm_batched.to_inputs(tree, CONFIG))
    want_h, want_c = numpy_tree_lstm(weights, tree, CONFIG.hidden_size)
    np.testing.assert_allclose(np.asarray(h)[0], want_h, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(np.asarray(c)[0], want_c, rtol=1e-4, atol=2e-5)


def test_a_deep_chain(vms):
    weights, vm = vms
    rng = np.random.default_rng(0)
    tree = rng.standard_normal(CONFIG.input_size).astype(np.float32)
    for _ in range(40):  # 40 levels of one node each
        tree = (tree, rng.standard_normal(CONFIG.input_size).astype(np.float32))
    h, _ = vm.run(*tree_lstm_batched.to_inputs(tree, CONFIG))
    np.testing.assert_allclose(np.asarray(h)[0], numpy_tree_lstm(weights, tree, CONFIG.hidden_size)[0],
                               rtol=1e-4, atol=2e-5)
