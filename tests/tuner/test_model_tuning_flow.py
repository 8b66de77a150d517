"""nimble-tune --model tunes the model's softmax and layer_norm groups, and compile uses the records."""
import sys

import numpy as np

import nimble
from nimble import ir
from nimble.cli import tune as tune_cli
from nimble.tuner import Database

MODEL = """
import numpy as np
from nimble import ir, ops as nb
from nimble.ir import Any

def build():
    x = ir.var('x', shape=(Any, 32))
    g = ir.const(np.linspace(0.5, 1.5, 32).astype('float32'))
    b = ir.const(np.linspace(-1, 1, 32).astype('float32'))
    mod = ir.IRModule()
    mod.define('main', ir.Function([x], nb.softmax(nb.layer_norm(x, g, b, axis=-1), axis=-1)))
    return mod
"""


def test_tune_a_model_then_compile_it_with_the_records_of_each_template(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "tiny_rowwise_model.py").write_text(MODEL)
    db = tmp_path / "t.db"
    try:
        rc = tune_cli.main(["--model", "tiny_rowwise_model:build", "--bucket", "n=1..16", "--trials", "2",
                            "--tuner", "random", "--db", str(db), "--repeat", "2", "--min-repeat-ms", "1",
                            "--parallel", "0", "--no-progress", "--no-busy-check"])
        mod = sys.modules["tiny_rowwise_model"].build()
    finally:
        sys.modules.pop("tiny_rowwise_model", None)
    assert rc == 0
    records = Database(db).records()
    assert {(r.workload.template, str(r.bucket)) for r in records} == {("layer_norm", "d0_0=1..16"),
                                                                    ("softmax", "d0_0=1..16")}
    exe = nimble.compile(mod, records=db)
    for template in ("layer_norm", "softmax"):
        name = next(p.name for p in exe.packed if p.name.endswith(template))
        why = exe.explain(name, (5, 32))
        best = min((r for r in records if r.workload.template == template), key=lambda r: r.mean_cost)
        assert why["source"] == "record" and why["config"] == dict(best.config)
    x = np.random.default_rng(0).standard_normal((11, 32)).astype("float32")
    np.testing.assert_allclose(nimble.VirtualMachine(exe).run(x), ir.evaluate(mod, x), rtol=1e-5, atol=1e-6)
