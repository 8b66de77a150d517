"""reduce / take / injective: each template's fallback config against the generic schedule (``schedules.auto``)
of the same operator computes, measured in one process (alternating, medians after warm-up), at one thread.

The generic kernel is what ``nimble.compile`` builds for a lone group without a template: the operators' te
computes under ``auto_schedule``. The template kernel is the fallback config compile uses without records
(every symbolic dim hinted at the representative of the fallback range holding the first dim's value).
Shapes: BERT-base (hidden 768, intermediate 3072, vocab 30522, 128 tokens), a 2x512 LSTM (vocab 10000,
35 steps, batch 1), a ResNet-style CNN (64 x 56 x 56 maps, 512 x 7 x 7 before the global pool).

    NIMBLE_NUM_THREADS=1 python scripts/bench_template_vs_generic.py [--quick] [--json OUT]
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from harness import cpu_name, median_time

from nimble import te
from nimble.codegen.build import build
from nimble.ops.compute import get_compute
from nimble.ops.registry import get_op
from nimble.schedules.auto import auto_schedule
from nimble.schedules.injective import injective_signature
from nimble.schedules.reduce import reduce_signature
from nimble.schedules.registry import get_template
from nimble.schedules.take import take_signature
from nimble.tuner.buckets import FALLBACK_RANGES

# (family, model, label, template signature, chain of (op, attrs), {dim: value}, input dtypes)
CASES = [
    ("reduce", "CNN", "mean(n,512,7,7; axes 2,3) n=1", reduce_signature(("n", 512, 7, 7), (2, 3), "mean"),
     [("mean", {"axis": (2, 3)})], {"n": 1}),
    ("reduce", "CNN", "mean(n,512,7,7; axes 2,3) n=8", reduce_signature(("n", 512, 7, 7), (2, 3), "mean"),
     [("mean", {"axis": (2, 3)})], {"n": 8}),
    ("reduce", "BERT", "mean(n,768; axis -1) n=128", reduce_signature(("n", 768), (1,), "mean"),
     [("mean", {"axis": (1,)})], {"n": 128}),
    ("reduce", "BERT", "sum(n,768; axis 0) n=128", reduce_signature(("n", 768), (0,), "sum"),
     [("sum", {"axis": (0,)})], {"n": 128}),
    ("reduce", "LSTM", "max(n,1,512; axis 0) n=35", reduce_signature(("n", 1, 512), (0,), "max"),
     [("max", {"axis": (0,)})], {"n": 35}),
    ("take", "BERT", "take(30522x768, (n,) int64) n=128", take_signature(30522, 768, ("n",), "int64"),
     [("take", {"axis": 0})], {"n": 128}),
    ("take", "BERT", "take(30522x768, (b,s) int64) 4x128", take_signature(30522, 768, ("b", "s"), "int64"),
     [("take", {"axis": 0})], {"b": 4, "s": 128}),
    ("take", "LSTM", "take(10000x512, (n,) int64) n=35", take_signature(10000, 512, ("n",), "int64"),
     [("take", {"axis": 0})], {"n": 35}),
    ("injective", "BERT", "gelu(n,3072) n=128", injective_signature([("n", 3072)], ["gelu"]),
     [("gelu", {})], {"n": 128}),
    ("injective", "BERT", "(n,768) + (768,) n=128", injective_signature([("n", 768), (768,)], ["add"]),
     [("add", {})], {"n": 128}),
    ("injective", "BERT", "(n,768) * (768,) + (768,) n=128",
     injective_signature([("n", 768), (768,), (768,)], ["multiply", "add"]),
     [("multiply", {}), ("add", {})], {"n": 128}),
    ("injective", "LSTM", "sigmoid(n,2048) n=1", injective_signature([("n", 2048)], ["sigmoid"]),
     [("sigmoid", {})], {"n": 1}),
    ("injective", "LSTM", "tanh(n,512) * (512,) n=35", injective_signature([("n", 512), (512,)], ["tanh", "multiply"]),
     [("tanh", {}), ("multiply", {})], {"n": 35}),
    ("injective", "CNN", "relu(n,64,56,56) n=1", injective_signature([("n", 64, 56, 56)], ["relu"]),
     [("relu", {})], {"n": 1}),
    ("injective", "CNN", "(n,64,56,56) + (64,1,1), relu n=4",
     injective_signature([("n", 64, 56, 56), (64, 1, 1)], ["add", "relu"]),
     [("add", {}), ("relu", {})], {"n": 4}),
]


def generic_kernel(sig, chain):
    """The operators' te computes over placeholders of ``sig``'s shapes (symbolic dims as vars), auto-scheduled."""
    names: dict = {}
    phs = [te.placeholder(tuple(names.setdefault(d, te.var(d)) if isinstance(d, str) else d for d in shape), dt,
                          f"in{i}") for i, (shape, dt) in enumerate(sig.args)]
    rest = iter(phs[1:])
    value = phs[0]
    for op, attrs in chain:
        full = get_op(op).full_attrs(attrs)
        n_args = len(get_op(op).arg_names)
        args = [value] + [next(rest) for _ in range(n_args - 1)]
        value = get_compute(op)(args, full, [])
    return build(auto_schedule([value]), phs + [value], name="generic")


def template_kernel(family, sig, dims):
    tmpl = get_template(family)
    first = next(iter(dims.values()))
    rep = next(r for lo, hi, r in FALLBACK_RANGES if lo <= first <= hi)
    cfg = tmpl.fallback(sig, tmpl.space(sig), {d: rep for d in sig.symbolic_dims})
    return tmpl.build(sig, cfg, name=family), cfg


def measure(quick: bool) -> list:
    rng = np.random.default_rng(0)
    rows = []
    for family, model, label, sig, chain, dims in CASES:
        tmpl = get_template(family)
        inputs = tmpl.random_inputs(sig, dims, rng) if hasattr(tmpl, "random_inputs") else None
        if inputs is None or family != "take":
            inputs = [rng.standard_normal(s).astype("float32") for s in sig.concrete(dims)]
        gen = generic_kernel(sig, chain)
        tk, cfg = template_kernel(family, sig, dims)
        want = gen(*inputs)
        got = tk(*inputs)
        got = got[0] if isinstance(got, (list, tuple)) else got
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        t_gen, t_tmpl = [], []
        for _ in range(3 if quick else 7):  # alternate, so drift hits both
            t_gen.append(median_time(lambda: gen(*inputs), 0.05 if quick else 0.2))
            t_tmpl.append(median_time(lambda: tk(*inputs), 0.05 if quick else 0.2))
        g, t = float(np.median(t_gen)), float(np.median(t_tmpl))
        rows.append({"family": family, "model": model, "case": label, "generic_us": g * 1e6, "template_us": t * 1e6,
                     "ratio": t / g, "config": cfg.to_json()})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args()
    rows = measure(args.quick)
    print(f"CPU: {cpu_name()}")
    print(f"{'family':10s} {'model':5s} {'case':40s} {'generic us':>11s} {'template us':>12s} {'tmpl/gen':>9s}")
    for r in rows:
        print(f"{r['family']:10s} {r['model']:5s} {r['case']:40s} {r['generic_us']:11.1f} {r['template_us']:12.1f} "
              f"{r['ratio']:9.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
