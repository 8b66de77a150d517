"""Memory of a compiled model in the VM: peak bytes held in storages, the exact sizes' peak, and
system allocations per run after warm-up.

    python scripts/memory_report.py --model bert --seq 128
"""
from __future__ import annotations

import argparse

import numpy as np

import nimble
from nimble.models import bert, lstm


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="bert", choices=("bert", "lstm"))
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--layers", type=int, default=12)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    if args.model == "bert":
        cfg = bert.BertConfig(num_layers=args.layers)
        mod = bert.build_module(bert.random_weights(cfg, 0), cfg)
        inputs = (rng.standard_normal((args.seq, cfg.hidden_size)).astype("float32"),)
    else:
        cfg = lstm.LSTMConfig()
        mod = lstm.build_module(lstm.random_weights(cfg, 0), cfg)
        inputs = lstm.to_inputs(rng.standard_normal((args.seq, 300)).astype("float32"))
    vm = nimble.VirtualMachine(nimble.compile(mod))
    vm.run(*inputs)  # warm-up: the pool fills its free lists
    before = vm.pool.stats()
    vm.pool.reset_peak()
    out = vm.run(*inputs)
    after = vm.pool.stats()
    del out
    print(f"| {args.model} seq {args.seq} | value |")
    print("|---|---|")
    print(f"| peak bytes in VM storages (size-classed blocks) | {after.peak_bytes_in_use / 2**20:.2f} MiB |")
    print(f"| peak of the exact sizes of live storages (lower bound of this allocation order) | "
          f"{after.peak_bytes_requested / 2**20:.2f} MiB |")
    print(f"| ratio | {after.peak_bytes_in_use / max(after.peak_bytes_requested, 1):.3f} |")
    print(f"| storages allocated from the system in the second run | "
          f"{after.system_allocations - before.system_allocations} |")
    print(f"| storages reused from the pool in the second run | {after.pool_reuses - before.pool_reuses} |")


if __name__ == "__main__":
    main()
