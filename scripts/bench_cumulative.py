"""cumsum along a run-time axis: the O(n) loop-IR scan against the O(n^2) te masked reduction it replaced (the
same process, 1 thread), and numpy's cumsum.

    python scripts/bench_cumulative.py            # axis lengths 16, 1000, 100000 (the old kernel once at 100000)
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NIMBLE_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from harness import cpu_name, median_time  # noqa: E402

import nimble  # noqa: E402
from nimble import ir  # noqa: E402
from nimble import ops as nb  # noqa: E402
from nimble.ir import Any  # noqa: E402
from nimble.vm import cumulative_kernels  # noqa: E402


def _vm(scan: bool, op: str, rows: int):
    x = ir.var("x", shape=(rows, Any), dtype="float32")
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], getattr(nb, op)(x, axis=1)))
    real = cumulative_kernels.cumulative_group_kernel
    if not scan:  # the generic te path: the masked reduction of ops/cumulative.py
        cumulative_kernels.cumulative_group_kernel = lambda *a: None
    try:
        return nimble.VirtualMachine(nimble.compile(mod))
    finally:
        cumulative_kernels.cumulative_group_kernel = real


def _time(vm, x, once: bool) -> float:
    if once:
        vm.run(x)
        t0 = time.perf_counter()
        vm.run(x)
        return time.perf_counter() - t0
    return median_time(lambda: vm.run(x), 0.3)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", default="16,1000,100000")
    p.add_argument("--rows", type=int, default=4)
    args = p.parse_args()
    print(f"CPU: {cpu_name()}, threads: {os.environ['NIMBLE_NUM_THREADS']}, x: ({args.rows}, n) float32, axis 1")
    print(f"{'op':8} {'n':>7} {'te masked (ms)':>15} {'scan (ms)':>10} {'speed-up':>9} {'numpy (ms)':>11}")
    for op in ("cumsum", "cumprod"):
        old, new = _vm(False, op, args.rows), _vm(True, op, args.rows)
        for n in map(int, args.lengths.split(",")):
            x = np.random.default_rng(0).uniform(0.999, 1.001, (args.rows, n)).astype(np.float32)
            t_old, t_new = _time(old, x, n > 10_000), _time(new, x, False)
            t_np = median_time(lambda: getattr(np, op)(x, axis=1), 0.3)
            print(f"{op:8} {n:7d} {t_old * 1e3:15.3f} {t_new * 1e3:10.3f} {t_old / t_new:8.1f}x {t_np * 1e3:11.3f}")


if __name__ == "__main__":
    main()
