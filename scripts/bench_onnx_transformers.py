"""Issue 12: transformers' BERT-base and a GPT-2-style decoder exported to ONNX, run by nimble and ONNX Runtime.

Each model is built from its `transformers` config with random weights (seed 0), exported with
``torch.onnx.export(dynamo=False, opset_version=17)`` and dynamic batch and sequence axes, and timed in one
process per thread count: nimble on the ONNX file (``from_onnx`` + ``nimble.compile``), ONNX Runtime on the same
file (intra_op_num_threads = threads, inter 1, sequential), and for BERT nimble's builder BERT-base
(``nimble.models.bert``, same sizes; one sequence of hidden states, no embeddings or mask). nimble's outputs are
checked against ORT's before timing. Timing: interleaved rounds (every system in turn), medians after warm-up.

    python scripts/bench_onnx_transformers.py                      # 12 layers, seq 8/32/128, 1 and 2 threads
    python scripts/bench_onnx_transformers.py --quick --layers 2 --threads 1
    python scripts/bench_onnx_transformers.py --models bert-int8,bert-fp16   # quantized / float16 BERT-base
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_models import cpu_name  # noqa: E402
from harness import settle, thread_env  # noqa: E402

SEQS = (8, 32, 128)
TOLERANCE = 1e-3
# int8: nimble's exact int32 products and ORT's may quantize an activation one step apart; float16: its rounding
KIND_TOLERANCE = {"bert-int8": 0.1, "bert-fp16": 2e-2}
KINDS = ("bert", "gpt2", "bert-int8", "bert-fp16")
NAMES = {"bert": "BERT-base", "gpt2": "GPT-2", "bert-int8": "BERT-base int8", "bert-fp16": "BERT-base float16"}


def export(kind: str, layers: int, path: str) -> str:
    """Export BERT-base (`kind` "bert") or the GPT-2-style decoder ("gpt2") with `layers` layers to `path`;
    "bert-int8": BERT-base quantized by onnxruntime's ``quantize_dynamic`` (int8 weights, uint8 activations);
    "bert-fp16": converted by onnxruntime's float16 converter (float16 weights, inputs of ids, float16 output)."""
    import torch
    import transformers

    if kind in ("bert-int8", "bert-fp16"):
        fp32 = export("bert", layers, path + ".fp32.onnx")
        if kind == "bert-int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            logging.getLogger().setLevel(logging.ERROR)  # (its advice to pre-process the model)
            quantize_dynamic(fp32, path, weight_type=QuantType.QInt8)
        else:
            import onnx
            from onnxruntime.transformers.float16 import convert_float_to_float16

            onnx.save(convert_float_to_float16(onnx.load(fp32), keep_io_types=False), path)
        return path

    torch.manual_seed(0)
    if kind == "bert":
        model = transformers.BertModel(transformers.BertConfig(num_hidden_layers=layers), add_pooling_layer=False)
        options = {}
    else:
        model = transformers.GPT2Model(transformers.GPT2Config(n_embd=768, n_layer=layers, n_head=12))
        options = {"use_cache": False}

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model.eval()

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=False, **options)[0]

    ids = torch.randint(0, 100, (2, 8))
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "out": {0: "batch", 1: "seq"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Wrapper(), (ids, torch.ones_like(ids)), path, input_names=["input_ids", "attention_mask"],
                          output_names=["out"], dynamic_axes=axes, dynamo=False, opset_version=17)
    return path


def ort_session(path: str, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def time_interleaved(systems: dict, rounds: int, min_time: float) -> dict:
    """Median ms of each zero-argument callable over interleaved rounds (warmed up twice first)."""
    warm = {}
    for name, fn in systems.items():
        fn()
        t0 = time.perf_counter()
        fn()
        warm[name] = time.perf_counter() - t0
    # a pass lasts >= 0.3 s: a thread pool still spinning from the previous system's pass (ORT's spins after a
    # run) then costs a small share of it, as in bench_models.py
    inner = max(1, math.ceil(max(0.3, min_time / 20) / max(min(warm.values()), 1e-6)))
    times = {n: [] for n in systems}
    start = time.perf_counter()
    while True:
        for name, fn in systems.items():
            settle()
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            times[name].append((time.perf_counter() - t0) / inner)
        done = len(times[next(iter(systems))])
        if done >= rounds and (time.perf_counter() - start >= min_time or done >= 10 * rounds):
            break
    return {n: statistics.median(t) * 1e3 for n, t in times.items()}


def run_child(threads: int, layers: int, quick: bool, models: list, records: str | None) -> dict:
    import nimble
    from nimble.frontend import from_onnx
    from nimble.models import bert
    from nimble.tuner import Database

    rounds, min_time = (3, 0.5) if quick else (7, 3.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db = records or Database(os.path.join(tmp, "none.db"))  # no records: fallback configs everywhere
        builder_vm = None
        if "bert" in models:
            config = bert.BertConfig(num_layers=layers)
            builder_vm = nimble.VirtualMachine(nimble.compile(bert.build_module(bert.random_weights(config, 0), config),
                                                              records=db))
        for kind in models:
            path = export(kind, layers, os.path.join(tmp, f"{kind}.onnx"))
            t0 = time.perf_counter()
            vm = nimble.VirtualMachine(nimble.compile(from_onnx(path), records=db))
            print(f"[{threads} thr] {kind}: nimble compiled the ONNX file in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr, flush=True)
            sess = ort_session(path, threads)
            for seq in SEQS:
                rng = np.random.default_rng(seq)
                ids = rng.integers(0, 1000, (1, seq)).astype(np.int64)
                mask = np.ones((1, seq), np.int64)
                feed = {"input_ids": ids, "attention_mask": mask}
                want = sess.run(None, feed)[0]
                got = np.asarray(vm.run(ids, mask))
                err = float(np.max(np.abs(got.astype(np.float64) - want)))
                tol = KIND_TOLERANCE.get(kind, TOLERANCE)
                if not np.allclose(got.astype(np.float64), want, atol=tol, rtol=tol):
                    raise SystemExit(f"{kind} seq {seq}: nimble differs from ORT (max abs err {err:.2g})")
                systems = {"nimble ONNX": lambda: vm.run(ids, mask), "ORT": lambda: sess.run(None, feed)}
                if kind == "bert":
                    hidden = rng.standard_normal((seq, 768)).astype(np.float32)
                    systems["nimble builder"] = lambda: builder_vm.run(hidden)
                ms = time_interleaved(systems, rounds, min_time)
                rows.append({"model": kind, "seq": seq, "ms": ms, "max_err": err})
                print(f"[{threads} thr] {kind} seq {seq}: " + ", ".join(f"{n} {v:.2f} ms" for n, v in ms.items()),
                      file=sys.stderr, flush=True)
    return {"rows": rows}


def table(threads: int, layers: int, rows: list) -> str:
    lines = [f"### {threads} thread{'s' if threads > 1 else ''}, {layers} layers (batch 1, median ms)", "",
             "| model | seq | nimble ONNX ms | ORT ms | ORT / nimble | builder ms | nimble ONNX / builder | max abs err |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ms = r["ms"]
        nim, ort_ms = ms["nimble ONNX"], ms["ORT"]
        builder = ms.get("nimble builder")
        lines.append(f"| {NAMES[r['model']]} | {r['seq']} | {nim:.2f} | {ort_ms:.2f} | "
                     f"{ort_ms / nim:.2f} | {'' if builder is None else f'{builder:.2f}'} | "
                     f"{'' if builder is None else f'{nim / builder:.2f}'} | {r['max_err']:.1e} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    p.add_argument("--layers", type=int, default=12, help="transformer layers of every model (default 12)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts, one child process each")
    p.add_argument("--models", default="bert,gpt2", help=f"comma-separated, of {', '.join(KINDS)}")
    p.add_argument("--records", metavar="PATH_OR_URL", help="tuning records (default: none, fallback configs)")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if set(models) - set(KINDS) or not models:
        p.error(f"--models: expected some of {', '.join(KINDS)}, got {args.models!r}")
    if args.layers < 1:
        p.error("--layers must be at least 1")
    if args.child:
        print(json.dumps(run_child(args.child, args.layers, args.quick, models, args.records)))
        return
    import subprocess

    results = {}
    for t in (int(x) for x in args.threads.split(",")):
        cmd = [sys.executable, os.path.abspath(__file__), "--child", str(t), "--layers", str(args.layers),
               "--models", ",".join(models)] + (["--quick"] if args.quick else [])
        cmd += ["--records", args.records] if args.records else []
        out = subprocess.run(cmd, env=dict(thread_env(t), MKL_NUM_THREADS=str(t)), stdout=subprocess.PIPE, text=True)
        if out.returncode != 0:
            sys.exit(f"child for {t} thread(s) failed (exit {out.returncode}); its log is above")
        results[t] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"CPU: {cpu_name()}; {os.cpu_count()} logical cores\n")
    for t, result in results.items():
        print(table(t, args.layers, result["rows"]) + "\n")
    print("ORT / nimble above 1: nimble faster. builder = nimble.models.bert (hidden states in, no embeddings or mask).")


if __name__ == "__main__":
    main()
