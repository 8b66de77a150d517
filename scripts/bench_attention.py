"""BERT-base self-attention block (q, k, v projections in, merged context out): the fused attention kernel
against the unfused chain (batch_matmul + scale, softmax, batch_matmul, head split / merge copies), both compiled
by nimble in this process and timed interleaved (medians), with the FLOP floor of the two products.

    PYTHONPATH=. python scripts/bench_attention.py --seqs 8,32,128 --peak-gflops 96
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def block_module(hidden: int, heads: int):
    """@main(q, k, v: (?, hidden)) -> (?, hidden): the attention of nimble.models.bert without projections."""
    import math

    from nimble import ops as nb
    from nimble.ir import Any
    from nimble.ir.builder import Builder, const, var
    from nimble.ir.expr import Function
    from nimble.ir.module import IRModule
    from nimble.ir.types import TensorType

    d = hidden // heads
    q, k, v = (var(n, shape=(Any, hidden)) for n in "qkv")
    b = Builder()
    qh, kh, vh = (b.let(f"{n}_heads", nb.transpose(nb.reshape(x, (-1, heads, d)), axes=(1, 0, 2)))
                  for n, x in (("q", q), ("k", k), ("v", v)))
    scores = b.let("scores", nb.multiply(nb.batch_matmul(qh, kh), const(1.0 / math.sqrt(d), "float32")))
    probs = b.let("probs", nb.softmax(scores, axis=-1))
    ctx = b.let("context", nb.batch_matmul(probs, vh, transpose_b=False))
    out = nb.reshape(nb.transpose(ctx, axes=(1, 0, 2)), (-1, hidden))
    mod = IRModule()
    mod.define("main", Function([q, k, v], b.ret(out), TensorType((Any, hidden))))
    return mod


def compile_block(hidden: int, heads: int, fused: bool):
    import nimble
    import nimble.passes.attention as attention_pass

    original = attention_pass.fuse_attention
    if not fused:
        attention_pass.fuse_attention = lambda mod: mod
    try:
        return nimble.VirtualMachine(nimble.compile(block_module(hidden, heads)))
    finally:
        attention_pass.fuse_attention = original


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seqs", default="8,32,128")
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--peak-gflops", type=float, default=None, help="the core's fp32 peak, for the floor column")
    args = p.parse_args()
    vms = {"unfused": compile_block(args.hidden, args.heads, False), "fused": compile_block(args.hidden, args.heads, True)}
    d = args.hidden // args.heads
    print(f"{'seq':>5} {'unfused us':>11} {'fused us':>9} {'speedup':>8} {'GFLOP/s':>8} {'floor us':>9}  kernels")
    for n in (int(s) for s in args.seqs.split(",")):
        rng = np.random.default_rng(n)
        ins = [rng.standard_normal((n, args.hidden)).astype(np.float32) for _ in range(3)]
        outs = {name: np.asarray(vm.run(*ins)) for name, vm in vms.items()}
        np.testing.assert_allclose(outs["fused"], outs["unfused"], rtol=1e-4, atol=1e-5)
        times = {name: [] for name in vms}
        for _ in range(args.rounds):
            for name, vm in vms.items():
                t0 = time.perf_counter()
                vm.run(*ins)
                times[name].append(time.perf_counter() - t0)
        med = {name: statistics.median(t) * 1e6 for name, t in times.items()}
        flops = 4 * args.heads * n * n * d
        floor = f"{flops / (args.peak_gflops * 1e3):9.1f}" if args.peak_gflops else f"{'-':>9}"
        kernels = {name: len(vm.profile(*ins).kernels) for name, vm in vms.items()}
        print(f"{n:>5} {med['unfused']:>11.1f} {med['fused']:>9.1f} {med['unfused'] / med['fused']:>7.2f}x "
              f"{flops / med['fused'] / 1e3:>8.1f} {floor}  {kernels['unfused']} -> {kernels['fused']}")


if __name__ == "__main__":
    main()
