"""Instruction counts per bytecode function of the LSTM, Tree-LSTM and BERT models (small configs),
compiled with and without the bytecode optimisations (``nimble.vm.bytecode_opt``); with ``--time``,
also the median run time of one input on both VMs, optimised and not (runs interleaved).

    python scripts/bytecode_counts.py [--models lstm,tree,bert] [--disassemble lstm] [--time]
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter

import numpy as np

from nimble import settings
from nimble.models import bert, lstm, tree_lstm
from nimble.vm import compiler

MODELS = {
    "lstm": lambda: lstm.build_module(lstm.random_weights(lstm.LSTMConfig(32, 64, 2), 0), lstm.LSTMConfig(32, 64, 2)),
    "tree": lambda: tree_lstm.build_module(tree_lstm.random_weights(tree_lstm.TreeLSTMConfig(), 0),
                                           tree_lstm.TreeLSTMConfig()),
    "bert": lambda: bert.build_module(bert.random_weights(bert.BertConfig(), 0), bert.BertConfig()),
}


def sample_input(name: str):
    rng = np.random.default_rng(0)
    if name == "lstm":
        return lstm.to_inputs(rng.standard_normal((50, 32)).astype(np.float32))
    if name == "tree":
        def tree(leaves):
            if leaves == 1:
                return rng.standard_normal((1, 300)).astype(np.float32)
            return (tree(leaves // 2), tree(leaves - leaves // 2))
        return tree_lstm.to_inputs(tree(30))
    return bert.to_inputs(rng.standard_normal((32, 768)).astype(np.float32))


def run_times(exes: dict, inputs, repeat: int = 15) -> dict:
    """{(backend, optimised): median ms}, the four runs interleaved."""
    from nimble import VirtualMachine

    vms = {(b, o): VirtualMachine(exe, backend=b) for o, exe in exes.items() for b in ("python", "native")}
    times: dict = {k: [] for k in vms}
    for _ in range(repeat + 1):
        for k, vm in vms.items():
            t0 = time.perf_counter()
            vm.run(*inputs)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v[1:]) * 1e3 for k, v in times.items()}


def counts(exe) -> dict:
    """{function name: Counter of opcode names} plus a total per function."""
    return {f.name: Counter(i.opname for i in f.instructions) for f in exe.functions}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="lstm,tree,bert")
    p.add_argument("--disassemble", default="")
    p.add_argument("--time", action="store_true", help="also time one input on both VMs")
    args = p.parse_args()
    for name in args.models.split(","):
        mod = MODELS[name]()
        rows, exes = {}, {}
        for optimize in (False, True):
            settings.update(bytecode_opt=optimize)
            exe = exes[optimize] = compiler.compile(mod)
            rows[optimize] = counts(exe)
            if name == args.disassemble:
                print(exe.disassemble())
        print(f"\n## {name}\n\n| function | instructions before | after | kills before | "
              "alloc_storage before | after | load_const(i) before | after |")
        print("|---|---|---|---|---|---|---|---|")
        for fname, before in rows[False].items():
            after = rows[True].get(fname, Counter())
            print(f"| {fname} | {sum(before.values())} | {sum(after.values())} | {before['kill']} | "
                  f"{before['alloc_storage']} | {after['alloc_storage']} | "
                  f"{before['load_const'] + before['load_consti']} | {after['load_const'] + after['load_consti']} |")
        if args.time:
            ms = run_times(exes, sample_input(name))
            print("\n| VM | unoptimised ms | optimised ms |\n|---|---|---|")
            for backend in ("python", "native"):
                print(f"| {backend} | {ms[(backend, False)]:.2f} | {ms[(backend, True)]:.2f} |")


if __name__ == "__main__":
    main()
