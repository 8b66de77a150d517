"""nimble-run and nimble-tune take ONNX files directly."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from nimble.cli import run as run_cli  # noqa: E402
from nimble.cli import tune as tune_cli  # noqa: E402
from nimble.tuner import Database  # noqa: E402


def tiny_onnx(path):
    w = np.linspace(-1, 1, 32 * 16, dtype="float32").reshape(32, 16)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 16])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return w


def test_nimble_run_on_an_onnx_file(tmp_path):
    w = tiny_onnx(tmp_path / "m.onnx")
    x = np.random.default_rng(0).standard_normal((5, 32)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    assert run_cli.main([str(tmp_path / "m.onnx"), "--input", f"x={tmp_path / 'x.npy'}", "--output",
                         str(tmp_path / "o.npz")]) == 0
    with np.load(tmp_path / "o.npz") as o:
        np.testing.assert_allclose(o["y"], np.maximum(x @ w, 0), rtol=1e-5, atol=1e-5)


def test_nimble_tune_on_an_onnx_file(tmp_path):
    tiny_onnx(tmp_path / "m.onnx")
    rc = tune_cli.main(["--model", str(tmp_path / "m.onnx"), "--bucket", "n=1:4,5:64", "--trials", "2",
                        "--tuner", "random", "--db", str(tmp_path / "t.db"), "--no-progress"])
    assert rc == 0
    assert {str(r.bucket) for r in Database(tmp_path / "t.db").records()} == {"n=1..4", "n=5..64"}


def test_nimble_run_keeps_the_onnx_output_names_and_compiles_a_model_once(tmp_path, monkeypatch, nimble_env, capsys):
    nimble_env(NIMBLE_CACHE_DIR=str(tmp_path / "cache"))
    w = tiny_onnx(tmp_path / "m.onnx")
    x = np.random.default_rng(1).standard_normal((3, 32)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    args = [str(tmp_path / "m.onnx"), "--input", f"x={tmp_path / 'x.npy'}", "--output", str(tmp_path / "o.npz")]
    assert run_cli.main(args) == 0
    first = capsys.readouterr()
    assert "compiled" in first.err and first.out.startswith("y: shape (3, 16)")
    with np.load(tmp_path / "o.npz") as o:
        assert o.files == ["y"]  # the graph's output name, not out0
        np.testing.assert_allclose(o["y"], np.maximum(x @ w, 0), rtol=1e-5, atol=1e-5)
    calls = []
    import nimble.vm.compiler as compiler
    from nimble.errors import NimbleError

    def compile_stub(*a, **k):
        calls.append(a)
        raise NimbleError("compile was called")

    monkeypatch.setattr(compiler, "compile", compile_stub)
    assert run_cli.main(args) == 0  # the second run loads the cached executable
    assert calls == [] and "using the executable compiled before" in capsys.readouterr().err
    tiny_onnx(tmp_path / "m.onnx")  # the same bytes: still cached
    assert run_cli.main(args) == 0 and calls == []
    assert run_cli.main([*args, "--no-cache"]) == 1 and len(calls) == 1  # --no-cache compiles (here: the stub)
    assert "compile was called" in capsys.readouterr().err
