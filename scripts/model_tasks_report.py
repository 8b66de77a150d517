"""BERT-base's tuning tasks and their shares; tune one batch_matmul and one softmax task; the model with
their records vs with fallbacks.

    NIMBLE_NUM_THREADS=1 python scripts/model_tasks_report.py --seq 32 --trials 16

Prints (1) ``extract_tasks``' table of BERT-base (with the attention pass, as compiled by default, and
without it, where the attention is batch_matmul + softmax groups) with each signature's estimated share
at ``--seq`` next to the share ``vm.profile`` measures (``profile_shares``); (2) the tuning of the context
batch_matmul and the softmax in the bucket holding ``--seq`` into a temporary database; (3) the model
without the attention pass compiled with those records and with none (dense layers use their fallbacks
in both), timed in the same process, runs interleaved: medians of the whole model and of the two kernels.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

import nimble
from nimble.models import bert
from nimble.passes.pipeline import Pipeline, default_ir_passes
from nimble.tuner import Database, tune
from nimble.vm.pipeline import compile_pipeline
from nimble.vm.tasks import extract_tasks, profile_shares, shares

NO_ATTENTION = [p for p in default_ir_passes() if p.name != "attention"]


def sig_text(sig) -> str:
    args = " x ".join("(" + ",".join(map(str, shape)) + ")" for shape, _ in sig.args)
    attrs = {k: v for k, v in sig.attrs if k in ("epilogue", "bias", "transpose_b")}
    return f"{args} {attrs}" if attrs else args


def compile_model(mod, records, passes):
    pipe = compile_pipeline("llvm", records)
    if passes is not None:
        pipe = Pipeline([p for p in pipe.passes if p.name != "attention"])
    return pipe.run(mod, print_after=(), debug=0)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seq", type=int, default=32)
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--tuner", default="xgb")
    args = p.parse_args(argv)
    print(f"threads {nimble.settings.current().num_threads}; load {os.getloadavg()}")
    cfg = bert.BertConfig()
    mod = bert.build_module(bert.random_weights(cfg), cfg)
    x = np.random.default_rng(0).standard_normal((args.seq, cfg.hidden_size)).astype("float32")
    fallback_db = Database(os.path.join(tempfile.mkdtemp(), "empty.db"))
    for label, passes in (("default passes", None), ("without the attention pass", NO_ATTENTION)):
        t0 = time.perf_counter()
        rows = profile_shares(mod, (x,), fallback_db, passes, runs=5)
        print(f"\n### extract_tasks, BERT-base, {label} (seq {args.seq}; compile + profile "
              f"{time.perf_counter() - t0:.0f} s; fallback configs)")
        est = shares([mt for mt, _, _ in rows], args.seq)
        print("| template | signature | calls | GFLOP/run | est. share | profiled ms/run | profiled share |")
        print("|---|---|---|---|---|---|---|")
        for (mt, secs, share), s in zip(rows, est):
            print(f"| {mt.template} | {sig_text(mt.signature)} | {mt.calls} | "
                  f"{mt.flops(args.seq) * mt.calls / 1e9:.3f} | {s:.1%} | {secs * 1e3:.2f} | {share:.1%} |")
        print(f"(templated kernels: {sum(r[2] for r in rows):.1%} of the profiled kernel time)")

    bucket = f"n={max(1, args.seq // 2 + 1)}:{args.seq}"
    tasks = extract_tasks(mod, "llvm", bucket, NO_ATTENTION)
    picked = [next(t for t in tasks if t.template == "batch_matmul"), next(t for t in tasks if t.template == "softmax")]
    db = Database(os.path.join(tempfile.mkdtemp(), "tuned.db"))
    t0 = time.perf_counter()
    summaries = tune(picked, db, n_trials=args.trials, tuner=args.tuner, progress=False)
    print(f"\n### tuning, {args.trials} trials each ({args.tuner}; {time.perf_counter() - t0:.0f} s)")
    print("| task | bucket | fallback us | best us | isolated speedup | best config |")
    print("|---|---|---|---|---|---|")
    for t, s in zip(picked, summaries):
        fb = s.fallback_cost
        print(f"| {t.template} {sig_text(t.signature)} | {t.bucket} | {fb * 1e6:.1f} | {s.best_cost * 1e6:.1f} | "
              f"{fb / s.best_cost:.2f}x | {s.best_config} |")

    exe_fb = compile_model(mod, fallback_db, NO_ATTENTION)
    vm_fb = nimble.VirtualMachine(exe_fb)
    exe_t = compile_model(mod, db, NO_ATTENTION)
    vm_t = nimble.VirtualMachine(exe_t)
    for pk in exe_t.packed:
        if pk.name.endswith(("softmax", "batch_matmul")):
            print(f"\n{exe_t.explain(pk.name, (12, args.seq, args.seq))}")
    np.testing.assert_allclose(vm_t.run(x), vm_fb.run(x), rtol=1e-3, atol=1e-3)
    whole = {"fallback": [], "records": []}
    kernels = {"fallback": [], "records": []}
    for _ in range(args.runs):
        for label, vm, exe in (("fallback", vm_fb, exe_fb), ("records", vm_t, exe_t)):
            t0 = time.perf_counter()
            vm.run(x)
            whole[label].append(time.perf_counter() - t0)
            rep = vm.profile(x)
            kernels[label].append({kind: sum(k["time_s"] for n, k in rep.kernels.items() if n.endswith(kind))
                                   for kind in ("softmax", "batch_matmul")})
    med = {k: statistics.median(v) for k, v in whole.items()}
    print(f"\n### BERT-base without the attention pass, seq {args.seq}, medians of {args.runs} interleaved runs "
          f"(load {os.getloadavg()[0]:.1f})")
    print("| | fallback | with the 2 records | ratio |")
    print("|---|---|---|---|")
    print(f"| whole model ms | {med['fallback'] * 1e3:.2f} | {med['records'] * 1e3:.2f} | "
          f"{med['fallback'] / med['records']:.3f}x |")
    for kind in ("batch_matmul", "softmax"):
        a = statistics.median(r.get(kind, 0.0) for r in kernels["fallback"])
        b = statistics.median(r.get(kind, 0.0) for r in kernels["records"])
        print(f"| {kind} kernel ms/run (12 calls, profiled) | {a * 1e3:.3f} | {b * 1e3:.3f} | {a / b:.2f}x |")


if __name__ == "__main__":
    main()
