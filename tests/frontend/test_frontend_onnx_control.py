"""The ONNX frontend on hand-built models: Loop, If, LSTM / GRU, run-time reshapes, errors."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import nimble  # noqa: E402
import nimble.ir as ir  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402
from nimble.frontend.onnx import UnsupportedOperatorError  # noqa: E402

from . import onnx_models  # noqa: E402


def _ort(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def _vm(model):
    return nimble.VirtualMachine(nimble.compile(from_onnx(model)))


def _outputs(result):
    return [np.asarray(r) for r in result] if isinstance(result, (list, tuple)) else [np.asarray(result)]


@pytest.mark.parametrize("trips, limit, n", [(5, 1e9, 3), (10, 50.0, 4), (0, 1e9, 2)])
def test_loop_matches_onnxruntime(trips, limit, n):
    model = onnx_models.loop_model()
    vm = _vm(model)
    x = np.arange(n, dtype=np.float32)
    feeds = {"trips": np.array(trips, np.int64), "cond": np.array(True), "x": x, "limit": np.array(limit, np.float32)}
    got = _outputs(vm.run(*feeds.values()))
    for g, w in zip(got, _ort(model, feeds)):
        np.testing.assert_allclose(g, w, rtol=1e-5)


def test_loop_becomes_a_recursive_function():
    mod = from_onnx(onnx_models.loop_model())
    assert any(name.startswith("loop") for name in mod.functions)


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("batch", [1, 5])
def test_if_matches_onnxruntime(sign, batch):
    model = onnx_models.if_model()
    x = (sign * np.abs(np.random.default_rng(batch).standard_normal((batch, 4)))).astype(np.float32)
    got = _outputs(_vm(model).run(x))
    np.testing.assert_allclose(got[0], _ort(model, {"x": x})[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("gru", [False, True])
def test_recurrent_layers_match_onnxruntime(direction, gru):
    model = onnx_models.lstm_model(direction, gru=gru)
    vm = _vm(model)
    for seq, batch in [(1, 1), (6, 2)]:
        x = np.random.default_rng(seq).standard_normal((seq, batch, 3)).astype(np.float32)
        for g, w in zip(_outputs(vm.run(x)), _ort(model, {"X": x})):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["gru_linear_before_reset", "lstm_peepholes", "lstm_static_batch"])
def test_recurrent_variants_match_onnxruntime_over_lengths(kind):
    model = onnx_models.lstm_model("bidirectional", gru=kind.startswith("gru"), linear_before_reset=1,
                                   peepholes=kind == "lstm_peepholes", batch=2 if kind == "lstm_static_batch" else "batch")
    vm = _vm(model)
    for seq in [1, 2, 5, 37, 100]:
        x = np.random.default_rng(seq).standard_normal((seq, 2, 3)).astype(np.float32)
        for g, w in zip(_outputs(vm.run(x)), _ort(model, {"X": x})):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru", "gru_linear_before_reset"])
def test_recurrent_loop_reads_a_projection_and_conses_its_outputs(kind):
    gru = kind.startswith("gru")
    mod = from_onnx(onnx_models.lstm_model("forward", gru=gru, linear_before_reset=int(kind.endswith("reset"))))
    text = ir.print_module(mod)
    name = next(n for n in mod.functions if n.startswith("gru_" if gru else "lstm_") and "stack" not in n)
    loop = text.split(f"def @{name}(")[1].split("\ndef ")[0]
    assert "concatenate" not in loop and "Cons(" in loop
    # one fused cell reads row t of the projection itself (a GRU with linear_before_reset=0 too: its kernel makes
    # two passes over R); X @ W^T is outside
    cell = "gru_cell" if gru else "lstm_cell"
    assert loop.count("dense(") == 0 and loop.count(f"{cell}(%xs, %t, %s0, ") == 1
    if gru:
        assert f"linear_before_reset={int(kind.endswith('reset'))}" in loop


def test_dim_params_become_symbolic_dims():
    main = ir.infer_types(from_onnx(onnx_models.dynamic_reshape_model())).function("main")
    assert main.arg_types == (ir.TensorType((ir.SymDim("b"), ir.SymDim("s"), 8)),)


def test_runtime_shape_chain_becomes_dyn_reshape_keeping_static_dims():
    model = onnx_models.dynamic_reshape_model()
    mod = from_onnx(model)
    assert "dyn.reshape" in repr(mod)
    assert ir.infer_types(mod).function("main").ret_type.shape[1:2] == (2,)
    vm = nimble.VirtualMachine(nimble.compile(mod))
    for shape in [(1, 3, 8), (2, 5, 8)]:
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        np.testing.assert_array_equal(_outputs(vm.run(x))[0], _ort(model, {"x": x})[0])


def test_static_shape_chain_folds_to_a_constant_reshape():
    mod = from_onnx(onnx_models.dynamic_reshape_model(), shapes={"x": (2, 3, 8)})
    text = repr(mod)
    assert "shape_of" not in text and "dyn.reshape" not in text


def test_unsupported_ops_are_listed_in_one_error():
    with pytest.raises(UnsupportedOperatorError) as info:
        from_onnx(onnx_models.unsupported_model())
    message = str(info.value)
    assert "2 unsupported" in message
    assert "ai.onnx.RandomUniformLike (opset 17): nodes ['random1', 'random2']" in message
    assert "ai.onnx.Det (opset 17): nodes ['det']" in message


def test_malformed_file_raises_format_error(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07this is not a protobuf\xff\xff")
    with pytest.raises(nimble.FormatError, match="not a readable ONNX model"):
        from_onnx(path)


def test_old_opset_is_upgraded_to_the_same_ir():
    old = onnx_models.if_model()
    old.opset_import[0].version = 11  # If, MatMul, ReduceSum (axes attribute: none here) read the same at 11
    from nimble.ir.printer import print_module

    strip = lambda text: "".join(c for c in text if not c.isdigit())  # noqa: E731 - fresh names carry counters
    assert strip(print_module(from_onnx(old))) == strip(print_module(from_onnx(onnx_models.if_model())))


@pytest.mark.parametrize("name", ["test_lstm_batchwise", "test_gru_batchwise", "test_lstm_reverse", "test_gru_seq_length"])
def test_recurrent_node_cases_pass(name):
    import warnings

    from nimble.frontend.onnx import supported_ops
    from nimble.frontend.onnx_conformance import node_cases, run_case

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case = next((c for c in node_cases() if c.name == name), None)
    if case is None:
        pytest.skip(f"{name} is not in this onnx version's node tests")
    result = run_case(case, set(supported_ops()))
    assert result.status == "pass", result.reason


def test_torch_exported_lstm_steps_in_four_kernels_and_matches_onnxruntime(tmp_path):
    import re
    import warnings

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.LSTM(7, 16, 2)
    path = str(tmp_path / "lstm.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(3, 1, 7),), path, input_names=["xs"], output_names=["y", "h", "c"],
                          dynamic_axes={"xs": {0: "seq"}, "y": {0: "seq"}}, dynamo=False)
    exe = nimble.compile(from_onnx(path))
    loops = [m.group(0) for m in re.finditer(r"def @(lstm_\d+)\(.*?\n}\n", exe.disassemble(), re.S)]
    assert len(loops) == 2
    for body in loops:  # t < n, lstm_cell, its h (the step's output), t + 1: no host shape functions, no concatenate
        kernels = [line for line in body.splitlines() if "invoke_packed" in line]
        assert len(kernels) == 4 and sum("lstm_cell" in k for k in kernels) == 1, kernels
    vm = nimble.VirtualMachine(exe)
    model = onnx.load(path)
    for seq in [1, 5, 37]:
        x = np.random.default_rng(seq).standard_normal((seq, 1, 7)).astype(np.float32)
        for g, w in zip(_outputs(vm.run(x)), _ort(model, {"xs": x})):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
