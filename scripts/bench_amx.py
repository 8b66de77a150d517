"""dense_integer on AMX tiles (``dense_integer_amx``) against the VNNI template (``dense_integer``), same process.

BERT-base's int8 products (x uint8 n x k, weight int8 m x k, int32 out) at several row counts, each template with
its fallback config (refit to the row count), 1 and 2 threads (one child process each). Two settings:

- warm: one weight, called over and over (it stays in L2 / L3);
- cold: 24 different weights in turn (57 MB for 768 x 3072: from DRAM, as in a 12-layer model).

Interleaved rounds, medians. Floors printed: compute at the measured ``tdpbusd`` rate (``--peak``, default 6.7
int8 TOPS a core, a 16 x 16 x 64 product every ~16 cycles) and the weight bytes at the cold run's bandwidth.

    python scripts/bench_amx.py              # 1 and 2 threads
    python scripts/bench_amx.py --threads 1 --quick
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import cpu_name, median_time, run_children  # noqa: E402

SHAPES = [(1, 768, 3072), (8, 768, 768), (16, 768, 3072), (32, 768, 768), (32, 768, 3072), (32, 3072, 768),
          (128, 768, 768), (128, 768, 3072), (128, 3072, 768), (384, 768, 768)]
COLD_COPIES = 24


def child(quick: bool) -> dict:
    import numpy as np

    from nimble.codegen.build import aligned_empty
    from nimble.codegen.isa import host_amx_int8
    from nimble.schedules import get_template
    from nimble.schedules.dense_integer import dense_integer_signature

    if not host_amx_int8():
        return {"skipped": "this CPU (or its OS) has no AMX-INT8 tiles"}
    rng = np.random.default_rng(0)
    rounds = 3 if quick else 7
    rows = []
    for n, k, m in SHAPES[::2] if quick else SHAPES:
        sig = dense_integer_signature("n", k, m)
        x = rng.integers(0, 256, (n, k)).astype(np.uint8)
        zero = np.array(3, np.uint8)
        weights = [rng.integers(-128, 128, (m, k)).astype(np.int8) for _ in range(COLD_COPIES)]
        out = aligned_empty((n, m), "int32")
        calls = []
        for name in ("dense_integer_amx", "dense_integer"):
            t = get_template(name)
            space = t.space(sig)
            cfg = t.fallback(sig, space, {"n": n})
            cfg = t.refit(sig, space, cfg, "n", n) or cfg
            kernel = t.build(sig, cfg)
            inputs = [kernel.prepare_inputs([x, w, zero]) + [out] for w in weights]
            want = t.reference(sig, [x, weights[0], zero])[0]
            kernel.kernel(*inputs[0])
            np.testing.assert_array_equal(out, want)
            calls.append((kernel.kernel, inputs))
        times = {key: [[], []] for key in ("warm", "cold")}
        for _ in range(rounds):
            for i, (fn, inputs) in enumerate(calls):
                times["warm"][i].append(median_time(lambda: fn(*inputs[0]), 0.02, warmup=3))
                for args in inputs:
                    fn(*args)
                t0 = time.perf_counter()
                for args in inputs:
                    fn(*args)
                times["cold"][i].append((time.perf_counter() - t0) / len(inputs))
        med = {key: [statistics.median(v) for v in pair] for key, pair in times.items()}
        rows.append({"shape": [n, k, m], **{f"{key}_{side}_us": med[key][i] * 1e6 for key in med
                                            for i, side in enumerate(("amx", "vnni"))}})
    return {"rows": rows}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts, one child process each")
    p.add_argument("--quick", action="store_true", help="every other shape, fewer rounds")
    p.add_argument("--peak", type=float, default=6.7, help="int8 TOPS of one core's tiles (for the floor)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.quick)))
        return 0
    threads = [int(t) for t in args.threads.split(",")]
    results = run_children(__file__, threads, ["--quick"] if args.quick else [])
    print(f"CPU: {cpu_name()}\n")
    for t in threads:
        res = results[t]
        if "skipped" in res:
            print(f"{t} thread(s): skipped: {res['skipped']}")
            continue
        print(f"### {t} thread{'s' if t > 1 else ''} (median us; AMX speedup = VNNI time / AMX time)\n")
        print("| n x k x m | warm AMX | warm VNNI | speedup | AMX TOPS | compute floor | cold AMX | cold VNNI | speedup "
              "| cold AMX weight GB/s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in res["rows"]:
            n, k, m = r["shape"]
            ops = 2 * n * k * m
            floor = ops / (args.peak * 1e12 * t) * 1e6
            print(f"| {n} x {k} x {m} | {r['warm_amx_us']:.1f} | {r['warm_vnni_us']:.1f} | "
                  f"{r['warm_vnni_us'] / r['warm_amx_us']:.2f} | {ops / r['warm_amx_us'] / 1e6:.2f} | {floor:.1f} | "
                  f"{r['cold_amx_us']:.1f} | {r['cold_vnni_us']:.1f} | {r['cold_vnni_us'] / r['cold_amx_us']:.2f} | "
                  f"{k * m / r['cold_amx_us'] / 1e3:.1f} |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
