"""The bytecode optimisations on the paper's models (small configs): optimised and unoptimised
executables give the same outputs on random inputs (on both VMs, via the conftest), the LSTM's time
step is a loop with no call, no kill and its temporaries in one arena."""
import numpy as np
import pytest

import nimble
from nimble import settings
from nimble.models import lstm, tree_lstm
from nimble.vm import bytecode as bc

LSTM = lstm.LSTMConfig(input_size=24, hidden_size=32, num_layers=2)
TREE = tree_lstm.TreeLSTMConfig(input_size=20, hidden_size=12)


def flat(v):
    if isinstance(v, (tuple, list)):
        return [y for x in v for y in flat(x)]
    if hasattr(v, "fields"):
        return [y for x in v.fields for y in flat(x)]
    return [np.asarray(v)]


def compiled_both(mod, monkeypatch=None):
    saved = settings.current().bytecode_opt
    try:
        settings.update(bytecode_opt=False)
        plain = nimble.compile(mod)
        settings.update(bytecode_opt=True)
        return plain, nimble.compile(mod)
    finally:
        settings.update(bytecode_opt=saved)


@pytest.fixture(scope="module")
def lstm_pair():
    mp = pytest.MonkeyPatch()
    try:
        return compiled_both(lstm.build_module(lstm.random_weights(LSTM, 3), LSTM), mp)
    finally:
        mp.undo()


def loop_of(exe, name):
    return next(f for f in exe.functions if f.name == name)


def test_lstm_time_step_is_a_loop_without_calls_kills_or_per_step_temporary_storages(lstm_pair):
    plain, opt = lstm_pair
    before, after = loop_of(plain, "lstm_loop_l0"), loop_of(opt, "lstm_loop_l0")
    assert any(isinstance(i, bc.Invoke) for i in before.instructions)
    assert not any(isinstance(i, (bc.Invoke, bc.KillRegister)) for i in after.instructions)
    back = [pc for pc, i in enumerate(after.instructions) if isinstance(i, bc.Goto) and i.offset < 0]
    assert len(back) == 1
    head = back[0] + after.instructions[back[0]].offset
    step = after.instructions[head:back[0] + 1]
    # per step: the loop test's bool; the new state and t+1 (carried to the next step) and h' (kept in the
    # list of steps) keep their own storages
    assert sum(isinstance(i, bc.AllocStorage) for i in step) == 4
    assert not any(isinstance(i, (bc.LoadConst, bc.LoadConsti)) for i in step)
    assert len(step) < len(before.instructions) / 2


@pytest.mark.parametrize("length", [1, 2, 5, 17])
def test_optimised_lstm_gives_the_unoptimised_outputs(lstm_pair, length):
    plain, opt = lstm_pair
    xs = np.random.default_rng(length).standard_normal((length, LSTM.input_size)).astype(np.float32)
    ref = flat(nimble.VirtualMachine(plain).run(*lstm.to_inputs(xs)))
    out = flat(nimble.VirtualMachine(opt).run(*lstm.to_inputs(xs)))
    assert len(ref) == len(out)
    for a, b in zip(out, ref):
        np.testing.assert_array_equal(a, b)


def random_tree(rng, leaves: int):
    if leaves == 1:
        return rng.standard_normal((1, TREE.input_size)).astype(np.float32)
    k = int(rng.integers(1, leaves))
    return (random_tree(rng, k), random_tree(rng, leaves - k))


def test_optimised_tree_lstm_gives_the_unoptimised_outputs(monkeypatch):
    plain, opt = compiled_both(tree_lstm.build_module(tree_lstm.random_weights(TREE, 5), TREE), monkeypatch)
    assert not any(isinstance(i, bc.KillRegister) for f in opt.functions for i in f.instructions)
    rng = np.random.default_rng(7)
    for leaves in (1, 2, 3, 8):
        tree = random_tree(rng, leaves)
        ref = flat(nimble.VirtualMachine(plain).run(*tree_lstm.to_inputs(tree, TREE)))
        out = flat(nimble.VirtualMachine(opt).run(*tree_lstm.to_inputs(tree, TREE)))
        for a, b in zip(out, ref):
            np.testing.assert_array_equal(a, b)
