"""Trials per minute: the local runner against the Ray runner on the same machine (Ray's overhead).

    PYTHONPATH=. python3 scripts/bench_ray_runner.py --trials 24

Tunes one dense task with the random tuner (same seed, so every run measures the same configs)
from a cold object cache, three ways: the local runner (builders on every core, one runner);
Ray with two nodes of one CPU each where only the head measures (the same schedule as local:
the figure is Ray's overhead); Ray with both nodes measuring (two measuring "hosts" on shared
cores). Prints trials/min and, for the local run, the mean build, measure and commit times per
config that ``docs/scale-out.md`` models N hosts with. ``--warm`` fills one object cache first
(untimed) and keeps it, so builds are cache hits and the difference is the runners' own cost.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from nimble.schedules.dense import dense_signature
from nimble.tuner.db import Database
from nimble.tuner.measure import LocalRunner, MeasureOptions, Measurer
from nimble.tuner.task import Task
from nimble.tuner.tune import tune


class TimedRunner(LocalRunner):
    """The local runner, timing each config's load + check + timing."""

    times: list[float] = []

    def run(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return super().run(*args, **kwargs)
        finally:
            self.times.append(time.perf_counter() - start)


class TimedCommits:
    """Wraps a measurer: times the tuning loop's commit of each result (``on_result``)."""

    def __init__(self, measurer):
        self.measurer, self.commits, self.builds = measurer, [], []

    def host(self, target):
        return self.measurer.host(target)

    def measure(self, task, configs, on_result=None):
        def timed(result):
            start = time.perf_counter()
            on_result(result)
            self.commits.append(time.perf_counter() - start)
            self.builds.append(result.build_s)

        return self.measurer.measure(task, configs, on_result=timed)


def run(label, measurer, task, trials, batch, url):
    timed = TimedCommits(measurer)
    db = Database(url)
    start = time.perf_counter()
    [summary] = tune(task, db, n_trials=trials, tuner="random", batch_size=batch, measurer=timed, progress=False)
    wall = time.perf_counter() - start
    indices = sorted(r.config_index for r in db.records())
    print(f"{label:<34} {summary.trials} trials in {wall:6.1f} s = {summary.trials / wall * 60:6.1f} trials/min; "
          f"best {summary.best_gflops or 0:.2f} GFLOP/s, {summary.errors} errors")
    return wall, timed, indices


def ray_round_trips(measurer, target: str, count: int = 40) -> str:
    """Ray's own cost per config: a no-op task shaped as a build, one shaped as a measurement, a node listing."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    noop = ray.remote(max_retries=0)(lambda: 0)  # pickled by value: workers need not import this script
    node, cpus = measurer.measuring_nodes(target)[0]
    shapes = {"build task": noop.options(num_cpus=1),
              "measure task": noop.options(num_cpus=cpus, resources={measurer.resource: 1},
                                           scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))}
    out = []
    for name, remote in shapes.items():
        ray.get(remote.remote())
        start = time.perf_counter()
        for _ in range(count):
            ray.get(remote.remote())
        out.append(f"{name} {(time.perf_counter() - start) / count * 1e3:.1f} ms")
    start = time.perf_counter()
    for _ in range(count):
        measurer.measuring_nodes(target)
    out.append(f"node listing {(time.perf_counter() - start) / count * 1e3:.1f} ms")
    return ", ".join(out)


def cold_cache():
    os.environ["NIMBLE_CACHE_DIR"] = tempfile.mkdtemp(prefix="nimble-bench-cache-")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=24)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--warm", action="store_true", help="time every run with one warm object cache")
    args = p.parse_args()
    os.environ.setdefault("NIMBLE_NUM_THREADS", "1")
    options = MeasureOptions(repeat=3, min_repeat_ms=50.0, timeout_s=30.0, n_parallel=2)
    task = Task("dense", dense_signature("n", 256, 256), "llvm", "n=17..32")
    folder = tempfile.mkdtemp(prefix="nimble-bench-db-")

    cold_cache()
    if args.warm:
        with Measurer(options) as local:
            run("(filling the object cache)", local, task, args.trials, args.batch, f"sqlite:///{folder}/fill.db")
    with Measurer(options, runner=TimedRunner(options)) as local:
        wall_local, timed, local_indices = run("local (2 builders, 1 runner)", local, task, args.trials, args.batch,
                                               f"sqlite:///{folder}/local.db")
    print(f"  per config: build {statistics.mean(timed.builds):.3f} s (one core), measure "
          f"{statistics.mean(TimedRunner.times):.3f} s (load + check + time), commit "
          f"{statistics.mean(timed.commits) * 1e3:.1f} ms")

    import ray
    from ray.cluster_utils import Cluster

    from nimble.tuner.ray_runner import MEASURE_RESOURCE, RayMeasurer, worker_runtime_env

    for label, second in (("ray, 2 nodes, head measures", {}),
                          ("ray, 2 nodes, both measure", {MEASURE_RESOURCE: 1})):
        if not args.warm:
            cold_cache()  # before the nodes start: their workers inherit it
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {MEASURE_RESOURCE: 1},
                                                                "include_dashboard": False})
        cluster.add_node(num_cpus=1, resources=second)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, runtime_env=worker_runtime_env(), log_to_driver=False)
        try:
            with RayMeasurer(options) as measurer:
                measurer.measuring_nodes(task.target)  # probe the nodes before the clock starts
                wall, _, indices = run(label, measurer, task, args.trials, args.batch,
                                       f"sqlite:///{folder}/{label.replace(' ', '_').replace(',', '')}.db")
                print(f"  same configs as local: {indices == local_indices}; overhead vs local "
                      f"{(wall / wall_local - 1) * 100:+.1f}% wall; measured on {dict(measurer.measured_on)}")
                print(f"  Ray round trips: {ray_round_trips(measurer, task.target)}")
        finally:
            ray.shutdown()
            cluster.shutdown()


if __name__ == "__main__":
    main()
