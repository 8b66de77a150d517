"""Run a model on a workload and write the shapes its dispatch tables met (for nimble-tune --buckets-from).

    python scripts/shape_histogram.py --model bert --out tuning_logs/bert_mixed_histogram.json
"""
from __future__ import annotations

import argparse
import json

import numpy as np

import nimble
from nimble.models import zoo


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="bert", choices=("bert",))
    p.add_argument("--count", type=int, default=50)
    p.add_argument("--lo", type=int, default=8)
    p.add_argument("--hi", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    vm = nimble.VirtualMachine(nimble.compile(zoo.bert_base()))
    rng = np.random.default_rng(args.seed)
    for n in rng.integers(args.lo, args.hi + 1, size=args.count):
        vm.run(rng.standard_normal((int(n), 768)).astype("float32"))
    hist = vm.shape_histogram()
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({k: {str(n): c for n, c in v.items()} for k, v in hist.items()}, f, indent=1)
    print(f"{sum(sum(v.values()) for v in hist.values())} dispatches over {len(hist)} tables -> {args.out}")


if __name__ == "__main__":
    main()
