"""Inline float32 math against libm: ns per element of a vectorized elementwise kernel over 2**20 floats in
[-10, 10], 1 thread.

    python scripts/bench_math.py                      # exp tanh atan tan sinh cosh sin cos asinh floor
    python scripts/bench_math.py --funcs atan,tan
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("NIMBLE_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from harness import cpu_name, median_time  # noqa: E402

import nimble  # noqa: E402
from nimble import te  # noqa: E402


def vector_kernel(name: str):
    """B[i] = name(A[i]) over a run-time length, 16 lanes."""
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    fn = getattr(te, name) if name in ("exp", "tanh") else (lambda a: te.math_call(name, a))
    B = te.compute((n,), lambda i: fn(A[i]), name="B")
    s = te.create_schedule(B)
    _, inner = s[B].split(s[B].axis[0], 16)
    s[B].vectorize(inner)
    return nimble.build(s, [A, B], name=f"bench_{name}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--funcs", default="exp,tanh,atan,tan,sinh,cosh,sin,cos,asinh,floor")
    args = p.parse_args()
    print(f"CPU: {cpu_name()}, threads: {os.environ['NIMBLE_NUM_THREADS']}, float32, 2**20 elements")
    x = np.random.default_rng(0).uniform(-10, 10, 1 << 20).astype(np.float32)
    out = np.empty_like(x)
    for name in args.funcs.split(","):
        k = vector_kernel(name)
        t = median_time(lambda: k(x, out), 0.3)
        print(f"{name:6} {t / x.size * 1e9:7.2f} ns/element")


if __name__ == "__main__":
    main()
