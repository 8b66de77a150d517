"""Tuning curves: best GFLOP/s against trials for the xgb and random tuners over several seeds.

    NIMBLE_NUM_THREADS=2 python scripts/tuning_curves.py --trials 200 --seeds 0,1,2

Each run tunes dense (n bucket tuned at 128, k=768, m=3072; the weight packed once, as a model
constant) into its own temporary SQLite database; the curve is read back from the records in
the order they were measured. numpy (OpenBLAS, same thread count) is timed in this process.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ.get("NIMBLE_NUM_THREADS", str(os.cpu_count())))
import statistics  # noqa: E402
import tempfile
import time

import numpy as np  # noqa: E402

from nimble.schedules.dense import dense_signature
from nimble.tuner import Database, MeasureOptions, tune
from nimble.tuner.task import Task

CHECKPOINTS = (1, 8, 16, 32, 48, 64, 96, 128, 160, 200, 300, 400)


def numpy_gflops(n: int, k: int, m: int) -> float:
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((n, k)).astype("float32"), rng.standard_normal((m, k)).astype("float32")
    wt, out = w.T, np.empty((n, m), "float32")
    for _ in range(3):
        np.matmul(x, wt, out=out)
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        np.matmul(x, wt, out=out)
        times.append(time.perf_counter() - t0)
    return 2 * n * k * m / statistics.median(times) / 1e9


def curve(db: Database, task: Task) -> list:
    best, out = 0.0, []
    for r in db.records(workload=task.workload_key, bucket=task.bucket, target=task.target):
        if r.error_kind is None and r.mean_cost:
            best = max(best, task.flops() / r.mean_cost / 1e9)
        out.append(best)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--tuners", default="xgb,random")
    p.add_argument("--shape", default="128,768,3072", help="n,k,m")
    args = p.parse_args(argv)
    n, k, m = (int(x) for x in args.shape.split(","))
    task = Task("dense", dense_signature("n", k, m, weight="const"), "llvm", f"n={n // 2 + 1}..{n}")
    options = MeasureOptions(number=1, repeat=5, min_repeat_ms=20, timeout_s=30)
    curves, walls = {}, {}
    for tuner in args.tuners.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            with tempfile.TemporaryDirectory() as d:
                db = Database(os.path.join(d, "curve.db"))
                t0 = time.perf_counter()
                tune([task], db, n_trials=args.trials, tuner=tuner, batch_size=8, options=options, seed=seed,
                     progress=False)
                walls[(tuner, seed)] = time.perf_counter() - t0
                curves[(tuner, seed)] = curve(db, task)
    ref = numpy_gflops(n, k, m)
    best = max(max(c) for c in curves.values())
    threads = os.environ.get("NIMBLE_NUM_THREADS", str(os.cpu_count()))
    print(f"dense n={n} k={k} m={m}, {threads} thread(s); numpy {ref:.1f} GFLOP/s; best found {best:.1f} "
          f"GFLOP/s = {best / ref:.2f}x numpy\n")
    marks = [c for c in CHECKPOINTS if c <= args.trials]
    print("| tuner | seed | " + " | ".join(f"best @{c}" for c in marks) + " | trials to 90% of best | wall s |")
    print("|---|---|" + "---|" * len(marks) + "---|---|")
    for (tuner, seed), c in curves.items():
        cells = [f"{c[min(i, len(c)) - 1]:.1f}" for i in marks]
        reach = next((i + 1 for i, v in enumerate(c) if v >= 0.9 * best), None)
        print(f"| {tuner} | {seed} | " + " | ".join(cells) + f" | {reach if reach else '-'} | {walls[(tuner, seed)]:.0f} |")


if __name__ == "__main__":
    main()
