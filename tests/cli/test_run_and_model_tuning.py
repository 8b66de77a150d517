"""nimble-run on a saved executable; nimble-tune --model with --buckets-from a histogram."""
import json
import sys

import numpy as np

import nimble
from nimble import ir
from nimble import ops as nb
from nimble.cli import run as run_cli
from nimble.cli import tune as tune_cli
from nimble.ir import Any
from nimble import extract_tasks
from nimble.tuner import Database
from nimble.tuner.buckets import buckets_from_traffic


def build():
    """A tiny model: one dense + relu."""
    x = ir.var("x", shape=(Any, 32))
    w = ir.const(np.linspace(-1, 1, 16 * 32, dtype="float32").reshape(16, 32), name="w")
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], nb.relu(nb.dense(x, w))))
    return mod


def test_nimble_run_writes_outputs_and_a_histogram(tmp_path, capsys):
    exe = nimble.compile(build())
    exe.save(tmp_path / "m.nimble")
    x = np.random.default_rng(0).standard_normal((5, 32)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    rc = run_cli.main([str(tmp_path / "m.nimble"), "--input", f"x={tmp_path / 'x.npy'}", "--output",
                       str(tmp_path / "o.npz"), "--histogram", str(tmp_path / "h.json"), "--repeat", "2"])
    assert rc == 0
    with np.load(tmp_path / "o.npz") as o:
        np.testing.assert_allclose(o["out0"], ir.evaluate(build(), x), rtol=1e-5, atol=1e-5)
    hist = json.loads((tmp_path / "h.json").read_text())
    assert list(hist.values()) == [{"5": 2}]
    assert run_cli.main([str(tmp_path / "m.nimble")]) == 1  # missing input: a clear error, exit 1
    assert "missing inputs ['x']" in capsys.readouterr().err


def test_traffic_buckets_split_calls_evenly_and_isolate_spikes():
    flat = {n: 1 for n in range(8, 129)}
    spec = buckets_from_traffic("n", flat, 4)
    assert [b.hi for b in spec.buckets][-1] == 128 and len(spec.buckets) == 4
    spiky = {8: 50, 9: 1, 30: 1, 128: 40, 64: 1}
    assert 8 in [b.hi for b in buckets_from_traffic("n", spiky, 3).buckets]


def test_extract_tasks_deduplicates_layers():
    from nimble.models import bert

    cfg = bert.BertConfig(num_layers=3, hidden_size=64, num_heads=4, intermediate_size=128)
    tasks = extract_tasks(bert.build_module(bert.random_weights(cfg, 0), cfg), "llvm", "n=1:8,9:64")
    assert len(tasks) == 2 * len({t.workload_key.hash for t in tasks})
    assert {t.template for t in tasks} == {"dense", "layer_norm", "attention"}


def test_tune_a_model_with_buckets_from_a_histogram(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "tiny_model_for_tune.py").write_text(
        "import numpy as np\nfrom nimble import ir, ops as nb\nfrom nimble.ir import Any\n"
        "def build():\n    x = ir.var('x', shape=(Any, 32))\n    w = ir.const(np.ones((16, 32), 'float32'))\n"
        "    mod = ir.IRModule(); mod.define('main', ir.Function([x], nb.relu(nb.dense(x, w)))); return mod\n")
    (tmp_path / "h.json").write_text(json.dumps({"k0_dense_relu": {"3": 10, "20": 1, "40": 2}}))
    db = tmp_path / "t.db"
    rc = tune_cli.main(["--model", "tiny_model_for_tune:build", "--buckets-from", str(tmp_path / "h.json"),
                        "--max-buckets", "2", "--trials", "2", "--tuner", "random", "--db", str(db), "--no-progress"])
    assert rc == 0
    buckets = {str(r.bucket) for r in Database(db).records()}
    # n=3 is the first bucket's only traffic; the second's calls split in three shares: 20, 40, 40
    assert buckets == {"n=1..3", "n=4..40@20+40*2"}
    top = tmp_path / "top.db"
    rc = tune_cli.main(["--model", "tiny_model_for_tune:build", "--buckets-from", str(tmp_path / "h.json"),
                        "--max-buckets", "2", "--traffic-points", "0", "--trials", "2", "--tuner", "random",
                        "--db", str(top), "--no-progress"])
    assert rc == 0
    assert {str(r.bucket) for r in Database(top).records()} == {"n=1..3", "n=4..40"}
    sys.modules.pop("tiny_model_for_tune", None)
