"""ONNX recurrent layers: PyTorch's nn.LSTM and nn.GRU exported to ONNX, run by nimble and ONNX Runtime.

Each layer stack (2 layers, input 300, hidden 512 by default: the paper's LSTM) is built with random weights (seed 0),
exported with ``torch.onnx.export(dynamo=False, opset_version=17)`` with a dynamic sequence axis, compiled once by
nimble (``from_onnx`` + ``nimble.compile``, fallback configs), and timed against ONNX Runtime on the same file
(intra_op_num_threads = threads, inter 1) over sentences of 5..100 steps, batch 1, in one process per thread count.
nimble's outputs are checked against ORT's before timing. Timing: interleaved rounds (every system in turn, after a
pause for the other's threads to go idle), medians of the set's total.

    python scripts/bench_onnx_rnn.py                         # lstm, gru, gru-reset-first; 1 and 2 threads
    python scripts/bench_onnx_rnn.py --quick --threads 1 --models gru
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import cpu_name, forget_setup_load, run_children, settle  # noqa: E402

KINDS = ("lstm", "gru", "gru-reset-first")


def export(kind: str, layers: int, input_size: int, hidden: int, path: str) -> None:
    """``gru-reset-first``: the exported GRU with linear_before_reset=0 on every GRU node (ONNX's default, what
    Keras's GRU computes; PyTorch exports 1), the same weights."""
    import onnx
    import torch

    torch.manual_seed(0)
    model = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(input_size, hidden, layers).eval()
    outs = ["y", "h", "c"] if kind == "lstm" else ["y", "h"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(7, 1, input_size),), path, input_names=["x"], output_names=outs,
                          dynamic_axes={"x": {0: "T"}, "y": {0: "T"}}, opset_version=17, dynamo=False)
    if kind == "gru-reset-first":
        m = onnx.load(path)
        for node in m.graph.node:
            if node.op_type == "GRU":
                kept = [a for a in node.attribute if a.name != "linear_before_reset"]
                del node.attribute[:]
                node.attribute.extend(kept + [onnx.helper.make_attribute("linear_before_reset", 0)])
        onnx.save(m, path)


def run_child(args) -> dict:
    import onnxruntime as ort

    import nimble
    from nimble.frontend import from_onnx

    threads = int(os.environ.get("NIMBLE_NUM_THREADS", "1"))
    rng = np.random.default_rng(0)
    n_items, rounds = (5, 3) if args.quick else (30, 7)
    xs = [rng.standard_normal((int(t), 1, args.input)).astype(np.float32) for t in rng.integers(5, 101, n_items)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.models.split(","):
            path = os.path.join(tmp, f"{kind}.onnx")
            export(kind, args.layers, args.input, args.hidden, path)
            vm = nimble.VirtualMachine(nimble.compile(from_onnx(path)))
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            systems = {"nimble": lambda x: vm.run(x), "ORT": lambda x: sess.run(None, {"x": x})}
            got, want = systems["nimble"](xs[0]), systems["ORT"](xs[0])
            got = got if isinstance(got, (tuple, list)) else (got,)
            err = max(float(np.max(np.abs(np.asarray(g) - w))) for g, w in zip(got, want))
            if err > 1e-3:
                raise SystemExit(f"{kind}: nimble and ORT differ by {err}")
            for run in systems.values():  # warm-up
                for x in xs:
                    run(x)
            forget_setup_load()
            times = {name: [] for name in systems}
            for _ in range(rounds):
                for name, run in systems.items():
                    settle()
                    t0 = time.perf_counter()
                    for x in xs:
                        run(x)
                    times[name].append(time.perf_counter() - t0)
            ms = {name: statistics.median(v) * 1e3 for name, v in times.items()}
            rows.append({"kind": kind, "steps": int(sum(len(x) for x in xs)), "ms": ms, "err": err})
            print(f"[{threads} thr] {kind}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items()), file=sys.stderr)
    from nimble.codegen import parallel

    print(f"[{threads} thr] parallel runtime: " + ", ".join(f"{k} {v}" for k, v in parallel.stats().items()),
          file=sys.stderr)
    return {"rows": rows}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer sentences and rounds")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts, one child process each")
    p.add_argument("--models", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--input", type=int, default=300)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = set(args.models.split(",")) - set(KINDS)
    if unknown:
        p.error(f"--models: unknown {sorted(unknown)}; expected {', '.join(KINDS)}")
    if args.child:
        logging.disable(logging.WARNING)
        print(json.dumps(run_child(args)))
        return
    passthrough = ["--models", args.models, "--layers", str(args.layers), "--input", str(args.input),
                   "--hidden", str(args.hidden)] + (["--quick"] if args.quick else [])
    results = run_children(__file__, [int(t) for t in args.threads.split(",")], passthrough)
    print(f"CPU: {cpu_name()}; {os.cpu_count()} logical cores\n")
    print(f"ONNX {args.layers}-layer RNNs, input {args.input}, hidden {args.hidden}, batch 1 (median ms of the set; "
          "× = ORT ms / nimble ms, above 1: nimble faster)\n")
    print("| model | threads | steps | nimble ms | ORT ms | × vs ORT | max abs err |")
    print("|---|---|---|---|---|---|---|")
    for threads, res in results.items():
        for row in res["rows"]:
            ms = row["ms"]
            print(f"| {row['kind'].upper()} | {threads} | {row['steps']} | {ms['nimble']:.1f} | {ms['ORT']:.1f} | "
                  f"{ms['ORT'] / ms['nimble']:.2f} | {row['err']:.1e} |")


if __name__ == "__main__":
    main()
