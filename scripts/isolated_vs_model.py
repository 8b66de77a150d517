"""A kernel's speed inside BERT-base against its speed measured alone (issue 13): warm cache, as the tuner
measured before ``--cold-cache``, and cold, as ``nimble-tune --cold-cache`` measures now.

    NIMBLE_NUM_THREADS=1 python scripts/isolated_vs_model.py --seqs 8,32,128

For each dense, batch_matmul and attention kernel of the compiled model (fallback configs unless
``--records``): GFLOP/s inside the model (``vm.profile``, per-call median over ``--passes`` profiled runs,
every layer's call of the shared kernel) and GFLOP/s of the same config alone at the same shape, measured
by the tuner's runner warm and cold. A cold/model ratio near 1 means the tuner ranks configs in the
regime the model runs them in.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np

import nimble
from nimble.models import bert
from nimble.passes.pipeline import Pass
from nimble.tuner.measure import MeasureOptions, Measurer
from nimble.tuner.task import Task
from nimble.vm.pipeline import compile_pipeline

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import cpu_name  # noqa: E402

TEMPLATES = ("dense", "batch_matmul", "attention")


def compiled(layers: int, records):
    """(executable, {kernel name: GroupKernel}) of BERT-base with ``layers`` layers."""
    cfg = bert.BertConfig(num_layers=layers)
    mod = bert.build_module(bert.random_weights(cfg, seed=0), cfg)
    lowered: list = []
    pipe = compile_pipeline("llvm", records).insert_after(
        "lower_kernels", Pass("keep_lowered", lambda lm: lowered.append(lm) or lm, "LoweredModule", "LoweredModule",
                              "the kernels"))
    exe = pipe.run(mod, print_after=(), debug=0)
    return exe, {gk.name: gk for gk in lowered[0].kernels if gk.template in TEMPLATES}


def in_model(vm, seq: int, passes: int) -> dict:
    """{kernel name: seconds per call} inside the model at ``seq``, medians over ``passes`` profiled runs."""
    x = np.random.default_rng(seq).standard_normal((seq, 768)).astype("float32")
    vm.run(x)
    per: dict = {}
    for _ in range(passes):
        for name, k in vm.profile(x).kernels.items():
            if k["calls"]:
                per.setdefault(name, []).append(k["time_s"] / k["calls"])
    return {name: statistics.median(v) for name, v in per.items()}


def isolated(task: Task, config: dict, cold: bool, repeat: int) -> float:
    with Measurer(MeasureOptions(repeat=repeat, min_repeat_ms=20.0, timeout_s=60.0, cold_cache=cold)) as m:
        [r] = m.measure(task, [task.space.from_json(config)])
    if not r.ok:
        raise SystemExit(f"{task}: {r.error_kind}: {r.error_message}")
    return statistics.median(r.costs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seqs", default="8,32,128")
    p.add_argument("--layers", type=int, default=2, help="encoder layers (each shares the kernels)")
    p.add_argument("--passes", type=int, default=7)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--records", help="a records database to compile with (default: fallback configs)")
    args = p.parse_args()
    exe, kernels = compiled(args.layers, args.records)
    vm = nimble.VirtualMachine(exe)
    print(f"CPU: {cpu_name()}; {nimble.settings.num_threads()} thread(s); BERT-base hidden 768, {args.layers} layers; "
          f"configs from {'records' if args.records else 'the fallbacks'}\n")
    print("| seq | kernel | shape | model GFLOP/s | alone warm | alone cold | cold / model |")
    print("|---|---|---|---|---|---|---|")
    for seq in (int(s) for s in args.seqs.split(",")):
        times = in_model(vm, seq, args.passes)
        for name, gk in sorted(kernels.items()):
            if name not in times:
                continue
            sig = gk.signature
            task = Task(gk.template, sig, "llvm", ",".join(f"{d}={seq}" for d in sorted(sig.symbolic_dims)) or "static")
            point = tuple(seq for _ in gk.entry.dims) if len(gk.entry.dims) > 1 else seq
            config = exe.explain(name, point)["config"]
            flops = task.flops()
            warm, cold = isolated(task, config, False, args.repeat), isolated(task, config, True, args.repeat)
            shape = " x ".join(str(tuple(seq if isinstance(d, str) else d for d in s)) for s, _ in sig.args)
            model = flops / times[name] / 1e9
            print(f"| {seq} | {gk.template} | {shape} | {model:.1f} | {flops / warm / 1e9:.1f} | "
                  f"{flops / cold / 1e9:.1f} | {flops / cold / 1e9 / model:.2f} |", flush=True)


if __name__ == "__main__":
    main()
