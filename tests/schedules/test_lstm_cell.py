"""lstm_cell template: configs against the numpy reference over hidden sizes (1, primes, non-multiples of the
vector width), batch rows and projection lengths; the gate-interleaved packing; bad steps and signatures."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from template_checks import built, check_against_reference, configs_to_test

import nimble
from nimble.ops.lstm_cell import ONNX_GATE_ORDER, TORCH_GATE_ORDER
from nimble.schedules.lstm_cell import lstm_cell_signature, pack_lstm_weight
from nimble.schedules.registry import Signature, TemplateError, get_template

HIDDEN = [1, 2, 7, 8, 13, 16, 37]
steps = st.sampled_from([1, 2, 3, 5, 7, 13, 31])


@pytest.mark.parametrize("hidden", HIDDEN)
@settings(max_examples=6, deadline=None)
@given(n_steps=steps, seed=st.integers(0, 2**16))
def test_fallback_matches_numpy_over_hidden_sizes_and_lengths(hidden, n_steps, seed):
    sig = lstm_cell_signature("n", 1, hidden, TORCH_GATE_ORDER if hidden % 2 else ONNX_GATE_ORDER)
    index = configs_to_test("lstm_cell", sig)[0]
    check_against_reference("lstm_cell", sig, index, {"n": n_steps}, seed=seed, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("index", configs_to_test("lstm_cell", lstm_cell_signature("n", "b", 13), seeds=(1, 2, 3)))
@settings(max_examples=8, deadline=None)
@given(batch=st.sampled_from([0, 1, 2, 3, 5]), n_steps=steps, seed=st.integers(0, 2**16))
def test_every_config_kind_matches_numpy_with_a_symbolic_batch(index, batch, n_steps, seed):
    sig = lstm_cell_signature("n", "b", 13, ONNX_GATE_ORDER)
    check_against_reference("lstm_cell", sig, index, {"n": n_steps * batch, "b": batch}, seed=seed, rtol=1e-5,
                            atol=2e-6)


def test_packing_puts_the_four_gates_of_a_block_of_units_side_by_side():
    hidden, bn = 5, 4
    w = np.arange(4 * hidden * hidden, dtype=np.float32).reshape(4 * hidden, hidden)
    wp = pack_lstm_weight(w, bn, ONNX_GATE_ORDER)
    assert wp.shape == (2, hidden, 4, bn)
    for a in range(2):
        for r in range(hidden):
            for g in range(4):
                for j in range(bn):
                    unit = a * bn + j
                    want = w[ONNX_GATE_ORDER[g] * hidden + unit, r] if unit < hidden else 0.0
                    assert wp[a, r, g, j] == want


@pytest.mark.parametrize("steps_given, t", [(0, 0), (3, 3), (3, -1)])
def test_a_step_outside_the_projection_raises(steps_given, t):
    sig = lstm_cell_signature("n", 1, 7)
    kernel = built("lstm_cell", sig, configs_to_test("lstm_cell", sig)[0])
    rng = np.random.default_rng(0)
    gx, state = rng.standard_normal((steps_given, 28)).astype(np.float32), np.zeros((2, 1, 7), np.float32)
    with pytest.raises(nimble.OutOfRangeError, match="lstm_cell: .*outside .*gates_x"):
        kernel(gx, np.array(t, np.int64), state, rng.standard_normal((28, 7)).astype(np.float32))


def test_signatures_the_template_cannot_take_are_refused():
    t = get_template("lstm_cell")
    bad = Signature.make([(("n", 20), "float32"), ((), "int64"), ((2, 1, 4), "float32"), ((20, 5), "float32")],
                         gate_order=[0, 1, 2, 3])
    with pytest.raises(TemplateError, match="hidden size 4 does not match"):
        t.space(bad)
    with pytest.raises(nimble.ShapeError, match="gate_order must be a permutation"):
        t.space(lstm_cell_signature("n", 1, 4, (0, 0, 1, 2)))


@pytest.mark.parametrize("hidden", [13, 37, 64])
def test_alternating_steps_compute_the_same_bits_as_forward_steps(hidden):
    """`alternate` runs the blocks of odd steps backwards (cache reuse across steps): every step's state must
    equal, bit for bit, the one the forward order computes, through a whole recurrence."""
    sig = lstm_cell_signature("n", 1, hidden)
    t = get_template("lstm_cell")
    space = t.space(sig)
    fallback = t.fallback(sig, space)
    assert fallback["alternate"] == 1
    lanes = space.knobs["block"].values[0]  # several blocks even at hidden 13: one vector of units each
    kernels = {alt: t.build(sig, space.config(**{**fallback.to_json(), "block": lanes, "alternate": alt}))
               for alt in (0, 1)}
    rng = np.random.default_rng(hidden)
    steps = 9
    gx = rng.standard_normal((steps, 4 * hidden)).astype(np.float32)
    w = rng.uniform(-0.3, 0.3, (4 * hidden, hidden)).astype(np.float32)
    states = {alt: np.zeros((2, 1, hidden), np.float32) for alt in (0, 1)}
    for step in range(steps):
        for alt, k in kernels.items():
            states[alt] = k(gx, np.array(step, np.int64), states[alt], w)
        np.testing.assert_array_equal(states[1], states[0], err_msg=f"step {step}")
    ref = np.zeros((2, 1, hidden), np.float32)
    for step in range(steps):
        ref = t.reference(sig, [gx, np.array(step, np.int64), ref, w])[0]
    np.testing.assert_allclose(states[1], ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("isa, hidden, gates, block", [
    ("AVX512", 512, 4, 64), ("AVX512", 384, 4, 64), ("AVX512", 300, 4, 64), ("AVX512", 96, 4, 32),
    ("AVX512", 512, 3, 64), ("AVX2", 512, 4, 16), ("AVX2", 512, 3, 32), ("SSE", 512, 4, 8)])
def test_fallback_block_keeps_the_accumulators_in_registers_without_extra_padding(monkeypatch, isa, hidden, gates,
                                                                                 block):
    """4 vectors a gate where 4 accumulators a gate, a broadcast and a load fit the registers and pad H no
    further than 2 vectors do (300 pads to 320 either way on AVX-512; 96 would pad to 128); else 2 vectors."""
    from nimble.codegen import isa as isa_module
    from nimble.schedules import lstm_cell

    monkeypatch.setattr(lstm_cell, "host_isa", lambda: getattr(isa_module, isa))
    space = lstm_cell.recurrent_cell_space("lstm_cell")
    cfg = lstm_cell.recurrent_cell_fallback(space, hidden, gates)
    assert cfg["block"] == block and cfg["k_unroll"] == 8 and cfg["alternate"] == 1
