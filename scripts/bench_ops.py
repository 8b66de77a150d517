"""Operator template benchmarks (fallback configs) against numpy, measured in the same process, at 1 and 2 threads.

Each thread count runs in its own process (NIMBLE_NUM_THREADS and OPENBLAS_NUM_THREADS set
together); inside it nimble and numpy are timed alternately, medians of repeats after warm-up.
Memory-bound ops report GB/s of the bytes they move, against a numpy copy of the same bytes.

    python scripts/bench_ops.py            # full table
    python scripts/bench_ops.py --quick    # fewer repeats
"""
from __future__ import annotations

import argparse
import json
import math

import numpy as np

from harness import median_time, run_children


def np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_layer_norm(x, g, b, eps=1e-12):
    mu = x.mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis=-1, keepdims=True) + eps) * g + b


def np_gelu(x, b):
    from scipy.special import erf  # noqa: PLC0415

    v = x + b
    return v * 0.5 * (1 + erf(v / math.sqrt(2)))


def np_conv2d(x, w, pad):
    """im2col + one BLAS matmul."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    cols = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))  # n c oh ow kh kw
    cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
    return (cols @ w.reshape(o, -1).T).reshape(n, oh, ow, o).transpose(0, 3, 1, 2)


class _Float32Product:
    """numpy's float32 (BLAS) x @ w.T of the same shape as an integer product, the operands converted once."""

    def __init__(self):
        self.operands = None

    def __call__(self, a):
        if self.operands is None:
            self.operands = a[0].astype(np.float32), np.ascontiguousarray(a[1].astype(np.float32).T)
        return self.operands[0] @ self.operands[1]


def cases():
    """(label, template, signature, dims, numpy reference fn or None, unit)."""
    from nimble.schedules.dense_integer import dense_integer_signature
    from nimble.schedules.conv2d import conv2d_signature
    from nimble.schedules.injective import injective_signature
    from nimble.schedules.layer_norm import layer_norm_signature
    from nimble.schedules.reduce import reduce_signature
    from nimble.schedules.softmax import softmax_signature
    from nimble.schedules.take import take_signature

    try:
        import scipy.special  # noqa: F401
        gelu_ref = lambda a: np_gelu(*a)  # noqa: E731
    except ImportError:
        gelu_ref = None
    return [
        ("softmax (128, 768)", "softmax", softmax_signature(("n", 768)), {"n": 128}, lambda a: np_softmax(a[0]), "GB/s"),
        ("softmax (12*128, 128)", "softmax", softmax_signature(("n", "m")), {"n": 1536, "m": 128},
         lambda a: np_softmax(a[0]), "GB/s"),
        ("layer_norm (128, 768)", "layer_norm", layer_norm_signature(("n", 768), 1e-12), {"n": 128},
         lambda a: np_layer_norm(*a), "GB/s"),
        ("layer_norm (12*128, 128)", "layer_norm", layer_norm_signature(("n", "m"), 1e-12), {"n": 1536, "m": 128},
         lambda a: np_layer_norm(*a), "GB/s"),
        ("add+gelu (128, 3072) + (3072,)", "injective", injective_signature([("n", 3072), (3072,)], ["add", "gelu"]),
         {"n": 128}, gelu_ref, "GB/s"),
        ("transpose (12,128,64)->(128,12,64)", "injective",
         injective_signature([(12, "s", 64)], ["transpose"], perm=[1, 0, 2]), {"s": 128},
         lambda a: np.ascontiguousarray(a[0].transpose(1, 0, 2)), "GB/s"),
        ("reduce max (1024, 768) axis -1", "reduce", reduce_signature(("n", 768), (-1,), "max"), {"n": 1024},
         lambda a: a[0].max(axis=-1), "GB/s"),
        ("reduce sum (1024, 768) axis 0", "reduce", reduce_signature(("n", 768), (0,), "sum"), {"n": 1024},
         lambda a: a[0].sum(axis=0), "GB/s"),
        ("take (30522, 768)[4, 128]", "take", take_signature(30522, 768, ("b", "s")), {"b": 4, "s": 128},
         lambda a: np.take(a[0], a[1], axis=0), "GB/s"),
        ("dense_integer u8 (128, 768) x s8 (3072, 768) [numpy: float32 BLAS]", "dense_integer",
         dense_integer_signature("n", 768, 3072), {"n": 128}, _Float32Product(), "GOP/s"),
        ("dense_integer u8 (8, 3072) x s8 (768, 3072) [numpy: float32 BLAS]", "dense_integer",
         dense_integer_signature("n", 3072, 768), {"n": 8}, _Float32Product(), "GOP/s"),
        ("conv2d (1,64,56,56) 3x3 pad 1", "conv2d", conv2d_signature(("n", 64, "h", "w"), (64, 64, 3, 3), 1, 1),
         {"n": 1, "h": 56, "w": 56}, lambda a: np_conv2d(a[0], a[1], 1), "GFLOP/s"),
    ]


def run_one(quick: bool) -> list:
    from nimble.schedules.registry import get_template

    rng = np.random.default_rng(0)
    min_time = 0.1 if quick else 0.4
    rows = []
    for label, name, sig, dims, ref, unit in cases():
        t = get_template(name)
        cfg = t.fallback(sig, t.space(sig), dims)
        kernel = t.build(sig, cfg)
        inputs = t.random_inputs(sig, dims, rng)
        want = t.reference(sig, inputs)[0]
        out = np.empty_like(want)
        np.testing.assert_allclose(kernel(*inputs), want, rtol=1e-3, atol=1e-3)
        work = (t.flops(sig, dims) / 1e9) if unit in ("GFLOP/s", "GOP/s") else t.bytes_moved(sig, dims) / 1e9
        prepared = kernel.prepare_inputs(list(inputs))  # (a weight packed once, as a compiled model does)
        tk = median_time(lambda: kernel.kernel(*prepared, out), min_time)
        if unit == "GB/s":  # the floor: a numpy copy of the same number of bytes
            src = np.ones(t.bytes_moved(sig, dims) // 8, "float32")
            dst = np.empty_like(src)
            t_copy = median_time(lambda: np.copyto(dst, src), min_time)
        else:
            t_copy = None
        tn = median_time(lambda: ref(inputs), min_time) if ref is not None else None
        rows.append(dict(kernel=label, config=cfg.to_json(), ms=tk * 1e3, rate=work / tk, unit=unit,
                         numpy_ms=tn * 1e3 if tn else None, copy_rate=work / t_copy if t_copy else None))
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(run_one(args.quick)))
        return
    results = run_children(__file__, [int(x) for x in args.threads.split(",")], ["--quick"] if args.quick else [])
    print("| op (fallback config) | threads | nimble ms | nimble | numpy ms | nimble / numpy speed | numpy copy of the same bytes |")
    print("|---|---|---|---|---|---|---|")
    for t, rows in results.items():
        for r in rows:
            speed = f"{r['numpy_ms'] / r['ms']:.2f}x" if r["numpy_ms"] else "–"
            numpy_ms = f"{r['numpy_ms']:.3f}" if r["numpy_ms"] else "–"
            copy = f"{r['copy_rate']:.1f} GB/s ({r['rate'] / r['copy_rate']:.0%})" if r["copy_rate"] else "–"
            print(f"| {r['kernel']} | {t} | {r['ms']:.3f} | {r['rate']:.1f} {r['unit']} | {numpy_ms} | {speed} | {copy} |")


if __name__ == "__main__":
    main()
