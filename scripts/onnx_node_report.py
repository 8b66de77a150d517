"""Run ONNX's backend node test cases through nimble (from_onnx -> compile -> VM) and report pass counts per op.

    python scripts/onnx_node_report.py                 # every case whose ops are all claimed
    python scripts/onnx_node_report.py --filter relu   # only cases whose name contains "relu"
"""
from __future__ import annotations

import argparse
import collections
import logging
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--filter", default="", help="only cases whose name contains this")
    parser.add_argument("--failures", type=int, default=1000, help="list at most this many failures")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    logging.getLogger("nimble").setLevel(logging.ERROR)

    from nimble.frontend.onnx import supported_ops
    from nimble.frontend.onnx_conformance import node_cases, run_case

    claimed = set(supported_ops())
    per_op = collections.defaultdict(collections.Counter)
    results = []
    for case in node_cases():
        if args.filter not in case.name:
            continue
        r = run_case(case, claimed)
        results.append(r)
        if r.status == "skip" and r.reason.startswith("unclaimed"):
            continue
        for op in r.ops:
            per_op[op][r.status] += 1
    print(f"{'op':<24} {'pass':>5} {'fail':>5} {'skip':>5}")
    for op in sorted(per_op):
        c = per_op[op]
        print(f"{op:<24} {c['pass']:>5} {c['fail']:>5} {c['skip']:>5}")
    status = collections.Counter(r.status for r in results)
    unclaimed = sum(r.status == "skip" and r.reason.startswith("unclaimed") for r in results)
    run = status["pass"] + status["fail"]
    print(f"\ncases: {len(results)}; with unclaimed ops: {unclaimed}; skipped (opset < 13 etc.): "
          f"{status['skip'] - unclaimed}; run: {run}")
    print(f"overall: {status['pass']} passed, {status['fail']} failed")
    frozen = sum(r.status == "pass" and r.reason == "frozen inputs" for r in results)
    print(f"(of the passes, {frozen} bound axes / shapes / weights fed as graph inputs to their test values)")
    failures = [r for r in results if r.status == "fail"]
    if failures:
        print("\nfailures:")
        for r in failures[: args.failures]:
            print(f"  {r.name}: {r.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
