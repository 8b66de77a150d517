"""Quick start: tune a small BERT encoder on this CPU, compile it with the records, compare.

    python3 scripts/quickstart.py                  # 90 s of tuning, 4-6 minutes in all on 2 busy cores
    python3 scripts/quickstart.py --budget 300     # longer tuning, better kernels (resumes the records)

Steps, each a library call: build a 2-layer BERT encoder (768 hidden, dynamic sequence length)
with seeded random weights; extract its tunable kernels for five buckets of the sequence length
(1, 2-4, 5-16, 17-32, 33-128); import the records shipped for other CPUs (``tuning_logs/*.jsonl``),
so the tuner on this CPU starts from the nearest ISA-compatible host's records (a warm start); tune for
``--budget`` seconds in all, spread over the tasks by their share of the model's time
(``nimble.tuner.budget``: FLOPs x bucket width, so the long buckets of the big kernels get most),
each bucket's fallback configs measured first, into the SQLite records database
(``tuning_logs/llvm.db`` by default, resumed on a second run); compile twice, with the records
and without (the templates' fallback configs; a bucket that got no tuning time runs them in
both); time both, and PyTorch / ONNX Runtime when they are installed, on several lengths; print
the table and write a latency-vs-length PNG when matplotlib is installed.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # peers.py, beside this script

import nimble  # noqa: E402
from nimble.cli.busy import probe_noise  # noqa: E402
from nimble.cli.db import _table  # noqa: E402
from nimble.models import bert  # noqa: E402
from nimble import extract_tasks  # noqa: E402
from nimble.tuner import Database, MeasureOptions, Measurer  # noqa: E402
from nimble.tuner.budget import task_weights, tune_budget  # noqa: E402

LENGTHS = (4, 8, 16, 32, 64, 128)
BUCKETS = "n=1,2:4,5:16,17:32,33:128"  # the dispatch fallback changes tiles at 1, 2..4, 5..32 and >= 33


def time_systems(systems: dict, x, rounds: int = 25, min_time: float = 0.03) -> dict:
    """Seconds per call of each system on ``x`` in each of ``rounds`` rounds (a list per system).

    A round times every system one after the other (about ``min_time`` seconds each; each round
    starts with the next system), so a burst of load elsewhere hits the systems of a round alike:
    compare them by the median over rounds, and two systems by the median of their per-round ratios.
    """
    if not systems:
        return {}
    calls = {}
    for name, run in systems.items():  # warm up, and size a round to about min_time
        run(x)
        t0 = time.perf_counter()
        run(x)
        calls[name] = max(1, int(min_time / max(time.perf_counter() - t0, 1e-6)))
    times: dict = {name: [] for name in systems}
    order = list(systems.items())
    for r in range(rounds):
        for name, run in order[r % len(order):] + order[:r % len(order)]:  # each goes first in turn
            t0 = time.perf_counter()
            for _ in range(calls[name]):
                run(x)
            times[name].append((time.perf_counter() - t0) / calls[name])
    return times


def seed_with_shipped_records(db, tasks) -> str:
    """Import the records shipped in the checkout's ``tuning_logs/*.jsonl`` (measured on other CPUs):
    on this CPU the tuner then starts from the nearest host's records (its cost model trained on them,
    their best configs measured first beside the fallback) instead of random configs. Returns a line
    saying what was imported, or "" when nothing was shipped."""
    from nimble.dispatch.build import SHIPPED_RECORDS_DIR
    from nimble.tuner import host_fingerprint
    from nimble.tuner.nearest_host import rank_hosts

    files = sorted(SHIPPED_RECORDS_DIR.glob("*.jsonl")) if SHIPPED_RECORDS_DIR.is_dir() else []
    added = sum(db.import_jsonl(f).added for f in files)
    keys = {t.workload_key.hash for t in tasks}
    hosts = {r.host for r in db.iter_records(target="llvm", include_errors=False) if r.workload.hash in keys}
    ranked = rank_hosts(host_fingerprint("llvm"), hosts)
    if not ranked:
        return ""
    names = ", ".join(f.name for f in files)
    usable = [m for m in ranked if m.compatible]
    if not usable:
        return (f"   {added} shipped records imported from {names}; none is a start on this CPU (nearest: "
                f"{ranked[0].describe()}): the tuner starts from the fallback configs")
    return f"   {added} shipped records imported from {names}; the tuner starts from the nearest host's: {usable[0].describe()}"



def peer_runners(weights: dict, cfg, threads: int, folder: str) -> dict:
    """PyTorch eager and ONNX Runtime on the same weights, where installed."""
    import peers

    systems = {}
    torch_run = peers.torch_runner("bert", weights, cfg)
    if not isinstance(torch_run, peers.Skipped):
        import torch

        torch.set_num_threads(threads)
        systems["PyTorch"] = torch_run
    ort_run = peers.ort_runner("bert", peers.export_onnx("bert", weights, cfg, folder), threads)
    if not isinstance(ort_run, peers.Skipped):
        systems["ONNX Runtime"] = ort_run
    return systems


def plot(path: str, lengths, latencies: dict, title: str) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is not installed (pip install -e '.[plot]')"
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, ms in latencies.items():
        ax.plot(lengths, ms, marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"wrote {path}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=90.0,
                   help="seconds of tuning in all (default 90; it ends within one measurement batch of it)")
    p.add_argument("--db", default="tuning_logs/llvm.db", help="records database (default tuning_logs/llvm.db)")
    p.add_argument("--layers", type=int, default=2, help="encoder layers (default 2)")
    p.add_argument("--png", default="quickstart.png", help="latency-vs-length plot (default quickstart.png)")
    p.add_argument("--no-peers", action="store_true", help="do not time PyTorch / ONNX Runtime")
    args = p.parse_args(argv)
    threads = int(os.environ.get("NIMBLE_NUM_THREADS") or os.cpu_count() or 1)
    t_start = time.perf_counter()

    cfg = bert.BertConfig(num_layers=args.layers)
    weights = bert.random_weights(cfg, seed=0)
    mod = bert.build_module(weights, cfg)
    tasks = extract_tasks(mod, "llvm", BUCKETS, templates={"dense"})
    db = Database(args.db)
    seeded = seed_with_shipped_records(db, tasks)
    if seeded:
        print(seeded, flush=True)
    before = probe_noise()
    if before.busy:
        print(f"warning: this machine looks busy ({before.describe()}): tuning picks configs by noisy timings "
              "and the comparison below is unreliable; run again when it is idle", flush=True)
    kernels = len({t.workload_key.hash for t in tasks})
    print(f"1/3 tuning {len(tasks)} tasks ({kernels} kernels x {len(tasks) // max(kernels, 1)} buckets of the "
          f"sequence length) for {args.budget:.0f} s into {db.url}, by each task's share of the model's time",
          flush=True)
    # cold cache: the model's weights (57 MB) do not stay in cache between two uses of a layer, so each kernel is
    # timed with its arguments out of cache, the regime it runs in inside the model
    options = MeasureOptions(number=1, repeat=3, min_repeat_ms=20, timeout_s=20, cold_cache=True)
    shares = task_weights(tasks)
    t0 = time.perf_counter()
    with Measurer(options) as measurer:
        summaries = tune_budget(tasks, db, args.budget, measurer, batch_size=8, max_trials=64, weights=shares)
    tuned_s = time.perf_counter() - t0
    rows = [(f"{s.workload.template} #{s.workload.short_hash}", s.bucket, f"{share:.1%}", s.trials,
             f"{s.fallback_gflops:.1f}" if s.fallback_gflops else "-", f"{s.best_gflops:.1f}" if s.best_gflops else "-",
             f"{s.speedup:.2f}x" if s.speedup else "-") for s, share in zip(summaries, shares)]
    print(_table(("kernel", "bucket", "share", "trials", "fallback GFLOP/s", "best GFLOP/s", "speedup"), rows))
    untuned = sum(1 for s in summaries if not s.trials)
    print(f"tuned in {tuned_s:.0f} s (budget {args.budget:.0f} s)"
          + (f"; {untuned} tasks with a small share got no time and run their fallback configs" if untuned else "")
          + "\n", flush=True)

    print("2/3 compiling with the records and without (fallback configs)", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        tuned = nimble.compile(mod, records=db)
        fallback = nimble.compile(mod, records=Database(os.path.join(folder, "empty.db")))
        dense = [p.name for p in tuned.packed if "dense" in p.name]  # show one that has records, at n=100
        name = max(dense, key=lambda nm: tuned.explain(nm, 100).get("source") == "record")
        print(f"   {tuned.explain(name, 100)}\n", flush=True)
        systems = {"nimble tuned": nimble.VirtualMachine(tuned).run,
                   "nimble fallback": nimble.VirtualMachine(fallback).run}
        if not args.no_peers:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                systems.update(peer_runners(weights, cfg, threads, folder))
        print(f"3/3 timing {', '.join(systems)} on lengths {', '.join(map(str, LENGTHS))} ({threads} threads)",
              flush=True)
        rng = np.random.default_rng(0)
        latencies: dict = {k: [] for k in systems}
        ratios = []  # per length: the median over rounds of fallback / tuned, timed in the same round
        for n in LENGTHS:
            x = rng.standard_normal((n, cfg.hidden_size)).astype("float32")
            want = np.asarray(systems["nimble fallback"](x))
            got = np.asarray(systems["nimble tuned"](x))
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
            # the two nimble models in rounds of their own: peers' thread pools spin on after a call and
            # would slow whichever system is timed next
            times = time_systems({k: systems[k] for k in ("nimble tuned", "nimble fallback")}, x)
            times.update(time_systems({k: v for k, v in systems.items() if not k.startswith("nimble")}, x))
            for k, ts in times.items():
                latencies[k].append(float(np.median(ts)) * 1e3)
            ratios.append(float(np.median(np.array(times["nimble fallback"]) / np.array(times["nimble tuned"]))))
    headers = ("length", *(f"{k} ms" for k in systems), "tuned vs fallback")
    rows = [(n, *(f"{latencies[k][i]:.3f}" for k in systems), f"{ratios[i]:.2f}x {'faster' if ratios[i] >= 1 else 'slower'}")
            for i, n in enumerate(LENGTHS)]
    print("median of 25 rounds; tuned vs fallback: the median of their per-round ratios (fallback / tuned)")
    print(_table(headers, rows))
    total = {k: sum(v) for k, v in latencies.items()}
    ratio = total["nimble fallback"] / total["nimble tuned"]
    print(f"\nover all lengths: tuned {total['nimble tuned']:.2f} ms vs fallback {total['nimble fallback']:.2f} ms: "
          f"the tuned model is {ratio:.2f}x {'faster' if ratio >= 1 else 'SLOWER'} than its fallback "
          f"(fallback / tuned = {ratio:.3f})")
    after = probe_noise()
    if before.busy or after.busy:
        print(f"note: the machine was busy (before tuning: {before.describe()}; after timing: {after.describe()}); "
              "the numbers above are not this CPU's")
    print(plot(args.png, LENGTHS, latencies, f"{args.layers}-layer BERT encoder (768 hidden), {threads} threads"))
    print(f"quick start done in {time.perf_counter() - t_start:.0f} s; records in {args.db} "
          "(run again to tune further; nimble-db list shows them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
