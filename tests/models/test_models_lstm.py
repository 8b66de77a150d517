"""The LSTM model: types, printed form, and outputs against plain numpy and against torch.nn.LSTM."""
import numpy as np
import pytest

import nimble.ir as ir
from nimble.ir import Any, TensorType
from nimble.models import lstm

FULL = lstm.LSTMConfig()  # 2 layers, input 300, hidden 512
SMALL = lstm.LSTMConfig(input_size=7, hidden_size=5, num_layers=3)


@pytest.fixture(scope="module")
def full_model():
    weights = lstm.random_weights(FULL, seed=1)
    return weights, lstm.build_module(weights, FULL)


def numpy_lstm(weights: dict, xs: np.ndarray, num_layers: int, hidden: int):
    """An independent LSTM: explicit gate equations, float64."""

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    h = [np.zeros(hidden) for _ in range(num_layers)]
    c = [np.zeros(hidden) for _ in range(num_layers)]
    outputs = []
    for x in xs.astype(np.float64):
        inp = x
        for k in range(num_layers):
            z = weights[f"weight_ih_l{k}"] @ inp + weights[f"bias_ih_l{k}"] + weights[f"weight_hh_l{k}"] @ h[k] + weights[f"bias_hh_l{k}"]
            i, f, g, o = sigmoid(z[:hidden]), sigmoid(z[hidden:2 * hidden]), np.tanh(z[2 * hidden:3 * hidden]), sigmoid(z[3 * hidden:])
            c[k] = f * c[k] + i * g
            h[k] = o * np.tanh(c[k])
            inp = h[k]
        outputs.append(inp)
    return np.array(outputs).reshape(len(xs), hidden), np.array(h), np.array(c)


def test_main_type_has_a_dynamic_sequence_axis(full_model):
    _, mod = full_model
    main = ir.infer_types(mod).function("main")
    assert main.arg_types == (TensorType((Any, 300)),)
    assert main.ret_type == ir.TupleType((TensorType((Any, 512)), TensorType((2, 512)), TensorType((2, 512))))


def test_printed_lstm_reads_as_a_loop_over_time_steps(full_model):
    _, mod = full_model
    text = ir.print_module(mod)
    assert "def @lstm_loop(\n    %t: Tensor[(), int64],\n" in text
    assert "    %1 = take(%xs, %t, axis=0);\n    let %x_t = expand_dims(%1, axis=0);\n" in text
    assert "    let %state_l0 = @lstm_cell_l0(%x_t, %h_l0, %c_l0);\n" in text
    assert "    let %new_outputs = concatenate((%outputs, %new_h_l1), axis=0);\n" in text
    assert "  let %gates = add(%1, %3);\n  let %parts = split(%gates, axis=1, indices_or_sections=4);\n" in text
    assert "const<" not in text  # every weight prints by name


@pytest.mark.parametrize("seed", range(20))
def test_small_three_layer_lstm_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    weights = lstm.random_weights(SMALL, seed=seed)
    mod = lstm.build_module(weights, SMALL)
    xs = rng.standard_normal((int(rng.integers(1, 40)), SMALL.input_size)).astype(np.float32)
    outputs, h_n, c_n = ir.evaluate(mod, *lstm.to_inputs(xs), check_types=True)
    want = numpy_lstm(weights, xs, SMALL.num_layers, SMALL.hidden_size)
    for got, expected in zip((outputs, h_n, c_n), want):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_full_size_lstm_matches_numpy(full_model):
    weights, mod = full_model
    xs = np.random.default_rng(7).standard_normal((23, 300)).astype(np.float32)
    got = ir.evaluate(mod, *lstm.to_inputs(xs))
    for g, expected in zip(got, numpy_lstm(weights, xs, 2, 512)):
        np.testing.assert_allclose(g, expected, rtol=1e-4, atol=1e-5)


def test_empty_sequence_gives_no_outputs_and_zero_states(full_model):
    _, mod = full_model
    outputs, h_n, c_n = ir.evaluate(mod, np.zeros((0, 300), np.float32))
    assert outputs.shape == (0, 512)
    assert not h_n.any() and not c_n.any()


def test_long_sequence_runs_within_the_recursion_limit(full_model):
    _, mod = full_model
    outputs, _, _ = ir.evaluate(mod, np.zeros((400, 300), np.float32))
    assert outputs.shape == (400, 512)


def test_lstm_matches_torch_for_20_lengths(full_model):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    weights, mod = full_model
    ref = torch.nn.LSTM(FULL.input_size, FULL.hidden_size, FULL.num_layers)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    rng = np.random.default_rng(3)
    for length in rng.integers(1, 101, size=20):
        xs = rng.standard_normal((int(length), FULL.input_size)).astype(np.float32)
        with torch.no_grad():
            out, (h_n, c_n) = ref(torch.from_numpy(xs)[:, None, :])
        got = ir.evaluate(mod, *lstm.to_inputs(xs))
        for g, expected in zip(got, (out[:, 0], h_n[:, 0], c_n[:, 0])):
            np.testing.assert_allclose(g, expected.numpy(), rtol=1e-4, atol=1e-4)
