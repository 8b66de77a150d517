"""nimble at 2 threads against nimble at 1 thread, in one process, quiet and beside a process that keeps
one core busy: is a second thread ever a loss?

    python scripts/bench_threads.py                  # LSTM, Tree-LSTM, BERT-base seq 32; quiet, then busy
    python scripts/bench_threads.py --models tree --busy-only
    python scripts/bench_threads.py --models bert --bert-seqs 8,128

One executable per model (fallback configs: no records), run by the native VM; the thread count is a
run-time setting (``nimble.settings.set_num_threads``), so the two counts alternate within each round on
the same kernels and inputs, and a change in the machine's load hits both alike. Per round: one pass
over the workload's items at 1 thread and one at 2 (the order alternating); reported: medians over
rounds of each, and the median of the per-round ratios 2-thread / 1-thread (above 1: the second
thread costs time). ``--busy``: a spinning Python process holds one core, as on a shared server.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_models import cpu_name, model_spec  # noqa: E402


def workload(model: str, config, n_items: int, seq: int = 32):
    import numpy as np

    rng = np.random.default_rng(0)
    if model == "lstm":
        return [rng.standard_normal((int(n), config.input_size)).astype(np.float32)
                for n in rng.integers(5, 101, size=n_items)]
    if model == "tree":
        from nimble.models import tree_lstm

        return [tree_lstm.random_tree(rng, int(rng.integers(5, 61)), config.input_size) for _ in range(n_items)]
    return [rng.standard_normal((seq, config.hidden_size)).astype(np.float32) for _ in range(max(1, n_items // 5))]


def one_pass(vm, inputs: list) -> float:
    t0 = time.perf_counter()
    for args in inputs:
        vm.run(*args)
    return time.perf_counter() - t0


def measure(vm, inputs: list, rounds: int) -> dict:
    import nimble

    times = {1: [], 2: []}
    for counts in ((1, 2), (2, 1)):  # warm-up at both counts
        for t in counts:
            nimble.settings.set_num_threads(t)
            one_pass(vm, inputs)
    for r in range(rounds):
        for t in ((1, 2) if r % 2 == 0 else (2, 1)):
            nimble.settings.set_num_threads(t)
            times[t].append(one_pass(vm, inputs))
    ratios = [b / a for a, b in zip(times[1], times[2])]
    return {"t1": statistics.median(times[1]), "t2": statistics.median(times[2]),
            "ratio": statistics.median(ratios), "spread": (min(ratios), max(ratios))}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="lstm,tree,bert")
    p.add_argument("--items", type=int, default=10, help="items a pass (default 10; BERT takes a fifth)")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--bert-seqs", default="32", help="comma-separated BERT sequence lengths (default 32)")
    p.add_argument("--busy-only", action="store_true", help="only beside the busy process")
    args = p.parse_args(argv)
    import nimble
    from nimble.tuner import Database

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    built = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            module, config, _ = model_spec(model)
            mod = module.build_module(module.random_weights(config, 0), config)
            vm = nimble.VirtualMachine(nimble.compile(mod, records=Database(os.path.join(tmp, "none.db"))))
            prepare = (lambda item, m=module, c=config: m.to_inputs(item, c)) if model == "tree" else module.to_inputs
            seqs = [int(s) for s in args.bert_seqs.split(",")] if model == "bert" else [None]
            for seq in seqs:
                name = f"bert seq {seq}" if seq else model
                items = workload(model, config, args.items, seq or 32)
                built.append((name, vm, [prepare(x) for x in items]))
    print(f"CPU: {cpu_name()}; {os.cpu_count()} cores; nimble native VM, fallback configs; "
          f"{args.rounds} rounds, 1 and 2 threads alternating in one process\n")
    print("| model | load | 1 thread ms | 2 threads ms | 2 thr / 1 thr (median of rounds) | min..max |")
    print("|---|---|---|---|---|---|")
    for load in (("busy",) if args.busy_only else ("quiet", "busy")):
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load == "busy" else None
        try:
            if burner is not None:
                time.sleep(0.5)
            for model, vm, inputs in built:
                r = measure(vm, inputs, args.rounds)
                print(f"| {model} | {load} (load avg {os.getloadavg()[0]:.1f}) | {r['t1'] * 1e3:.1f} | "
                      f"{r['t2'] * 1e3:.1f} | {r['ratio']:.2f} | {r['spread'][0]:.2f}..{r['spread'][1]:.2f} |",
                      flush=True)
        finally:
            if burner is not None:
                burner.kill()
                burner.wait()


if __name__ == "__main__":
    main()
