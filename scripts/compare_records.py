"""A model's speed under several tuning databases, measured in one process, interleaved (issue 13).

    NIMBLE_NUM_THREADS=1 python scripts/compare_records.py top=/tmp/top.db traffic=/tmp/traffic.db

Each NAME=DATABASE compiles BERT-base once with that database's records; an empty database gives the
fallback configs, the reference column. Workloads: seq 8, 32 and 128, and two sets of 50 lengths drawn
uniformly from 8..128: the benchmark's own draw (seed 0, the draw ``tuning_logs/bert_mixed_histogram.json``
was recorded from) and a draw the tuning never saw (``--seed``). Prints ms per workload (medians of
interleaved passes, ``bench_models.time_systems``) and each database's speedup over the fallback.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_models import Workload, time_systems  # noqa: E402
from harness import cpu_name  # noqa: E402


def workloads(hidden: int, seed: int, items: int) -> list[Workload]:
    out = [Workload(f"seq {n}", [np.random.default_rng(n).standard_normal((n, hidden)).astype(np.float32)], False)
           for n in (8, 32, 128)]
    for label, s in (("mixed, seed 0 (the histogram's draw)", 0), (f"mixed, seed {seed} (unseen draw)", seed)):
        rng = np.random.default_rng(s)
        lengths = rng.integers(8, 129, size=50)[:items]
        out.append(Workload(f"{label}, {int(lengths.sum())} tokens",
                            [rng.standard_normal((int(n), hidden)).astype(np.float32) for n in lengths], True))
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("databases", nargs="+", metavar="NAME=DATABASE", help="a label and a records path or URL")
    p.add_argument("--seed", type=int, default=7, help="seed of the unseen mixed draw (default 7)")
    p.add_argument("--items", type=int, default=50, help="lengths per mixed set (default 50)")
    p.add_argument("--rounds", type=int, default=7, help="interleaved passes at least (default 7)")
    p.add_argument("--min-time", type=float, default=3.0, help="seconds per workload at least (default 3)")
    args = p.parse_args(argv)
    named = []
    for text in args.databases:
        name, sep, path = text.partition("=")
        if not sep or not name or not path:
            p.error(f"expected NAME=DATABASE, got {text!r}")
        if "://" not in path and not os.path.exists(path):
            p.error(f"{name}: no database at {path}")
        named.append((name, path))

    import nimble
    from nimble.settings import num_threads
    from nimble.models import bert
    from nimble.tuner import Database

    cfg = bert.BertConfig()
    mod = bert.build_module(bert.random_weights(cfg, 0), cfg)
    with tempfile.TemporaryDirectory() as tmp:
        systems = {}
        for name, path in [("fallback", os.path.join(tmp, "none.db")), *named]:
            vm = nimble.VirtualMachine(nimble.compile(mod, records=Database(path)))
            systems[name] = (lambda x, vm=vm: vm.run(x))
            print(f"compiled with {name}", file=sys.stderr, flush=True)
        rows = []
        for w in workloads(cfg.hidden_size, args.seed, args.items):
            ms, skipped = time_systems(systems, w, args.rounds, args.min_time)
            if skipped:
                raise SystemExit(f"{w.label}: outputs differ: {skipped}")
            rows.append((w.label, ms))
            print(f"{w.label}: " + ", ".join(f"{n} {v:.2f} ms" for n, v in ms.items()), file=sys.stderr, flush=True)
    names = [n for n, _ in named]
    print(f"CPU: {cpu_name()}; {os.cpu_count()} logical cores; {num_threads()} nimble thread(s)\n")
    print("| workload | fallback ms | " + " | ".join(f"{n} ms | {n} / fallback" for n in names) + " |")
    print("|---|---:|" + "---:|---:|" * len(names))
    for label, ms in rows:
        cells = [f"{ms['fallback']:.2f}"] + [x for n in names for x in (f"{ms[n]:.2f}", f"{ms['fallback'] / ms[n]:.2f}x")]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
