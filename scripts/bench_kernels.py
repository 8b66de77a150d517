"""Kernel benchmarks against numpy, as ratios measured in the same process, at 1 and 2 threads.

Each thread count runs in its own process (NIMBLE_NUM_THREADS and OPENBLAS_NUM_THREADS set
together); inside it nimble and numpy are timed alternately, medians of repeats after warm-up.

    python scripts/bench_kernels.py            # full table
    python scripts/bench_kernels.py --quick    # smaller sizes, fewer repeats
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from harness import median_time, run_children

PEAK_GFLOPS_PER_CORE = 117.0  # measured: 12 independent 16-wide FMA chains, znver4 (shared/NOTES.md)
COPY_GBS = 25.0  # numpy copy on one thread


# ------------------------------------------------------------------------------- kernels


def elementwise(scheduled: bool):
    import nimble
    from nimble import te

    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.placeholder((n,), name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    s = te.create_schedule(C)
    if scheduled:
        (i,) = s[C].axis
        io, ii = s[C].split(i, 64)
        s[C].parallel(io)
        iio, iii = s[C].split(ii, 16)
        s[C].vectorize(iii)
    return nimble.build(s, [A, B, C], name="add_sched" if scheduled else "add_naive")


def matmul(scheduled: bool, k_dim: int, m_dim: int):
    import nimble
    from nimble import te

    n = te.var("n")
    A = te.placeholder((n, k_dim), name="A")
    W = te.placeholder((k_dim, m_dim), name="W")
    k = te.reduce_axis(k_dim, "k")
    C = te.compute((n, m_dim), lambda i, j: te.sum(A[i, k] * W[k, j], axis=k), name="C")
    s = te.create_schedule(C)
    if scheduled:  # register tile of 6 rows x 32 columns (2 zmm), accumulated over k in registers
        CL = s.cache_write(C)
        i, j = s[C].axis
        io, jo, ii, ji = s[C].tile(i, j, 6, 32)
        s[C].vectorize(ji)
        s[C].parallel(io)
        s[CL].compute_at(s[C], jo)
        ci, cj = s[CL].axis
        (ck,) = s[CL].reduce_axis
        s[CL].reorder(ck, ci, cj)
        s[CL].unroll(ci)
        s[CL].vectorize(cj)
    return nimble.build(s, [A, W, C], name="mm_sched" if scheduled else "mm_naive")


DENSE_SHAPES = [(1, 768, 768), (16, 768, 3072), (128, 768, 768), (128, 3072, 768), (512, 768, 3072), (1024, 1024, 1024)]
GRID = [dict(tile_rows=r, tile_cols=c, k_unroll=u) for r in (4, 6, 8) for c in (32, 64) for u in (1, 4)]


def _template_time(t, sig, cfg, inputs, min_time):
    kern = t.build(sig, cfg, name=t.name)
    ins = kern.prepare_inputs(inputs)  # a constant weight is packed once, outside the timing
    out = kern.kernel(*ins)
    np.testing.assert_allclose(out, t.reference(sig, inputs)[0], rtol=1e-3, atol=1e-3)
    return median_time(lambda: kern.kernel(*ins, out), min_time)


def run_templates(quick: bool) -> list:
    """Dense and batch_matmul templates: fallback and the best of a small grid, against numpy."""
    from nimble.schedules import Signature, get_template
    from nimble.schedules.dense import dense_signature

    rows, rng = [], np.random.default_rng(0)
    min_time = 0.1 if quick else 0.3
    t = get_template("dense")
    for n, k, m in (DENSE_SHAPES[:2] if quick else DENSE_SHAPES):
        sig = dense_signature("n", k, m, weight="const")
        space = t.space(sig)
        fb = t.fallback(sig, space, {"n": n})
        x, w = t.random_inputs(sig, {"n": n}, rng)
        tf = _template_time(t, sig, fb, [x, w], min_time)
        grid = [space.config(**{**fb.values, **g}) for g in (GRID[:2] if quick else GRID)]
        tb, best = min((_template_time(t, sig, c, [x, w], min_time), c.index) for c in grid + [fb])
        wt, out = w.T, np.empty((n, m), "float32")
        tn = median_time(lambda: np.matmul(x, wt, out=out), min_time)
        flop = 2 * n * k * m / 1e9
        rows.append(dict(kernel=f"dense ({n},{k},{m})", fallback=flop / tf, best=flop / tb, numpy=flop / tn,
                         best_config=space.get(best).to_json()))
    for n in ([128] if not quick else [64]):
        sig = Signature.make([((12, "n", 64), "float32"), ((12, 64, "n"), "float32")], transpose_b=False)
        bt = get_template("batch_matmul")
        space = bt.space(sig)
        fb = bt.fallback(sig, space, {"n": n})
        x, y = bt.random_inputs(sig, {"n": n}, rng)
        tf = _template_time(bt, sig, fb, [x, y], min_time)
        grid = [space.config(**{**fb.values, **g}) for g in (GRID[:2] if quick else GRID)]
        tb, best = min((_template_time(bt, sig, c, [x, y], min_time), c.index) for c in grid + [fb])
        out = np.empty((12, n, n), "float32")
        tn = median_time(lambda: np.matmul(x, y, out=out), min_time)
        flop = 2 * 12 * n * n * 64 / 1e9
        rows.append(dict(kernel=f"batch_matmul (12,{n},64)x(12,64,{n})", fallback=flop / tf, best=flop / tb,
                         numpy=flop / tn, best_config=space.get(best).to_json()))
    return rows


def run_symbolic_vs_static(quick: bool) -> list:
    """The same dense config compiled with n symbolic and with n fixed, at n = 128 and 127."""
    from nimble.schedules import get_template
    from nimble.schedules.dense import dense_signature

    rows, rng = [], np.random.default_rng(0)
    min_time = 0.1 if quick else 0.3
    t = get_template("dense")
    for n in (128, 127):
        sym = dense_signature("n", 768, 768, weight="const")
        fixed = dense_signature(n, 768, 768, weight="const")
        cfg = t.fallback(sym, t.space(sym), {"n": n})
        x, w = t.random_inputs(sym, {"n": n}, rng)
        ts = _template_time(t, sym, cfg, [x, w], min_time)
        tf = _template_time(t, fixed, t.space(fixed).from_json(cfg.to_json()), [x, w], min_time)
        rows.append(dict(n=n, symbolic_ms=ts * 1e3, static_ms=tf * 1e3))
    return rows


def run_one(quick: bool) -> list:
    rows = []
    rng = np.random.default_rng(0)
    min_time = 0.1 if quick else 0.4
    size = 1 << (20 if quick else 22)
    a, b = rng.standard_normal(size).astype("float32"), rng.standard_normal(size).astype("float32")
    out = np.empty_like(a)
    ref = lambda: np.add(a, b, out=out)  # noqa: E731
    for sched in (False, True):
        k = elementwise(sched)
        np.testing.assert_allclose(k(a, b), a + b, rtol=1e-6)
        t = median_time(lambda: k(a, b, out), min_time)
        tn = median_time(ref, min_time)
        gbs = 12 * size / 1e9
        rows.append(dict(kernel=f"add n={size} ({'vectorized+parallel' if sched else 'naive'})", ms=t * 1e3,
                         rate=gbs / t, unit="GB/s", numpy_ms=tn * 1e3, numpy_rate=gbs / tn))
    shapes = [(128, 256, 256)] if quick else [(256, 512, 512), (128, 768, 768), (127, 768, 768), (512, 768, 3072)]
    for n, kd, md in shapes:
        x, w = rng.standard_normal((n, kd)).astype("float32"), rng.standard_normal((kd, md)).astype("float32")
        c = np.empty((n, md), "float32")
        flop = 2 * n * kd * md / 1e9
        for sched in (False, True):
            if not sched and n * kd * md > 256 * 512 * 512:
                continue
            k = matmul(sched, kd, md)
            np.testing.assert_allclose(k(x, w), x @ w, rtol=1e-3, atol=1e-3)
            t = median_time(lambda: k(x, w, c), min_time)
            tn = median_time(lambda: np.matmul(x, w, out=c), min_time)
            rows.append(dict(kernel=f"matmul ({n},{kd})x({kd},{md}) ({'split+reorder+vectorize+parallel' if sched else 'naive'})",
                             ms=t * 1e3, rate=flop / t, unit="GFLOP/s", numpy_ms=tn * 1e3, numpy_rate=flop / tn))
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps({"kernels": run_one(args.quick), "templates": run_templates(args.quick),
                          "symbolic": run_symbolic_vs_static(args.quick)}))
        return
    results = run_children(__file__, [int(x) for x in args.threads.split(",")], ["--quick"] if args.quick else [])
    print("| kernel | threads | nimble ms | nimble | numpy ms | numpy | nimble / numpy speed | floor |")
    print("|---|---|---|---|---|---|---|---|")
    for t, res in results.items():
        for r in res["kernels"]:
            floor = PEAK_GFLOPS_PER_CORE * t if r["unit"] == "GFLOP/s" else COPY_GBS * t
            print(f"| {r['kernel']} | {t} | {r['ms']:.3f} | {r['rate']:.1f} {r['unit']} | {r['numpy_ms']:.3f} | "
                  f"{r['numpy_rate']:.1f} {r['unit']} | {r['numpy_ms'] / r['ms']:.2f}x | "
                  f"{r['rate'] / floor:.0%} of ~{floor:.0f} {r['unit']} |")
    print("\nTemplates (GFLOP/s; the weight packed once outside the timing, as for a model constant):\n")
    print("| workload | threads | fallback | best of grid | numpy | fallback / numpy | best / numpy | % of peak (best) | best config |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t, res in results.items():
        for r in res["templates"]:
            print(f"| {r['kernel']} | {t} | {r['fallback']:.1f} | {r['best']:.1f} | {r['numpy']:.1f} | "
                  f"{r['fallback'] / r['numpy']:.2f}x | {r['best'] / r['numpy']:.2f}x | "
                  f"{r['best'] / (PEAK_GFLOPS_PER_CORE * t):.0%} | {json.dumps(r['best_config'])} |")
    print("\nSymbolic n vs n fixed at compile time (dense 768x768, fallback config):\n")
    print("| n | threads | symbolic ms | static ms | symbolic / static |")
    print("|---|---|---|---|---|")
    for t, res in results.items():
        for r in res["symbolic"]:
            print(f"| {r['n']} | {t} | {r['symbolic_ms']:.3f} | {r['static_ms']:.3f} | {r['symbolic_ms'] / r['static_ms']:.2f} |")


if __name__ == "__main__":
    main()
