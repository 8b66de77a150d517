"""The Ray runner on a real local cluster: a head node and a second node standing for another host.

One cluster per module (both nodes offer the ``nimble_host`` measuring resource; the second also
``other_host``). The last test kills the second node mid-run.
"""
import threading
import time

import pytest

import faulty_templates as faulty
from server_db import missing
from nimble.errors import TuningError
from nimble.schedules.dense import dense_signature
from nimble.tuner.db import Database
from nimble.tuner.fingerprint import HostFingerprint
from nimble.tuner.measure import MeasureOptions
from nimble.tuner.task import Task
from nimble.tuner.tune import tune

pytestmark = pytest.mark.slow
# 10 s: a fresh measure worker imports the task's template inside the limit, slow when the suite runs
# on every core beside other work; the "hang" config costs the whole limit
FAST = MeasureOptions(repeat=2, min_repeat_ms=1.0, timeout_s=10.0, n_parallel=2)


@pytest.fixture(scope="module")
def cluster():
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError:
        missing("ray (pip install -e '.[distributed]')")
    from nimble.tuner.ray_runner import MEASURE_RESOURCE, worker_runtime_env

    # node deaths are noticed within ~2 s instead of Ray's default ~30 s
    system = {"health_check_period_ms": 500, "health_check_failure_threshold": 4, "health_check_timeout_ms": 500}
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {MEASURE_RESOURCE: 1}, "include_dashboard": False, "_system_config": system})
    second = cluster.add_node(num_cpus=1, resources={MEASURE_RESOURCE: 1, "other_host": 1})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, runtime_env=worker_runtime_env(), log_to_driver=False)
    try:
        yield cluster, second
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="module")
def measurer(cluster):
    from nimble.tuner.ray_runner import RayMeasurer

    with RayMeasurer(FAST) as m:
        yield m


def faulty_task(bucket="n=1..64"):
    return Task("test_faulty", faulty.faulty_signature(), "llvm", bucket)


def test_every_error_kind_is_measured_once_on_matching_nodes_and_both_hosts_measure(cluster, measurer):
    task = faulty_task()
    modes = ["double", "crash", "wrong", "raise_build", "raise_run", "double_vec", "hang"]
    committed = []
    results = measurer.measure(task, [task.space.config(mode=m) for m in modes], on_result=committed.append)
    kinds = {r.config["mode"]: r.error_kind for r in results}
    assert kinds == {"double": None, "crash": "crash", "wrong": "wrong_result", "raise_build": "build",
                     "raise_run": "runtime", "double_vec": None, "hang": "timeout"}
    assert sorted(r.config.index for r in committed) == sorted(r.config.index for r in results)  # each once
    assert len(measurer.measured_on) == 2  # both nodes measured
    assert all(r.build_s > 0 for r in results if r.ok)


def test_tune_with_the_ray_runner_commits_each_config_once(cluster, measurer, tmp_path):
    db = Database(tmp_path / "ray.db")
    task = Task("dense", dense_signature("n", 32, 32), "llvm", "n=5..8")
    [summary] = tune(task, db, n_trials=6, tuner="random", batch_size=3, measurer=measurer, progress=False)
    records = db.records()
    assert summary.trials == 6 and len(records) == 6 and len({r.config_index for r in records}) == 6
    assert summary.best_cost is not None and all(r.host == measurer.host("llvm") for r in records)
    assert all(r.user and "@" in r.user for r in records)


def test_no_matching_host_is_a_tuning_error_naming_the_fingerprint(cluster):
    from nimble.tuner.ray_runner import RayMeasurer

    other = HostFingerprint("Some Other CPU", "Vendor", ("neon",), 4, 4, "llvm")
    task = faulty_task()
    with RayMeasurer(FAST, host=other) as m, pytest.raises(TuningError, match="Some Other CPU"):
        m.measure(task, [task.space.config(mode="double")])


def test_nimble_tune_with_runner_ray_and_an_address(cluster, tmp_path, capsys):
    from nimble.cli import tune as tune_cli

    head, _ = cluster
    path = tmp_path / "cli.db"
    argv = ["--op", "dense", "--shape", "n,16,16", "--bucket", "n=5..8", "--trials", "3", "--tuner", "random",
            "--db", str(path), "--runner", "ray", "--address", head.address, "--no-progress", "--min-repeat-ms", "1"]
    assert tune_cli.main(argv) == 0, capsys.readouterr().err
    assert Database(path).count() == 3


def test_a_node_killed_mid_run_loses_only_its_in_flight_configs_and_each_config_is_recorded_once(cluster, tmp_path):
    from nimble.tuner.ray_runner import RayMeasurer

    head, second = cluster
    db = Database(tmp_path / "kill.db")
    task = Task("dense", dense_signature("n", 48, 48), "llvm", "n=9..16")
    slow = MeasureOptions(repeat=3, min_repeat_ms=100.0, timeout_s=30.0, n_parallel=2)  # ~0.4 s a measurement
    n_trials, outcome = 10, {}
    with RayMeasurer(slow) as m:
        def run():
            try:
                outcome["summary"] = tune(task, db, n_trials=n_trials, tuner="random", batch_size=5, measurer=m,
                                          progress=False)[0]
            except BaseException as exc:  # noqa: BLE001 - reported below
                outcome["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 240
        while (db.count() < 2 or second.node_id not in m.busy_nodes) and thread.is_alive() \
                and time.monotonic() < deadline:  # kill it while it measures a config
            time.sleep(0.02)
        head.remove_node(second, allow_graceful=False)
        thread.join(timeout=300)
        assert not thread.is_alive(), "tuning did not finish after the node was killed"
        assert "error" not in outcome, outcome.get("error")
        lost = m.lost_workers
    records = db.records()
    assert outcome["summary"].trials == n_trials
    assert len(records) == n_trials and len({r.config_index for r in records}) == n_trials
    assert lost >= 1, "the kill landed when the second node had nothing in flight"
    assert not [r for r in records if r.error_kind == "crash"], [r.error_message for r in records]
