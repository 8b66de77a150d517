"""Issue 6: nimble against PyTorch eager, ONNX Runtime and OpenVINO on LSTM, Tree-LSTM and BERT-base.

Each thread count runs in its own child process with NIMBLE_NUM_THREADS, OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS and MKL_NUM_THREADS set (torch.set_num_threads, ORT intra_op_num_threads and
OpenVINO INFERENCE_NUM_THREADS match). Inside it every system shares the same weights and inputs;
each peer's outputs are checked against nimble's (atol = rtol = 1e-3) on the warm-up pass before
it is timed. Timing: rounds that run every system's pass over the workload in turn (so drift in a
shared machine's load hits all alike), medians over rounds. A set's time is the total over its
items. VM overhead = share of a profiled nimble run (`vm.profile`) spent outside kernels.
`--busy` runs the whole benchmark beside a process that keeps one core busy (a spinning
Python loop), as on a shared server: libgomp users (PyTorch) at 2 threads can slow down 5-40x
there from barriers that wait for a descheduled thread; nimble's own parallel runtime
(`nimble/codegen/parallel.py`) finishes a region when its chunks are done.

    python scripts/bench_models.py                       # everything, 1 and 2 threads
    python scripts/bench_models.py --quick --models lstm --threads 1
    python scripts/bench_models.py --quick --busy        # beside a process that burns one core
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402
from harness import SETTLE_S, cpu_name, forget_setup_load, settle  # noqa: E402,F401  (bench_threads, bench_onnx_transformers import it from here)

PEERS = ("PyTorch", "ORT", "OpenVINO")
TOLERANCE = 1e-3


@dataclass(frozen=True)
class Workload:
    label: str
    items: list  # model inputs as the nimble model's to_inputs takes them
    is_set: bool  # report the total over items (a set) rather than one item


# ------------------------------------------------------------------ workloads (seed 0)

def lstm_workloads(config, n_items: int) -> list[Workload]:
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 101, size=50)[:n_items]
    items = [rng.standard_normal((int(n), config.input_size)).astype(np.float32) for n in lengths]
    return [Workload(f"LSTM, {len(items)} sentences of 5..100 ({int(lengths.sum())} tokens)", items, True)]


def tree_workloads(config, n_items: int) -> list[Workload]:
    from nimble.models import tree_lstm

    rng = np.random.default_rng(0)
    leaves = []
    items = []
    for _ in range(n_items):
        leaves.append(int(rng.integers(5, 61)))
        items.append(tree_lstm.random_tree(rng, leaves[-1], config.input_size))
    return [Workload(f"Tree-LSTM, {n_items} trees of 5..60 leaves ({sum(leaves)} leaves)", items, True)]


def bert_workloads(config, n_items: int) -> list[Workload]:
    fixed = [Workload(f"BERT-base seq {n}", [np.random.default_rng(n).standard_normal((n, config.hidden_size))
                                            .astype(np.float32)], False) for n in (8, 32, 128)]
    rng = np.random.default_rng(0)
    lengths = rng.integers(8, 129, size=50)[:n_items]
    items = [rng.standard_normal((int(n), config.hidden_size)).astype(np.float32) for n in lengths]
    return [*fixed, Workload(f"BERT-base, {len(items)} mixed lengths 8..128 ({int(lengths.sum())} tokens)",
                             items, True)]


def model_spec(model: str):
    """(nimble model module, config, workload builder)."""
    from nimble.models import bert, lstm, tree_lstm

    return {"lstm": (lstm, lstm.LSTMConfig(), lstm_workloads),
            "tree": (tree_lstm, tree_lstm.TreeLSTMConfig(), tree_workloads),
            "bert": (bert, bert.BertConfig(), bert_workloads)}[model]


# ------------------------------------------------------------------ timing

def as_arrays(outputs) -> tuple:
    return tuple(np.asarray(o) for o in outputs) if isinstance(outputs, (tuple, list)) else (np.asarray(outputs),)


def mismatch(want: list, got: list) -> str | None:
    """None if every output of every item agrees within TOLERANCE, else what differs."""
    worst = 0.0
    for w_item, g_item in zip(want, got):
        for w, g in zip(as_arrays(w_item), as_arrays(g_item)):
            if w.shape != g.shape:
                return f"shape {g.shape} != nimble's {w.shape}"
            if not np.allclose(g, w, atol=TOLERANCE, rtol=TOLERANCE):
                worst = max(worst, float(np.max(np.abs(g - w))))
    return f"outputs differ from nimble's (max abs err {worst:.2g})" if worst else None


def time_systems(systems: dict, workload: Workload, rounds: int, min_time: float) -> tuple[dict, dict]:
    """Median ms per workload of each system (a set: total over items), and the skipped ones' reasons."""
    prepared = {name: [getattr(run, "prepare", lambda x: x)(item) for item in workload.items]
                for name, run in systems.items()}
    skipped, warm = {}, {}
    reference = None
    for name, run in systems.items():  # warm-up pass, also the outputs check (nimble first)
        t0 = time.perf_counter()
        outs = [as_arrays(run(x)) for x in prepared[name]]
        warm[name] = time.perf_counter() - t0
        if reference is None:
            reference = outs
        elif (why := mismatch(reference, outs)) is not None:
            skipped[name] = why
    timed = [n for n in systems if n not in skipped]
    # a pass repeats a short workload so that it lasts >= ~min_time / 10 (thread-pool spin after a
    # switch between systems then costs a small share of a pass)
    inner = max(1, math.ceil(min_time / 10 / max(min(warm[n] for n in timed), 1e-6)))
    times = {n: [] for n in timed}
    time.sleep(SETTLE_S * 4)
    forget_setup_load()
    start = time.perf_counter()
    while True:
        for name in timed:
            run, xs = systems[name], prepared[name]
            settle()
            t0 = time.perf_counter()
            for _ in range(inner):
                for x in xs:
                    run(x)
            times[name].append((time.perf_counter() - t0) / inner)
        done = len(times[timed[0]])
        if done >= rounds and (time.perf_counter() - start >= min_time or done >= 10 * rounds):
            break
    return {n: statistics.median(t) * 1e3 for n, t in times.items()}, skipped


def vm_overhead(vm, items: list, passes: int) -> float | None:
    """Share of a profiled run spent outside kernels (median over `passes` profiled passes over `items`).

    Kernel time and total come from the same profiled pass, so load on a shared machine cancels out;
    the profiler's per-step timer makes it an upper bound (see nimble/vm/profile.py).
    """
    if not hasattr(vm, "profile"):
        return None
    shares = []
    for _ in range(passes):
        kernels = total = 0.0
        for inputs in items:
            report = vm.profile(*inputs)
            kernels += sum(k["time_s"] for k in report.kernels.values())
            total += report.total_s
        shares.append(1 - kernels / total)
    return statistics.median(shares)


def run_child(models: list[str], threads: int, quick: bool, records: str | None = None) -> dict:
    """Everything at one thread count, in this process: {'rows': [...], 'versions': {...}}."""
    import nimble
    from nimble.tuner import Database

    if peers.installed_version("torch"):
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
    n_items, rounds, min_time = (10, 3, 0.5) if quick else (50, 5, 3.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            module, config, workloads = model_spec(model)
            weights = module.random_weights(config, 0)
            t0 = time.perf_counter()
            ir_module = module.build_module(weights, config)
            # records: the tuned kernels; without --records an empty database forces fallback configs
            empty = Database(os.path.join(tmp, "none.db"))
            exe = nimble.compile(ir_module, records=records or empty)
            vm = nimble.VirtualMachine(exe)  # the native VM
            py_vm = nimble.VirtualMachine(exe, backend="python")  # the reference VM, same kernels
            print(f"[{threads} thr] {model}: nimble compiled in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr, flush=True)
            nimble_run = (lambda inputs: vm.run(*inputs))
            prepare = (lambda item: module.to_inputs(item, config)) if model == "tree" else module.to_inputs
            nimble_run.prepare = prepare
            py_run = (lambda inputs, py_vm=py_vm: py_vm.run(*inputs))
            py_run.prepare = prepare
            extra = {"nimble Python VM": py_run}
            if records:
                fb_vm = nimble.VirtualMachine(nimble.compile(ir_module, records=Database(os.path.join(tmp, "none.db"))))
                fb_run = (lambda inputs, fb_vm=fb_vm: fb_vm.run(*inputs))
                fb_run.prepare = prepare
                extra["nimble fallback"] = fb_run
            if model == "tree":  # nodes of equal height batched; the schedule is built inside the timing
                from nimble.models import tree_lstm_batched

                batched_vm = nimble.VirtualMachine(nimble.compile(tree_lstm_batched.build_module(weights, config),
                                                                  records=records or empty))
                extra["nimble autobatched"] = (lambda tree, vm_=batched_vm, cfg=config:
                                               vm_.run(*tree_lstm_batched.to_inputs(tree, cfg)))
            onnx_path = peers.export_onnx(model, weights, config, tmp)
            if model == "bert" and isinstance(onnx_path, str):  # nimble from the same ONNX export
                try:
                    from nimble.frontend import from_onnx

                    onnx_vm = nimble.VirtualMachine(nimble.compile(from_onnx(onnx_path), records=records or empty))
                    onnx_run = (lambda inputs, onnx_vm=onnx_vm: np.asarray(onnx_vm.run(inputs[0][None]))[0])
                    onnx_run.prepare = prepare
                    extra["nimble ONNX"] = onnx_run
                except ImportError as exc:
                    print(f"nimble ONNX path skipped: {exc}", file=sys.stderr)
            systems = {"nimble": nimble_run, **extra, "PyTorch": peers.torch_runner(model, weights, config),
                       "ORT": peers.ort_runner(model, onnx_path, threads),
                       "OpenVINO": peers.openvino_runner(model, onnx_path, threads)}
            notes = {n: s.reason for n, s in systems.items() if isinstance(s, peers.Skipped)}
            live = {n: s for n, s in systems.items() if n not in notes}
            for workload in workloads(config, n_items):
                ms, mismatched = time_systems(live, workload, rounds, min_time)
                items = [nimble_run.prepare(x) for x in workload.items]
                overhead = vm_overhead(vm, items, passes=1 if workload.is_set else 3)
                py_overhead = vm_overhead(py_vm, items, passes=1)
                rows.append({"model": model, "workload": workload.label, "ms": ms,
                             "notes": {**notes, **mismatched}, "vm_overhead": overhead,
                             "python_vm_overhead": py_overhead})
                print(f"[{threads} thr] {workload.label}: " + ", ".join(f"{n} {v:.1f} ms" for n, v in ms.items()),
                      file=sys.stderr, flush=True)
    versions = {p: peers.installed_version(p) for p in ("torch", "onnx", "onnxruntime", "openvino")}
    from nimble.codegen import parallel

    runtime = parallel.stats()  # what the parallel runtime decided over the whole child (every system's passes)
    print(f"[{threads} thr] parallel runtime: " + ", ".join(f"{k} {v}" for k, v in runtime.items()),
          file=sys.stderr, flush=True)
    return {"rows": rows, "versions": versions}


# ------------------------------------------------------------------ tables

def fmt_ms(ms: float) -> str:
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def table(threads: int, rows: list) -> str:
    head = ["workload", "nimble ms", "VM overhead (native)", "VM overhead (Python VM)"]
    peers_here = [p for p in ["nimble Python VM", "nimble fallback", "nimble ONNX", "nimble autobatched", *PEERS] if any(p in r["ms"] or p in r["notes"] for r in rows)]
    for peer in peers_here:
        head += [f"{peer} ms", f"× vs {peer}"]
    lines = [f"### {threads} thread{'s' if threads > 1 else ''} (batch 1, fp32, median ms; "
             "× = peer ms / nimble ms, above 1: nimble faster)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    footnotes: list[str] = []

    def note(text: str) -> str:
        if text not in footnotes:
            footnotes.append(text)
        return f"–[{footnotes.index(text) + 1}]"

    for row in rows:
        ms, nimble_ms = row["ms"], row["ms"]["nimble"]
        overhead = "n/a" if row["vm_overhead"] is None else f"{row['vm_overhead']:.0%}"
        py_overhead = "n/a" if row.get("python_vm_overhead") is None else f"{row['python_vm_overhead']:.0%}"
        cells = [row["workload"], fmt_ms(nimble_ms), overhead, py_overhead]
        for peer in peers_here:
            if peer in ms:
                cells += [fmt_ms(ms[peer]), f"{ms[peer] / nimble_ms:.2f}"]
            else:
                cells += [note(row["notes"].get(peer, "not run")), ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"[{i + 1}] {text}" for i, text in enumerate(footnotes)]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="10 items a set, fewer rounds: a sanity run")
    p.add_argument("--models", default="lstm,tree,bert", help="comma-separated: lstm, tree, bert")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts, one child process each")
    p.add_argument("--records", metavar="PATH_OR_URL",
                   help="tuning records: nimble runs tuned (and once more with fallback configs, as a column)")
    p.add_argument("--busy", action="store_true", help="run beside a process that keeps one core busy")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(models) - {"lstm", "tree", "bert"}
    if unknown:
        p.error(f"--models: unknown {sorted(unknown)}; expected lstm, tree, bert")
    if args.child:
        print(json.dumps(run_child(models, args.child, args.quick, args.records)))
        return
    results = {}
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        for t in (int(x) for x in args.threads.split(",")):
            results[t] = run_threads(t, models, args)
    finally:
        if burner is not None:
            burner.kill()
    print(f"CPU: {cpu_name()}; {os.cpu_count()} logical cores; "
          + ("BUSY: one core kept busy by another process" if args.busy else "no load added") + "\n")
    for t, result in results.items():
        print(table(t, result["rows"]) + "\n")
    versions = next(iter(results.values()))["versions"]
    print("peers: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in versions.items())
          + "; VM overhead = time outside kernels as a share of a profiled nimble run (vm.profile; an upper bound)")


def run_threads(t: int, models: list, args) -> dict:
    """One child process at ``t`` threads; its parsed result."""
    env = dict(os.environ, NIMBLE_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t), OPENBLAS_NUM_THREADS=str(t),
               MKL_NUM_THREADS=str(t))
    cmd = [sys.executable, os.path.abspath(__file__), "--child", str(t), "--models", ",".join(models)]
    cmd += ["--quick"] if args.quick else []
    cmd += ["--records", os.path.abspath(args.records)] if args.records and os.path.exists(args.records) else (
        ["--records", args.records] if args.records else [])
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        sys.exit(f"child for {t} thread(s) failed (exit {out.returncode}); its log is above")
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
