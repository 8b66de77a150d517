"""The weight prefetch of the dense fallback (``gemm.FALLBACK_PREFETCH_STEPS``) on and off, in whole models;
with ``--stream``, the gemm's stream of the next weight block into L2 (the ``stream`` knob) on and off.

    NIMBLE_NUM_THREADS=1 python scripts/bench_prefetch.py                  # BERT-base seq 8/32/128, Tree-LSTM
    NIMBLE_NUM_THREADS=2 python scripts/bench_prefetch.py --seqs 8,64 --models bert
    NIMBLE_NUM_THREADS=1 python scripts/bench_prefetch.py --stream --models bert --seqs 8,24,48,96,128

Each model is compiled twice in this process with fallback configs only: once as shipped and once with the
fallback's prefetch distance set to 0 (the hardware prefetcher alone; this also drops the stream, which rides
on it), or with ``--stream`` once with the stream dropped (and the refit's credit for it). Outputs are checked equal, then the two
run in interleaved rounds (each round runs both; medians over rounds), so a burst of outside load hits both.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

import nimble
import nimble.schedules.gemm as gemm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import cpu_name  # noqa: E402


def _compiled_pair(build, stream: bool = False) -> dict:
    """{"off": VirtualMachine, "on": VirtualMachine}: without and with the prefetch (or the stream), as shipped."""
    shipped, row_cost, streamer = gemm.FALLBACK_PREFETCH_STEPS, gemm.STREAM_ROW_COST, gemm._stream_next_block
    vms = {}
    try:
        if stream:
            gemm.STREAM_ROW_COST, gemm._stream_next_block = 1.0, lambda *a, **k: None
        else:
            gemm.FALLBACK_PREFETCH_STEPS = 0
        vms["off"] = nimble.VirtualMachine(nimble.compile(build(), records=None))
    finally:
        gemm.FALLBACK_PREFETCH_STEPS, gemm.STREAM_ROW_COST, gemm._stream_next_block = shipped, row_cost, streamer
    vms["on"] = nimble.VirtualMachine(nimble.compile(build(), records=None))
    return vms


def _timed(vms: dict, calls: list, rounds: int) -> dict:
    """Median seconds of running every call in ``calls`` (argument tuples), per system."""
    outs = [np.asarray(_first(vm.run(*calls[0]))) for vm in vms.values()]
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-4)
    times: dict = {k: [] for k in vms}
    for _ in range(rounds):
        for k, vm in vms.items():
            t0 = time.perf_counter()
            for args in calls:
                vm.run(*args)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _first(out):
    return out[0] if isinstance(out, (list, tuple)) else out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="bert,tree", help="comma-separated: bert, tree, lstm")
    p.add_argument("--seqs", default="8,32,128", help="BERT-base sequence lengths")
    p.add_argument("--layers", type=int, default=12, help="BERT encoder layers (default 12, BERT-base)")
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--stream", action="store_true", help="the stream of the next weight block on and off instead")
    args = p.parse_args()
    shipped = gemm.FALLBACK_PREFETCH_STEPS
    what = "stream" if args.stream else "prefetch"
    print(f"CPU: {cpu_name()}; {nimble.settings.num_threads()} thread(s); fallback configs; "
          + (f"stream of the next weight block at {gemm.STREAM_PASSES[0]}..{gemm.STREAM_PASSES[1]} passes vs none\n"
             if args.stream else f"prefetch {shipped} steps ahead ({gemm.fallback_prefetch(16)} bytes on AVX2, "
             f"{gemm.fallback_prefetch(32)} on AVX-512) vs none\n"))
    print(f"| workload | no {what} ms | {what} ms | no {what} / {what} |")
    print("|---|---|---|---|")
    models = args.models.split(",")

    def row(label, t):
        print(f"| {label} | {t['off'] * 1e3:.1f} | {t['on'] * 1e3:.1f} | {t['off'] / t['on']:.3f} |", flush=True)

    if "bert" in models:
        from nimble.models import bert

        cfg = bert.BertConfig(num_layers=args.layers)
        weights = bert.random_weights(cfg, seed=0)
        vms = _compiled_pair(lambda: bert.build_module(weights, cfg), args.stream)
        for seq in (int(s) for s in args.seqs.split(",")):
            x = np.random.default_rng(seq).standard_normal((seq, cfg.hidden_size)).astype("float32")
            row(f"BERT ({args.layers} layers) seq {seq}", _timed(vms, [(x,)], args.rounds))
    if "tree" in models:
        from nimble.models import tree_lstm

        cfg = tree_lstm.TreeLSTMConfig()
        weights = tree_lstm.random_weights(cfg, seed=0)
        vms = _compiled_pair(lambda: tree_lstm.build_module(weights, cfg), args.stream)
        rng = np.random.default_rng(0)
        trees = [tree_lstm.to_inputs(tree_lstm.random_tree(rng, int(rng.integers(5, 61)), cfg.input_size), cfg)
                 for _ in range(10)]
        row("Tree-LSTM, 10 trees", _timed(vms, trees, args.rounds))
    if "lstm" in models:
        from nimble.models import lstm

        cfg = lstm.LSTMConfig()
        weights = lstm.random_weights(cfg, seed=0)
        vms = _compiled_pair(lambda: lstm.build_module(weights, cfg), args.stream)
        rng = np.random.default_rng(0)
        items = [(rng.standard_normal((int(n), cfg.input_size)).astype(np.float32),)
                 for n in rng.integers(5, 101, size=20)]
        row("LSTM, 20 sentences", _timed(vms, items, args.rounds))


if __name__ == "__main__":
    main()
