"""Tuning curves: best GFLOP/s against trials for xgb with history, xgb cold and random, several seeds.

    python scripts/tuning_curves.py --templates dense,batch_matmul --trials 96 --seeds 0,1,2 --png curves.png

Per template, one target task of BERT-base (dense: the FFN's n x 768 -> 3072 with bias and GELU; batch_matmul:
the attention scores (12, n, 64) x (12, m, 64)^T), tuned in the bucket n = 65..128, each run into its own
temporary SQLite database:

* ``xgb-history``: the database starts with what a team's database would already hold: the template's other
  BERT-base workloads tuned in the same bucket and the target workload tuned in another bucket (n = 17..32),
  ``--history-trials`` each with xgb (made once per template, seed 100, before the runs). ``nimble.tuner``
  teaches them to the cost model (``tuner.history``);
* ``xgb``: an empty database (cold);
* ``random``: uniform random configs.

A curve is the best GFLOP/s after each trial the search picked, read back from the records in the order they
were committed (a batch of 8 at a time); the fallback configs every mode measures first are left out.
"Trials to 90%" is the first trial whose best reaches 90% of the best any run found for that template.
The thread count is ``NIMBLE_NUM_THREADS`` (default: all cores).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import cpu_name  # noqa: E402

from nimble.schedules.dense import dense_signature  # noqa: E402
from nimble.schedules.registry import Signature  # noqa: E402
from nimble.tuner import Database, MeasureOptions, tune  # noqa: E402
from nimble.tuner.records import CONFIRM_TUNER  # noqa: E402
from nimble.tuner.task import Task  # noqa: E402
from nimble.tuner.tune import fallback_candidates  # noqa: E402

CHECKPOINTS = (1, 8, 16, 32, 48, 64, 96, 128, 160, 200, 300, 400)
BUCKET, OTHER_BUCKET = "n=65..128", "n=17..32"
MODES = ("xgb-history", "xgb", "random")


def _bmm(x, y, transpose_b: bool) -> Signature:
    return Signature.make([(x, "float32"), (y, "float32")], transpose_b=transpose_b)


def tasks_of(template: str) -> tuple:
    """(target task, history tasks) of a template: BERT-base's workloads."""
    def both(sig):  # n and m track one length: the diagonal bucket
        return BUCKET if len(sig.symbolic_dims) == 1 else "m=65..128,n=65..128"

    if template == "dense":
        target = dense_signature("n", 768, 3072, bias=True, epilogue=("gelu",), weight="const")
        others = [dense_signature("n", 768, 768, bias=True, weight="const"),
                  dense_signature("n", 768, 768, bias=True, epilogue=("residual",), weight="const"),
                  dense_signature("n", 3072, 768, bias=True, epilogue=("residual",), weight="const")]
    elif template == "batch_matmul":
        target = _bmm((12, "n", 64), (12, "m", 64), True)
        others = [_bmm((12, "n", "m"), (12, "m", 64), False)]
    else:
        raise SystemExit(f"--templates: unknown {template!r}; expected dense, batch_matmul")
    history = [Task(template, s, "llvm", both(s)) for s in others]
    other_bucket = OTHER_BUCKET if len(target.symbolic_dims) == 1 else "m=17..32,n=17..32"
    history.append(Task(template, target, "llvm", other_bucket))
    return Task(template, target, "llvm", both(target)), history


def curve(db: Database, task: Task) -> list:
    """Best GFLOP/s after each config the search picked (the fallback configs every mode measures first are
    left out: they say nothing about the search)."""
    fallbacks = {c.index for c in fallback_candidates(task)}
    best, out = 0.0, []
    for r in db.records(workload=task.workload_key, bucket=task.bucket, target=task.target):
        if r.tuner == CONFIRM_TUNER or r.config_index in fallbacks:
            continue
        if r.error_kind is None and r.mean_cost:
            best = max(best, task.flops() / r.mean_cost / 1e9)
        out.append(best)
    return out


def run(template: str, trials: int, history_trials: int, seeds: list, modes: list, options, tmp: str) -> dict:
    target, history = tasks_of(template)
    history_db = os.path.join(tmp, f"{template}-history.db")
    if "xgb-history" in modes:
        t0 = time.perf_counter()
        tune(history, Database(history_db), n_trials=history_trials, tuner="xgb", options=options, seed=100,
             progress=False, confirm=0)
        print(f"{template}: history of {len(history)} tasks x {history_trials} trials in "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    curves, walls = {}, {}
    for seed in seeds:
        for mode in modes:  # interleaved per seed: a load change hits every mode alike
            path = os.path.join(tmp, f"{template}-{mode}-{seed}.db")
            db = Database(path)
            if mode == "xgb-history":
                db.merge(history_db)
            t0 = time.perf_counter()
            tune([target], db, n_trials=trials, tuner="random" if mode == "random" else "xgb", batch_size=8,
                 options=options, seed=seed, progress=False, confirm=0)
            walls[(mode, seed)] = time.perf_counter() - t0
            curves[(mode, seed)] = curve(db, target)
            print(f"{template} {mode} seed {seed}: best {max(curves[(mode, seed)]):.1f} GFLOP/s in "
                  f"{walls[(mode, seed)]:.0f} s", file=sys.stderr, flush=True)
    return {"task": str(target), "curves": curves, "walls": walls}


def reach(c: list, level: float):
    return next((i + 1 for i, v in enumerate(c) if v >= level), None)


def report(template: str, result: dict, trials: int) -> str:
    curves, walls = result["curves"], result["walls"]
    best = max(max(c) for c in curves.values() if c)
    marks = [c for c in CHECKPOINTS if c <= trials]
    lines = [f"### {template}: {result['task']}; best found {best:.1f} GFLOP/s", "",
             "| mode | seed | " + " | ".join(f"@{c}" for c in marks) + " | trials to 90% | wall s |",
             "|---|---|" + "---|" * len(marks) + "---|---|"]
    per_mode: dict = {}
    for (mode, seed), c in curves.items():
        cells = [f"{c[min(i, len(c)) - 1]:.1f}" if c else "-" for i in marks]
        r = reach(c, 0.9 * best)
        per_mode.setdefault(mode, []).append(r if r is not None else trials + 1)
        lines.append(f"| {mode} | {seed} | " + " | ".join(cells) + f" | {r if r else f'>{trials}'} | "
                     f"{walls[(mode, seed)]:.0f} |")
    lines += ["", "| mode | median trials to 90% of best |", "|---|---|"]
    for mode, rs in per_mode.items():
        med = statistics.median(rs)
        lines.append(f"| {mode} | {med:g}{' (some runs never reached it)' if max(rs) > trials else ''} |")
    return "\n".join(lines)


def plot(results: dict, png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    colors = {"xgb-history": "tab:green", "xgb": "tab:blue", "random": "tab:gray"}
    for ax, (template, result) in zip(axes[0], results.items()):
        for (mode, seed), c in result["curves"].items():
            ax.plot(range(1, len(c) + 1), c, color=colors[mode], alpha=0.8,
                    label=mode if seed == min(s for m, s in result["curves"] if m == mode) else None)
        ax.set_title(template)
        ax.set_xlabel("trials")
        ax.set_ylabel("best GFLOP/s")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--templates", default="dense,batch_matmul")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--trials", type=int, default=96)
    p.add_argument("--history-trials", type=int, default=48)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--cold-cache", action="store_true", help="measure with cold caches (MeasureOptions.cold_cache)")
    p.add_argument("--png", help="write the curves here")
    p.add_argument("--json", help="write the curves here as JSON")
    args = p.parse_args(argv)
    modes = args.modes.split(",")
    unknown = set(modes) - set(MODES)
    if unknown:
        p.error(f"--modes: unknown {sorted(unknown)}; expected {', '.join(MODES)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    options = MeasureOptions(number=1, repeat=3, min_repeat_ms=10, timeout_s=30, cold_cache=args.cold_cache)
    threads = os.environ.get("NIMBLE_NUM_THREADS", str(os.cpu_count()))
    print(f"{cpu_name()}, {threads} thread(s), {args.trials} trials per run, load average "
          f"{os.getloadavg()[0]:.1f} at start\n")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for template in args.templates.split(","):
            results[template] = run(template, args.trials, args.history_trials, seeds, modes, options, tmp)
            print(report(template, results[template], args.trials) + "\n", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.png:
        plot(results, args.png)
        print(f"wrote {args.png}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({t: {"task": r["task"], "curves": {f"{m}/{s}": c for (m, s), c in r["curves"].items()}}
                       for t, r in results.items()}, f)


if __name__ == "__main__":
    main()
