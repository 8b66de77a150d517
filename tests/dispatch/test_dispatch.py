"""Dispatch tables: each concrete shape reaches the kernel tuned for its bucket."""
import json
import logging

import numpy as np
import pytest

import nimble
from nimble import ir
from nimble import ops as nb
from nimble.ir import Any
from nimble.schedules.dense import dense_signature
from nimble.tuner import Database, TuningRecord, host_fingerprint
from nimble.tuner.fingerprint import HostFingerprint
from nimble.tuner.task import Task

pytestmark = pytest.mark.usefixtures("avx2_gemm")  # their tables name AVX2's tile heights

K, M = 32, 48


def model():
    rng = np.random.default_rng(0)
    x = ir.var("x", shape=(Any, K))
    w = ir.const(rng.standard_normal((M, K)).astype("float32"), name="w")
    b = ir.const(rng.standard_normal(M).astype("float32"), name="b")
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], nb.relu(nb.add(nb.dense(x, w), b))))
    return mod


def record(task, bucket, rows, cols, cost, host=None):
    space = task.space
    fb = task.fallback()
    cfg = space.config(**{**fb.values, "tile_rows": rows, "tile_cols": cols})
    return TuningRecord(task.workload_key, bucket, "llvm", host or host_fingerprint("llvm"), cfg.to_json(), cfg.index,
                        costs=(cost,), tuner="test")


@pytest.fixture(scope="module")
def two_bucket_db(tmp_path_factory):
    db = Database(tmp_path_factory.mktemp("db") / "records.db")
    task = Task("dense", dense_signature("n", K, M, bias=True, epilogue=["relu"], weight="const"), "llvm", "n=1..64")
    db.add_records([record(task, "n=1..64", 4, 16, 1e-5), record(task, "n=1..64", 2, 32, 5e-5),
                    record(task, "n=65..300", 6, 32, 2e-5)])
    return db


def dense_name(exe):
    return next(p.name for p in exe.packed if p.name.endswith("dense_add_relu"))


def test_two_buckets_and_a_residue_variant(two_bucket_db):
    mod = model()
    exe = nimble.compile(mod, records=two_bucket_db)
    name = dense_name(exe)
    small, large = exe.explain(name, (8, K)), exe.explain(name, (200, K))
    assert small["bucket"] == "n=1..64" and small["source"] == "record" and small["config"]["tile_rows"] == 4
    assert small["measured_cost_s"] == pytest.approx(1e-5)
    assert small["variant"].endswith("_r0")  # 8 % 4 == 0: the tail-free residue variant
    assert not exe.explain(name, (7, K))["variant"].endswith("_r0")
    assert large["bucket"] == "n=65..300" and large["config"]["tile_rows"] == 6
    outside = exe.explain(name, (301, K))
    assert outside["bucket"] == "n=65..300" and outside["inside"] is False
    vm = nimble.VirtualMachine(exe, backend="python")
    native = nimble.VirtualMachine(exe, backend="native")
    for n in range(1, 301):
        x = np.random.default_rng(n).standard_normal((n, K)).astype("float32")
        np.testing.assert_allclose(vm.run(x), ir.evaluate(mod, x), rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(native.run(x), vm.run(x))
    assert native.shape_histogram()[name] == {n: 1 for n in range(1, 301)}
    table = next(f for f in vm._library if getattr(f, "name", "") == name)
    by_bucket = {}  # a record's range split where another tile height computes fewer rows (refit)
    for r, calls in zip(table.entry.ranges, table.calls):
        by_bucket[r.label.split(" ")[0]] = by_bucket.get(r.label.split(" ")[0], 0) + calls
    assert by_bucket == {"n=1..64": 128, "n=65..300": 472}  # each n twice on the Python VM
    same = [n for n in range(1, 65) if exe.explain(name, (n, K))["variant"] == small["variant"]]
    assert 8 in same and all(n % 4 == 0 for n in same)
    assert table.variant_calls[small["variant"]] == 2 * len(same)
    assert table.outside == 0
    hist = vm.shape_histogram()[name]
    assert sum(hist.values()) == 600 and hist[1] == 2


def test_foreign_records_only_when_accepted(tmp_path, two_bucket_db):
    other = HostFingerprint(cpu_model="Some Other CPU", vendor="x", features=("avx2",), cores=64, threads=64,
                            target="llvm", feature_source="test")
    db = Database(tmp_path / "foreign.db")
    task = Task("dense", dense_signature("n", K, M, bias=True, epilogue=["relu"], weight="const"), "llvm", "n=1..64")
    db.add_records([record(task, "n=1..64", 3, 16, 1e-5, host=other)])
    path = tmp_path / "foreign.jsonl"
    db.export_jsonl(path)
    imported = Database(tmp_path / "imported.db")
    imported.import_jsonl(path)
    exe = nimble.compile(model(), records=imported)
    assert exe.explain(dense_name(exe), (8, K))["source"] == "fallback"
    exe = nimble.compile(model(), records=imported, accept_foreign=True)
    info = exe.explain(dense_name(exe), (8, K))
    assert info["source"] == "foreign" and info["config"]["tile_rows"] == 3


def test_empty_database_uses_fallbacks_and_says_so_once(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="nimble.vm"):
        exe = nimble.compile(model(), records=Database(tmp_path / "empty.db"))
    assert sum("fallback configs" in r.message for r in caplog.records) == 1
    info = exe.explain(dense_name(exe), (1, K))
    assert info["source"] == "fallback" and info["config"]["tile_rows"] == 1
    assert exe.explain(dense_name(exe), (100, K))["config"]["tile_rows"] == 6


def test_dispatch_table_survives_save_and_load(tmp_path, two_bucket_db):
    exe = nimble.compile(model(), records=two_bucket_db)
    exe.save(tmp_path / "m.nimble")
    loaded = nimble.Executable.load(tmp_path / "m.nimble")
    name = dense_name(loaded)
    assert loaded.explain(name, (200, K)) == exe.explain(name, (200, K))
    x = np.ones((70, K), "float32")
    np.testing.assert_array_equal(nimble.VirtualMachine(loaded).run(x), nimble.VirtualMachine(exe).run(x))


def test_shipped_records_for_this_cpu_are_found_without_a_database(tmp_path, monkeypatch, nimble_env):
    """Shipped records (the checkout's tuning_logs/*.jsonl) measured on this CPU are used when compile
    names no database, never those of the current directory; another thread count's only when
    foreign records are accepted."""
    import dataclasses

    here = host_fingerprint("llvm")
    other_threads = dataclasses.replace(here, threads=here.threads + 7)
    db = Database(tmp_path / "src.db")
    task = Task("dense", dense_signature("n", K, M, bias=True, epilogue=["relu"], weight="const"), "llvm", "n=1..64")
    db.add_records([record(task, "n=1..64", 5, 16, 3e-6, host=other_threads),
                    record(task, "n=65..300", 6, 32, 4e-6)])
    (tmp_path / "tuning_logs").mkdir()
    db.export_jsonl(tmp_path / "tuning_logs" / "llvm-this-cpu.jsonl")
    monkeypatch.chdir(tmp_path)
    nimble_env(NIMBLE_CACHE_DIR=str(tmp_path / "cache"))
    exe = nimble.compile(model())  # ./tuning_logs of the current directory is never read
    assert exe.explain(dense_name(exe), (100, K))["source"] == "fallback"
    import nimble.dispatch.build as dispatch_build

    monkeypatch.setattr(dispatch_build, "SHIPPED_RECORDS_DIR", tmp_path / "tuning_logs")  # as if shipped
    exe = nimble.compile(model())
    assert exe.explain(dense_name(exe), (100, K))["source"] == "record"  # this host: used
    small = exe.explain(dense_name(exe), (9, K))  # the other thread count's: not; the fallback of its size instead
    assert small["source"] == "fallback" and small["bucket"].startswith("n=5..32")  # refit per length inside
    exe = nimble.compile(model(), accept_foreign=True)
    info = exe.explain(dense_name(exe), (9, K))
    assert info["source"] == "same-cpu" and info["config"]["tile_rows"] == 5


def test_explain_says_how_the_picked_record_was_measured(tmp_path):
    """A record's cache mode reaches the dispatch table: explain prints it beside the measured cost, the dict
    form carries it, and it survives save/load; a record that does not say prints no mode."""
    import dataclasses

    task = Task("dense", dense_signature("n", K, M, bias=True, epilogue=["relu"], weight="const"), "llvm", "n=1..64")
    db = Database(tmp_path / "cache.db")
    db.add_records([dataclasses.replace(record(task, "n=1..64", 4, 16, 1e-5), cache="cold"),
                    record(task, "n=65..300", 6, 32, 2e-5)])
    exe = nimble.compile(model(), records=db)
    cold, unknown = exe.explain(dense_name(exe), (8, K)), exe.explain(dense_name(exe), (100, K))
    assert cold["source"] == "record" and cold["cache"] == "cold"
    assert "measured 0.01 ms (cold cache)" in str(cold)
    assert unknown["cache"] == "" and "cache)" not in str(unknown).splitlines()[1]
    assert "n=1..64" in str(unknown) and "(cold cache)" in str(unknown)  # the table's row for the cold bucket
    exe.save(tmp_path / "m.nimble")
    assert nimble.Executable.load(tmp_path / "m.nimble").explain(dense_name(exe), (8, K)) == cold


def test_a_bucket_measured_at_traffic_points_wins_over_its_top_edge_record(tmp_path):
    """Records of one range measured at the bucket's traffic points and at its top edge do not compare (a
    weighted mean over short lengths against a time at the longest): the traffic-point record keys the
    table whatever the costs, explain names its points, and a range without one keeps its top-edge record."""
    task = Task("dense", dense_signature("n", K, M, bias=True, epilogue=["relu"], weight="const"), "llvm", "n=1..64")
    db = Database(tmp_path / "traffic.db")
    db.add_records([record(task, "n=1..64", 2, 32, 1e-6),  # cheaper, but timed at n=64 only
                    record(task, "n=1..64@8*3+40", 4, 16, 5e-6),
                    record(task, "n=65..300", 6, 32, 2e-5)])
    exe = nimble.compile(model(), records=db)
    short = exe.explain(dense_name(exe), (8, K))
    assert short["bucket"] == "n=1..64@8*3+40" and short["config"]["tile_rows"] == 4
    assert short["measured_cost_s"] == pytest.approx(5e-6)
    assert exe.explain(dense_name(exe), (100, K))["config"]["tile_rows"] == 6
    x = np.random.default_rng(3).standard_normal((8, K)).astype("float32")
    np.testing.assert_allclose(nimble.VirtualMachine(exe).run(x), ir.evaluate(model(), x), rtol=1e-4, atol=1e-4)


def test_a_records_tile_height_is_refit_per_length_and_ranges_share_kernels(tmp_path):
    """A record of tile height 6 for n=1..64 runs 4-row tiles at n = 8 (6-row tiles would compute 12 rows) and
    its own config at n = 12 and 24; ranges with one config share one kernel; every n computes the model."""
    task = Task("dense", dense_signature("n", K, M, bias=True, epilogue=["relu"], weight="const"), "llvm", "n=1..64")
    db = Database(tmp_path / "refit.db")
    db.add_records([record(task, "n=1..64", 6, 16, 1e-5)])
    mod = model()
    exe = nimble.compile(mod, records=db)
    name = dense_name(exe)
    at8, at12 = exe.explain(name, (8, K)), exe.explain(name, (12, K))
    assert at8["source"] == "record" and at8["config"]["tile_rows"] == 4 and at8["measured_cost_s"] is None
    assert "tile_rows 4 at n=" in at8["bucket"] and at8["variant"].endswith("_r0")
    assert at12["bucket"] == "n=1..64" and at12["config"]["tile_rows"] == 6 and at12["measured_cost_s"] == 1e-5
    assert exe.explain(name, (24, K))["config"]["tile_rows"] == 6
    rows = str(at12).splitlines()[3:]  # the table: one row a range, the one serving n=12 starred
    assert len(rows) == len(next(p for p in exe.packed if p.name == name).ranges)
    assert [r[0] for r in rows].count("*") == 1 and rows[at12["range"]].startswith("* n=1..64 ")
    assert all(exe.explain(name, (n, K))["config"]["tile_cols"] == 16 for n in range(1, 65))
    entry = next(p for p in exe.packed if p.name == name)
    configs = {json.dumps(r.config, sort_keys=True) for r in entry.ranges}
    assert len({id(k) for k in entry.kernels}) == len(configs) < len(entry.ranges)
    vm, native = nimble.VirtualMachine(exe, backend="python"), nimble.VirtualMachine(exe)
    for n in range(0, 80):
        x = np.random.default_rng(n).standard_normal((n, K)).astype("float32")
        np.testing.assert_allclose(native.run(x), ir.evaluate(mod, x), rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(vm.run(x), native.run(x))
    exe.save(tmp_path / "m.nimble")
    loaded = nimble.VirtualMachine(nimble.Executable.load(tmp_path / "m.nimble"))
    x = np.random.default_rng(1).standard_normal((8, K)).astype("float32")
    np.testing.assert_array_equal(loaded.run(x), native.run(x))
