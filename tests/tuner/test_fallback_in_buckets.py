"""A bucket without a record runs the fallback of its size; the tuner measures those fallbacks first."""
import numpy as np
import pytest

import nimble
from nimble import ir
from nimble import ops as nb
from nimble.ir import Any
from nimble.schedules.dense import dense_signature
from nimble.tuner import Database, TuningRecord, host_fingerprint
from nimble.tuner.task import Task
from nimble.tuner.tune import fallback_candidates

pytestmark = pytest.mark.usefixtures("avx2_gemm")  # their tables name AVX2's tile heights

K, M = 32, 48
SIG = dense_signature("n", K, M, bias=True, epilogue=["relu"], weight="const")


def model():
    rng = np.random.default_rng(0)
    x = ir.var("x", shape=(Any, K))
    w = ir.const(rng.standard_normal((M, K)).astype("float32"), name="w")
    b = ir.const(rng.standard_normal(M).astype("float32"), name="b")
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], nb.relu(nb.add(nb.dense(x, w), b))))
    return mod


def record(bucket, rows, cols, cost):
    task = Task("dense", SIG, "llvm", bucket)
    cfg = task.space.config(**{**task.fallback().values, "tile_rows": rows, "tile_cols": cols})
    return TuningRecord(task.workload_key, bucket, "llvm", host_fingerprint("llvm"), cfg.to_json(), cfg.index,
                        costs=(cost,), tuner="test")


@pytest.mark.parametrize("bucket, rows", [("n=1", [1]), ("n=2..4", [4]), ("n=2..4@2", [4, 2]), ("n=5..16", [4]), ("n=1..16", [4, 1]),
                                          ("n=3..40", [6, 5, 4])])
def test_fallback_candidates_are_the_configs_the_model_runs_without_a_record(bucket, rows):
    got = [c.values["tile_rows"] for c in fallback_candidates(Task("dense", SIG, "llvm", bucket))]
    assert got == rows  # the one holding the representative first (then the task's own, then the rest)


def test_buckets_without_a_record_run_the_fallback_of_their_size_and_every_n_is_right(tmp_path):
    db = Database(tmp_path / "r.db")
    db.add_records([record("n=9..64", 8, 16, 1e-5)])  # nothing for 1..8: the fallback ranges 1, 2..4, 5..32 there
    mod = model()
    exe = nimble.compile(mod, records=db)
    name = next(p.name for p in exe.packed if p.name.endswith("dense_add_relu"))
    by_n = {n: exe.explain(name, (n, K)) for n in (1, 3, 6, 40, 200)}
    assert [by_n[n]["source"] for n in (1, 3, 6, 40)] == ["fallback"] * 3 + ["record"]
    # the fallback of 5..32 (4-row tiles at its representative 16) is refit per length: 6 rows at n = 6
    assert [by_n[n]["config"]["tile_rows"] for n in (1, 3, 6, 40, 200)] == [1, 4, 6, 8, 8]
    assert by_n[6]["bucket"] == "n=5..8 (tile_rows 6 at n=6)" and by_n[40]["bucket"] == "n=9..64"
    assert not by_n[200]["inside"]  # above every bucket: the nearest record, as before
    vm = nimble.VirtualMachine(exe)
    for n in (0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 64, 67):
        x = np.random.default_rng(n).standard_normal((n, K)).astype("float32")
        np.testing.assert_allclose(vm.run(x), ir.evaluate(mod, x), rtol=1e-4, atol=1e-4)
