"""The tuning loop: records committed per batch, faulty configs recorded, resume, kill and resume."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import faulty_templates as faulty
from nimble.errors import TuningError
from nimble.schedules.dense import dense_signature
from nimble.tuner.db import Database
from nimble.tuner.fingerprint import host_fingerprint
from nimble.tuner.measure import MeasureOptions, Measurer
from nimble.tuner.task import Task
from nimble.tuner.tune import tune

OPTIONS = MeasureOptions(repeat=2, min_repeat_ms=1.0, timeout_s=3.0)


@pytest.fixture(scope="module")
def measurer():
    with Measurer(OPTIONS) as m:
        yield m


@pytest.fixture(scope="module")
def patient_measurer():
    with Measurer(MeasureOptions(repeat=2, min_repeat_ms=1.0, timeout_s=30.0)) as m:
        yield m


def dense_task(bucket="n=5..8"):
    return Task("dense", dense_signature("n", 64, 64), "llvm", bucket)


def test_crashing_hanging_and_wrong_configs_are_recorded_with_their_kind_and_tuning_completes(tmp_path, measurer):
    db = Database(tmp_path / "t.db")
    task = Task("test_faulty", faulty.faulty_signature(), "llvm", "n=1..64")
    [summary] = tune(task, db, n_trials=len(faulty.MODES), tuner="grid", batch_size=4, measurer=measurer,
                     progress=False)
    kinds = {r.config["mode"]: r.error_kind for r in db.records(workload=task.workload_key)}
    assert kinds == {"double": None, "double_vec": None, "crash": "crash", "hang": "timeout",
                     "wrong": "wrong_result", "raise_build": "build", "raise_run": "runtime", "hang_build": "timeout"}
    assert summary.trials == summary.new_trials == len(faulty.MODES)
    assert summary.errors == 6 and summary.error_kinds["timeout"] == 2
    assert summary.best_config["mode"] in ("double", "double_vec")
    assert summary.fallback_cost is not None


def test_records_carry_task_bucket_host_tuner_and_flops_and_best_is_no_worse_than_fallback(tmp_path):
    db = Database(tmp_path / "t.db")
    task = dense_task()
    # real templates on a loaded 2-core machine: a generous timeout, so only a true hang could fail
    [summary] = tune([task], db, n_trials=6, tuner="random", batch_size=3, seed=1, progress=False,
                     options=MeasureOptions(repeat=2, min_repeat_ms=1.0, timeout_s=60.0))
    records = db.records()
    assert len(records) == 6 == summary.trials and summary.errors == 0
    fallback = task.fallback()
    assert records[0].config_index == fallback.index and dict(records[0].config) == fallback.to_json()
    for r in records:
        assert r.workload == task.workload_key and r.bucket == "n=5..8" and r.target == "llvm"
        assert r.host == host_fingerprint("llvm") and r.tuner == "random" and r.flops == 2 * 8 * 64 * 64
        assert r.ok and len(r.costs) == 2
    assert summary.best_cost <= summary.fallback_cost
    assert summary.best_cost == min(r.mean_cost for r in records)
    assert summary.speedup >= 1.0 and summary.best_gflops > 0
    best = db.best_record(task.workload_key, "n=5..8", "llvm")
    assert best.config_index == summary.best_index


def test_resume_measures_only_the_remaining_trials_and_never_a_config_twice(tmp_path, patient_measurer):
    measurer = patient_measurer  # a build timed out at 3 s on a loaded 2-core Zen 1, leaving no fallback record
    db = Database(tmp_path / "t.db")
    task = dense_task("n=1..4")
    tune(task, db, n_trials=3, tuner="random", batch_size=2, measurer=measurer, progress=False)
    [summary] = tune(task, db, n_trials=7, tuner="random", batch_size=2, measurer=measurer, progress=False)
    indices = [r.config_index for r in db.records()]
    assert len(indices) == 7 == len(set(indices))
    assert summary.trials == 7 and summary.new_trials == 4
    assert summary.fallback_cost is not None  # known from the first run's record
    [again] = tune(task, db, n_trials=7, tuner="random", measurer=measurer, progress=False)
    assert again.new_trials == 0 and db.count() == 7


def test_early_stopping_ends_a_task_after_trials_without_improvement(tmp_path, measurer):
    db = Database(tmp_path / "t.db")
    task = Task("test_faulty", faulty.faulty_signature(), "llvm", "n=1..64")
    [summary] = tune(task, db, n_trials=8, tuner="grid", batch_size=1, early_stopping=1, measurer=measurer,
                     progress=False)
    assert summary.trials in (2, 3)  # stops at the first trial that does not improve: double_vec or crash


def test_tune_rejects_bad_arguments(tmp_path):
    db = Database(tmp_path / "t.db")
    with pytest.raises(TuningError, match="batch_size"):
        tune(dense_task(), db, n_trials=4, batch_size=0)
    with pytest.raises(TuningError, match="early_stopping"):
        tune(dense_task(), db, n_trials=4, early_stopping=0)


KILLED_RUN = textwrap.dedent("""
    import logging, sys
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    from nimble.schedules.dense import dense_signature
    from nimble.tuner.db import Database
    from nimble.tuner.measure import MeasureOptions
    from nimble.tuner.task import Task
    from nimble.tuner.tune import tune
    task = Task("dense", dense_signature("n", 64, 64), "llvm", "n=9..16")
    tune(task, Database(sys.argv[1]), n_trials=40, tuner="random", batch_size=2, progress=False,
         options=MeasureOptions(repeat=2, min_repeat_ms=1.0, timeout_s=10.0))
""")


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find the tuner's worker processes")
def test_a_tuner_killed_mid_run_loses_at_most_its_batch_in_flight_and_resumes_without_remeasuring(tmp_path, measurer):
    path = tmp_path / "killed.db"
    db = Database(path)
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # a SIGKILLed tuner cannot remove its nimble-measure-* folder
    child = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(path)], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while db.count() < 4 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    workers = _children(child.pid)
    child.send_signal(signal.SIGKILL)
    log = child.communicate()[1]
    assert child.returncode == -signal.SIGKILL, log
    before = db.records()
    committed = log.count("committed 2 records")
    assert 4 <= len(before) < 40
    assert len(before) % 2 == 0  # whole batches only
    assert len(before) >= 2 * committed  # every batch the tuner reported committed survived the kill
    assert workers and all(w != os.getpid() for w in workers)
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "worker processes outlived the killed tuner"

    task = Task("dense", dense_signature("n", 64, 64), "llvm", "n=9..16")
    [summary] = tune(task, db, n_trials=len(before) + 4, tuner="random", batch_size=2, measurer=measurer,
                     progress=False)
    after = db.records()
    assert summary.new_trials == 4 and len(after) == len(before) + 4
    assert len({r.config_index for r in after}) == len(after)  # no config measured twice
    assert {r.digest for r in before} <= {r.digest for r in after}
