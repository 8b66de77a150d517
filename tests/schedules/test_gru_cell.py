"""gru_cell template: configs against the numpy reference over hidden sizes (1, primes, non-multiples of the vector
width), batch rows and projection lengths, both gate orders; the 3-gate packing; alternating steps bit for bit;
bad steps and signatures (the op compiled in a loop: tests/dispatch/test_lstm_cell_records.py)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from template_checks import built, check_against_reference, configs_to_test

import nimble
from nimble.schedules.gru_cell import (ONNX_GRU_ORDER, TORCH_GRU_ORDER, gru_cell_reference, gru_cell_signature,
                                      pack_gru_weight)
from nimble.schedules.lstm_cell import pack_gate_weight
from nimble.schedules.registry import Signature, TemplateError, get_template

HIDDEN = [1, 2, 7, 8, 13, 16, 37]
steps = st.sampled_from([1, 2, 3, 5, 7, 13, 31])


@pytest.mark.parametrize("hidden", HIDDEN)
@settings(max_examples=6, deadline=None)
@given(n_steps=steps, seed=st.integers(0, 2**16))
def test_fallback_matches_numpy_over_hidden_sizes_and_lengths(hidden, n_steps, seed):
    sig = gru_cell_signature("n", 1, hidden, TORCH_GRU_ORDER if hidden % 2 else ONNX_GRU_ORDER)
    index = configs_to_test("gru_cell", sig)[0]
    check_against_reference("gru_cell", sig, index, {"n": n_steps}, seed=seed, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("index", configs_to_test("gru_cell", gru_cell_signature("n", "b", 13), seeds=(1, 2, 3)))
@settings(max_examples=8, deadline=None)
@given(batch=st.sampled_from([0, 1, 2, 3, 5]), n_steps=steps, seed=st.integers(0, 2**16))
def test_every_config_kind_matches_numpy_with_a_symbolic_batch(index, batch, n_steps, seed):
    sig = gru_cell_signature("n", "b", 13, TORCH_GRU_ORDER)
    check_against_reference("gru_cell", sig, index, {"n": n_steps * batch, "b": batch}, seed=seed, rtol=1e-5,
                            atol=2e-6)


def test_packing_puts_the_three_gates_of_a_block_of_units_side_by_side():
    hidden, bn = 5, 4
    w = np.arange(3 * hidden * hidden, dtype=np.float32).reshape(3 * hidden, hidden)
    wp = pack_gate_weight(w, bn, TORCH_GRU_ORDER)
    assert wp.shape == (2, hidden, 3, bn)
    for a in range(2):
        for r in range(hidden):
            for g in range(3):
                for j in range(bn):
                    unit = a * bn + j
                    want = w[TORCH_GRU_ORDER[g] * hidden + unit, r] if unit < hidden else 0.0
                    assert wp[a, r, g, j] == want


def test_the_reference_is_a_torch_style_gru_step():
    """PyTorch's GRU (r, z, n blocks; b_hn inside the reset product) written out, against the reference."""
    rng = np.random.default_rng(0)
    hidden, batch = 6, 3
    w_ih, w_hh = rng.standard_normal((3 * hidden, 4)), rng.standard_normal((3 * hidden, hidden))
    b_ih, b_hh = rng.standard_normal(3 * hidden), rng.standard_normal(3 * hidden)
    x, h = rng.standard_normal((batch, 4)), rng.standard_normal((batch, hidden))
    gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    r = sig(gi[:, :hidden] + gh[:, :hidden])
    z = sig(gi[:, hidden:2 * hidden] + gh[:, hidden:2 * hidden])
    n = np.tanh(gi[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
    want = (1 - z) * n + z * h
    gates_x = gi + np.concatenate([b_hh[:2 * hidden], np.zeros(hidden)])  # Rb of r and z folds into the input side
    got = gru_cell_reference(gates_x, np.array(0), h[None], w_hh, b_hh[2 * hidden:], TORCH_GRU_ORDER)
    np.testing.assert_allclose(got[0], want, rtol=1e-12)


@pytest.mark.parametrize("hidden", [13, 37, 64])
def test_alternating_steps_compute_the_same_bits_as_forward_steps(hidden):
    sig = gru_cell_signature("n", 1, hidden)
    t = get_template("gru_cell")
    space = t.space(sig)
    fallback = t.fallback(sig, space)
    assert fallback["alternate"] == 1
    lanes = space.knobs["block"].values[0]
    kernels = {alt: t.build(sig, space.config(**{**fallback.to_json(), "block": lanes, "alternate": alt}))
               for alt in (0, 1)}
    rng = np.random.default_rng(hidden)
    n_steps = 9
    gx = rng.standard_normal((n_steps, 3 * hidden)).astype(np.float32)
    w = rng.uniform(-0.3, 0.3, (3 * hidden, hidden)).astype(np.float32)
    bias = rng.uniform(-0.3, 0.3, hidden).astype(np.float32)
    states = {alt: np.zeros((1, 1, hidden), np.float32) for alt in (0, 1)}
    ref = np.zeros((1, 1, hidden), np.float32)
    for step in range(n_steps):
        for alt, k in kernels.items():
            states[alt] = k(gx, np.array(step, np.int64), states[alt], w, bias)
        np.testing.assert_array_equal(states[1], states[0], err_msg=f"step {step}")
        ref = gru_cell_reference(gx, np.array(step), ref, w, bias)
    np.testing.assert_allclose(states[1], ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("steps_given, t", [(0, 0), (3, 3), (3, -1)])
def test_a_step_outside_the_projection_raises(steps_given, t):
    sig = gru_cell_signature("n", 1, 7)
    kernel = built("gru_cell", sig, configs_to_test("gru_cell", sig)[0])
    rng = np.random.default_rng(0)
    gx, state = rng.standard_normal((steps_given, 21)).astype(np.float32), np.zeros((1, 1, 7), np.float32)
    with pytest.raises(nimble.OutOfRangeError, match="gru_cell: .*outside .*gates_x"):
        kernel(gx, np.array(t, np.int64), state, rng.standard_normal((21, 7)).astype(np.float32),
               np.zeros(7, np.float32))


def test_signatures_the_template_cannot_take_are_refused():
    t = get_template("gru_cell")
    bad = Signature.make([(("n", 15), "float32"), ((), "int64"), ((1, 1, 4), "float32"), ((15, 5), "float32"),
                          ((4,), "float32")], gate_order=[0, 1, 2])
    with pytest.raises(TemplateError, match="hidden size 4 does not match"):
        t.space(bad)
    with pytest.raises(nimble.ShapeError, match="gate_order must be a permutation"):
        t.space(gru_cell_signature("n", 1, 4, (0, 0, 1)))
    with pytest.raises(TemplateError, match="shapes must be"):
        t.space(Signature.make([(("n", 12), "float32"), ((), "int64"), ((2, 1, 4), "float32"),
                                ((12, 4), "float32"), ((4,), "float32")], gate_order=[0, 1, 2]))


@pytest.mark.parametrize("index", configs_to_test("gru_cell", gru_cell_signature("n", "b", 13, linear_before_reset=0),
                                                  seeds=(1, 2, 3)))
@settings(max_examples=8, deadline=None)
@given(batch=st.sampled_from([0, 1, 2, 3, 5]), n_steps=steps, seed=st.integers(0, 2**16),
       order=st.sampled_from([ONNX_GRU_ORDER, TORCH_GRU_ORDER]))
def test_reset_before_the_product_matches_numpy_in_every_config_kind(index, batch, n_steps, seed, order):
    """linear_before_reset=0 (ONNX's default): two passes over R in one kernel."""
    sig = gru_cell_signature("n", "b", 13, order, linear_before_reset=0)
    check_against_reference("gru_cell", sig, index, {"n": n_steps * batch, "b": batch}, seed=seed, rtol=1e-5,
                            atol=2e-6)


@pytest.mark.parametrize("hidden", [1, 7, 16, 37, 64])
def test_reset_before_the_product_over_hidden_sizes_with_alternating_steps(hidden):
    sig = gru_cell_signature("n", 1, hidden, linear_before_reset=0)
    t = get_template("gru_cell")
    kernel = t.build(sig, t.fallback(sig, t.space(sig)))
    rng = np.random.default_rng(hidden)
    n_steps = 6
    gx = rng.standard_normal((n_steps, 3 * hidden)).astype(np.float32)
    w = rng.uniform(-0.5, 0.5, (3 * hidden, hidden)).astype(np.float32)
    bias = rng.uniform(-0.5, 0.5, hidden).astype(np.float32)
    got = want = np.zeros((1, 1, hidden), np.float32)
    for step in range(n_steps):  # odd steps run the blocks backwards
        got = kernel(gx, np.array(step, np.int64), got, w, bias)
        want = gru_cell_reference(gx, np.array(step), want, w, bias, linear_before_reset=0)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6, err_msg=f"step {step}")


def test_the_reference_with_the_reset_before_the_product_is_onnx_s_default_gru():
    """ONNX's GRU equations with linear_before_reset=0 written out: ht = tanh(Xt Wh^T + (rt * Ht-1) Rh^T + Rbh +
    Wbh)."""
    rng = np.random.default_rng(3)
    hidden, batch = 5, 2
    w_h = rng.standard_normal((3 * hidden, hidden))
    x_side = rng.standard_normal((batch, 3 * hidden))  # X W^T + Wb + Rb: every bias only adds
    h = rng.standard_normal((batch, hidden))
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    z = sig(x_side[:, :hidden] + h @ w_h[:hidden].T)
    r = sig(x_side[:, hidden:2 * hidden] + h @ w_h[hidden:2 * hidden].T)
    n = np.tanh(x_side[:, 2 * hidden:] + (r * h) @ w_h[2 * hidden:].T)
    want = (1 - z) * n + z * h
    got = gru_cell_reference(x_side, np.array(0), h[None], w_h, np.zeros(hidden), ONNX_GRU_ORDER, 0)
    np.testing.assert_allclose(got[0], want, rtol=1e-12)


def test_packing_for_the_reset_before_the_product_streams_each_pass_s_part():
    hidden, bn = 5, 4
    w = np.arange(3 * hidden * hidden, dtype=np.float32).reshape(3 * hidden, hidden)
    flat = pack_gru_weight(w, bn, TORCH_GRU_ORDER, 0)
    blocks = 2
    zr = flat[:blocks * hidden * 2 * bn].reshape(blocks, hidden, 2, bn)
    n = flat[blocks * hidden * 2 * bn:].reshape(blocks, hidden, bn)
    for a in range(blocks):
        for r in range(hidden):
            for j in range(bn):
                unit = a * bn + j
                for g in range(2):
                    want = w[TORCH_GRU_ORDER[g] * hidden + unit, r] if unit < hidden else 0.0
                    assert zr[a, r, g, j] == want
                assert n[a, r, j] == (w[TORCH_GRU_ORDER[2] * hidden + unit, r] if unit < hidden else 0.0)


def test_linear_before_reset_must_be_0_or_1():
    with pytest.raises(TemplateError, match="linear_before_reset must be 0 or 1"):
        get_template("gru_cell").space(gru_cell_signature("n", 1, 4, linear_before_reset=2))
