"""Cost of the default bounds checks on gather kernels: checked vs ``bounds_checks=False``.

    python scripts/bounds_check_cost.py [--repeat 200]

Prints one row per kernel and size: median microseconds with and without the checks, and the ratio.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import nimble
from nimble import te
from nimble.schedules.registry import get_template
from nimble.schedules.take import take_signature


def _median_us(fns, args, repeat: int) -> list:
    """Median microseconds of each of ``fns``, timed in alternation (the machine's noise hits all alike)."""
    for fn in fns:
        fn(*args)
    times = [[] for _ in fns]
    for _ in range(repeat):
        for t, fn in zip(times, fns):
            t0 = time.perf_counter()
            fn(*args)
            t.append(time.perf_counter() - t0)
    return [float(np.median(t)) * 1e6 for t in times]


def hand_gather(checks: bool):
    n, m, k = te.var("n"), te.var("m"), te.var("k")
    D = te.placeholder((n, m), "float32", name="D")
    I = te.placeholder((k,), "int64", name="I")
    out = te.compute((k, m), lambda i, j: D[I[i], j], name="out")
    return nimble.build(out, [D, I, out], name="gather", bounds_checks=checks)


def take_template(checks: bool):
    sig = take_signature("v", 768, ("b", "s"), "int64")
    t = get_template("take")
    space = t.space(sig)
    inst = t.instantiate(sig, t.fallback(sig, space))
    return nimble.build(inst.schedule, inst.args, name="take", bounds_checks=checks)


def checks_in_model(layers: int) -> tuple:
    """(stages, stages given a default bounds check) over every kernel ``nimble.compile`` builds for
    BERT-base with ``layers`` layers (every layer has the same kernels)."""
    import importlib

    from nimble.models import bert

    lowering = importlib.import_module("nimble.tir.lower")  # the module (the package re-exports the function)

    seen = {"stages": 0, "checked": 0}
    original = lowering.index_checks

    def counting(stage_name, body):
        found = original(stage_name, body)
        seen["stages"] += 1
        seen["checked"] += bool(found)
        return found

    lowering.index_checks = counting
    try:
        cfg = bert.BertConfig(num_layers=layers)
        nimble.compile(bert.build_module(bert.random_weights(cfg, 0), cfg))
    finally:
        lowering.index_checks = original
    return seen["stages"], seen["checked"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--bert-layers", type=int, default=0, help="also count the checks BERT-base's kernels get")
    args = ap.parse_args(argv)
    if args.bert_layers:
        stages, checked = checks_in_model(args.bert_layers)
        print(f"BERT-base ({args.bert_layers} layers): {checked} of {stages} lowered stages carry a default bounds check")
    rng = np.random.default_rng(0)
    print(f"{'kernel':<14} {'rows x dim':>12} {'checked us':>11} {'unchecked us':>13} {'ratio':>6}")
    for label, make, shapes in [("te gather", hand_gather, [(30522, 768, 8), (30522, 768, 128), (1000, 64, 4096)]),
                                ("take template", take_template, [(30522, 768, 8), (30522, 768, 128)])]:
        on, off = make(True), make(False)
        for vocab, dim, k in shapes:
            table = rng.standard_normal((vocab, dim)).astype("float32")
            idx = rng.integers(0, vocab, k).astype("int64")
            ins = (table, idx) if label == "te gather" else (table, idx.reshape(1, k))
            a, b = _median_us([on, off], ins, args.repeat)
            print(f"{label:<14} {f'{k} x {dim}':>12} {a:>11.1f} {b:>13.1f} {a / b:>6.3f}")


if __name__ == "__main__":
    main()
