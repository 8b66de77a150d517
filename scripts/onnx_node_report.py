"""Run ONNX's backend node test cases through nimble (from_onnx -> compile -> VM) and report pass counts.

    python scripts/onnx_node_report.py                 # every case whose ops are all claimed
    python scripts/onnx_node_report.py --filter relu   # only cases whose name contains "relu"
    python scripts/onnx_node_report.py --by op         # one row per op instead of per op family

"passed only frozen" counts cases that pass only after the runner bound the inputs that carry shapes / axes /
pads / repeats to their test values (constants); "passed" counts cases run with every input a run-time input.
Families are the frontend module that converts the op (math, nn, shape, index, control, recurrent, sequence);
the dtype is the first graph input's element type.
"""
from __future__ import annotations

import argparse
import collections
import logging
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

COLUMNS = ("run", "passed", "passed only frozen", "failed")


def _row(counts) -> str:
    return " ".join(f"{counts[c]:>{len(c)}}" for c in COLUMNS)


def _table(title: str, groups: dict) -> None:
    print(f"\n{title:<24} " + " ".join(COLUMNS))
    for key in sorted(groups):
        print(f"{key:<24} {_row(groups[key])}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--filter", default="", help="only cases whose name contains this")
    parser.add_argument("--by", choices=("family", "op"), default="family", help="rows of the first table")
    parser.add_argument("--failures", type=int, default=1000, help="list at most this many failures")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    logging.getLogger("nimble").setLevel(logging.ERROR)

    from nimble.frontend.onnx import supported_ops
    from nimble.frontend.onnx_conformance import (
        case_dtype,
        node_cases,
        op_family,
        run_case,
    )

    claimed = set(supported_ops())
    by_group = collections.defaultdict(collections.Counter)
    by_dtype = collections.defaultdict(collections.Counter)
    total = collections.Counter()
    results = []
    for case in node_cases():
        if args.filter not in case.name:
            continue
        r = run_case(case, claimed)
        results.append(r)
        if r.status == "skip":
            continue
        column = "failed" if r.status == "fail" else "passed only frozen" if r.reason == "frozen inputs" else "passed"
        group = op_family(r.ops) if args.by == "family" else r.ops[-1] if len(r.ops) == 1 else "+".join(r.ops)
        for counter in (by_group[group], by_dtype[case_dtype(case)], total):
            counter["run"] += 1
            counter[column] += 1
    _table("family" if args.by == "family" else "ops", by_group)
    _table("dtype", by_dtype)
    print(f"\n{'total':<24} {_row(total)}")
    skipped = collections.Counter(r.reason.split(" ")[0] for r in results if r.status == "skip")
    print(f"cases: {len(results)}; skipped: {sum(skipped.values())} "
          f"({sum(r.status == 'skip' and r.reason.startswith('unclaimed') for r in results)} with unclaimed ops)")
    if total["run"]:
        print(f"passed with every input a run-time input: {total['passed']}/{total['run']} "
              f"({100 * total['passed'] / total['run']:.1f}%)")
    failures = [r for r in results if r.status == "fail" or r.status == "skip" and not r.reason.startswith("unclaimed")]
    if failures:
        print("\nfailures and skips:")
        for r in failures[: args.failures]:
            print(f"  {r.name}: {r.status}: {r.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
