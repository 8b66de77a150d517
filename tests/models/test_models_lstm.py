"""The LSTM model: types, printed form, and outputs against plain numpy and against torch.nn.LSTM."""
import numpy as np
import pytest

import nimble.ir as ir
from nimble.ir import Any, TensorType
from nimble.models import lstm
from nimble.models.torch_peers import torch_lstm

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


def test_printed_lstm_projects_each_layer_once_then_loops_over_time_steps(full_model):
    _, mod = full_model
    text = ir.print_module(mod)
    assert "  %1 = dense(%xs, meta.weight_ih_l0);\n  let %proj_l0 = add(%1, meta.bias_l0);\n" in text
    assert "dense(%outputs_l0, meta.weight_ih_l1);\n  let %proj_l1 = add(%3, meta.bias_l1);\n" in text
    assert "def @lstm_loop_l1(\n    %t: Tensor[(), int64],\n" in text
    assert "  let %new_state = lstm_cell(%proj, %t, %state, meta.weight_hh_l0);\n" in text
    assert "  let %new_h = take(%new_state, 0i64, axis=0);\n" in text
    assert "@lstm_loop_l0(%" in text and "Cons(%new_h, %steps)" in text
    assert "let %outputs_l1 = @stack_steps(%run_l1.0, %no_steps);\n" in text
    assert "const<" not in text  # every weight prints by name


def _loop_body(text: str, name: str) -> str:
    start = text.index(f"def @{name}(")
    return text[start:text.index("\n}\n", start)]


def test_time_step_loop_has_no_input_dense_and_no_concatenate(full_model):
    _, mod = full_model
    text = ir.print_module(mod)
    for layer in range(2):
        body = _loop_body(text, f"lstm_loop_l{layer}")
        assert body.count("lstm_cell(") == 1 and "dense(" not in body and "weight_ih" not in body
        assert "concatenate" not in body


@pytest.mark.parametrize("length", [0, 1, 2, 5, 7, 8, 9, 37, 64, 65, 100])
def test_steps_stack_in_time_order_for_lengths_around_the_merge_arity(length):
    weights = lstm.random_weights(SMALL, seed=length)
    mod = lstm.build_module(weights, SMALL)
    xs = np.random.default_rng(length).standard_normal((length, SMALL.input_size)).astype(np.float32)
    got = ir.evaluate(mod, *lstm.to_inputs(xs), check_types=True)
    want = numpy_lstm(weights, xs, SMALL.num_layers, SMALL.hidden_size)
    assert got[0].shape == (length, SMALL.hidden_size)
    for g, expected in zip(got, want):
        np.testing.assert_allclose(g, expected, rtol=1e-4, atol=1e-5)


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
    ref = torch_lstm(weights, FULL)
    rng = np.random.default_rng(3)
    for length in [1, 2, 5, 37, 100, *rng.integers(1, 101, size=15)]:
        xs = rng.standard_normal((int(length), FULL.input_size)).astype(np.float32)
        with torch.no_grad():
            out, (h_n, c_n) = ref(torch.from_numpy(xs)[:, None, :])
        got = ir.evaluate(mod, *lstm.to_inputs(xs))
        for g, expected in zip(got, (out[:, 0], h_n[:, 0], c_n[:, 0])):
            np.testing.assert_allclose(g, expected.numpy(), rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def full_vm(full_model):
    import nimble

    _, mod = full_model
    return nimble.VirtualMachine(nimble.compile(mod))


def test_compiled_time_step_is_four_kernels_one_lstm_cell(full_vm):
    text = full_vm.exe.disassemble()
    for layer in range(2):
        body = _loop_body(text, f"lstm_loop_l{layer}")
        kernels = [line.split("@")[1].split("(")[0] for line in body.splitlines() if "invoke_packed" in line]
        # t < n, the fused cell (h @ W_hh^T, the projection row, the gates, c' and h'), h' as a row, t + 1
        assert len(kernels) == 4, kernels
        assert sum("lstm_cell" in k for k in kernels) == 1 and not any("dense" in k for k in kernels)
        assert not any("concatenate" in k or k.startswith(("shape_expr", "op_shape")) for k in kernels)


def test_both_layers_share_the_cell_kernel_with_their_own_weights(full_model, full_vm):
    """Layers of one shape share a kernel: each call must still pass its own packed W_hh (a swap shows here)."""
    weights, _ = full_model
    swapped = dict(weights, weight_hh_l0=weights["weight_hh_l1"], weight_hh_l1=weights["weight_hh_l0"])
    xs = np.random.default_rng(11).standard_normal((6, FULL.input_size)).astype(np.float32)
    got = [np.asarray(v) for v in full_vm.run(*lstm.to_inputs(xs))]
    for g, expected in zip(got, numpy_lstm(weights, xs, 2, 512)):
        np.testing.assert_allclose(g, expected, rtol=1e-4, atol=1e-4)
    assert not np.allclose(numpy_lstm(swapped, xs, 2, 512)[0], got[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("length", [0, 1, 2, 5, 37, 100])
def test_compiled_lstm_matches_torch(full_model, full_vm, length):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    weights, mod = full_model
    ref = torch_lstm(weights, FULL)
    xs = np.random.default_rng(length).standard_normal((length, FULL.input_size)).astype(np.float32)
    got = [np.asarray(v) for v in full_vm.run(*lstm.to_inputs(xs))]
    if length == 0:  # torch rejects an empty sequence; nimble gives (0, H) outputs and zero states
        assert got[0].shape == (0, FULL.hidden_size) and not got[1].any() and not got[2].any()
        return
    with torch.no_grad():
        out, (h_n, c_n) = ref(torch.from_numpy(xs)[:, None, :])
    for g, expected in zip(got, (out[:, 0], h_n[:, 0], c_n[:, 0])):
        np.testing.assert_allclose(g, expected.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("hidden", [1, 13])
def test_compiled_lstm_matches_numpy_over_hidden_sizes_and_lengths(hidden):
    """The fused cell's template at hidden sizes that are not multiples of the vector width, lengths 0, 1, primes."""
    import nimble

    config = lstm.LSTMConfig(input_size=3, hidden_size=hidden, num_layers=1)
    weights = lstm.random_weights(config, seed=hidden)
    vm = nimble.VirtualMachine(nimble.compile(lstm.build_module(weights, config)))
    for length in [0, 1, 2, 7, 13]:
        xs = np.random.default_rng(length).standard_normal((length, 3)).astype(np.float32)
        got = [np.asarray(v) for v in vm.run(*lstm.to_inputs(xs))]
        for g, expected in zip(got, numpy_lstm(weights, xs, 1, hidden)):
            assert g.shape == expected.shape
            np.testing.assert_allclose(g, expected, rtol=1e-4, atol=1e-5)
