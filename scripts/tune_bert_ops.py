"""Tune BERT-base's operator set over sequence-length buckets; report wall time and speedups.

    NIMBLE_NUM_THREADS=2 python scripts/tune_bert_ops.py --trials 24 --db tuning_logs/llvm.db

Tasks: the dense layers of a BERT-base layer (q/k/v/out 768x768 + bias, intermediate 768->3072
+ bias + gelu, output 3072->768 + bias + residual), the two attention batch_matmuls, softmax
over (12, n, n) and layer_norm over (n, 768); buckets n in 1-8, 9-32, 33-128, 129-512 (each
tuned at its upper edge). Each task's fallback config is measured first, so the table shows
the tuned speedup over the fallback.
"""
from __future__ import annotations

import argparse
import time

from nimble.schedules import Signature
from nimble.schedules.dense import dense_signature
from nimble.schedules.layer_norm import layer_norm_signature
from nimble.schedules.softmax import softmax_signature
from nimble.tuner import Database, MeasureOptions, tune
from nimble.tuner.task import Task

BUCKETS = ("n=1..8", "n=9..32", "n=33..128", "n=129..512")


def bert_tasks(buckets=BUCKETS) -> list:
    sigs = [
        ("dense", dense_signature("n", 768, 768, bias=True, weight="const")),
        ("dense", dense_signature("n", 768, 3072, bias=True, epilogue=["gelu"], weight="const")),
        ("dense", dense_signature("n", 3072, 768, bias=True, epilogue=["residual"], weight="const")),
        ("batch_matmul", Signature.make([((12, "n", 64), "float32"), ((12, "n", 64), "float32")], transpose_b=True)),
        ("batch_matmul", Signature.make([((12, "n", "n"), "float32"), ((12, "n", 64), "float32")], transpose_b=False)),
        ("softmax", softmax_signature((12, "n", "n"))),
        ("layer_norm", layer_norm_signature(("n", 768), eps=1e-12)),
    ]
    return [Task(name, sig, "llvm", b) for b in buckets for name, sig in sigs]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=24, help="trials per task and bucket")
    p.add_argument("--db", default="tuning_logs/llvm.db")
    p.add_argument("--tuner", default="xgb")
    p.add_argument("--buckets", default=",".join(BUCKETS), help="comma-separated bucket keys")
    args = p.parse_args(argv)
    tasks = bert_tasks(tuple(b for b in args.buckets.split(",") if b))
    db = Database(args.db)
    t0 = time.perf_counter()
    summaries = tune(tasks, db, n_trials=args.trials, tuner=args.tuner, batch_size=8, progress=False,
                     options=MeasureOptions(number=1, repeat=5, min_repeat_ms=10, timeout_s=30))
    wall = time.perf_counter() - t0
    print(f"{len(tasks)} tasks x {args.trials} trials in {wall:.0f} s ({args.tuner})\n")
    print("| task | bucket | trials | errors | fallback GFLOP/s | tuned GFLOP/s | speedup | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for t, s in zip(tasks, summaries):
        fb = s.flops / s.fallback_cost / 1e9 if s.fallback_cost else float("nan")
        best = s.flops / s.best_cost / 1e9 if s.best_cost else float("nan")
        label = f"{t.template} {[list(a[0]) for a in t.signature.args]} {dict(t.signature.attrs).get('epilogue', '')}"
        print(f"| {label} | {s.bucket} | {s.trials} | {s.errors} | {fb:.1f} | {best:.1f} | "
              f"{(s.fallback_cost / s.best_cost) if s.best_cost and s.fallback_cost else float('nan'):.2f}x | "
              f"{s.wall_s:.0f} |")


if __name__ == "__main__":
    main()
