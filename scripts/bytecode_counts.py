"""Instruction counts per bytecode function of the LSTM, Tree-LSTM and BERT models (small configs),
compiled with and without the bytecode optimisations (``nimble.vm.bytecode_opt``).

    python scripts/bytecode_counts.py [--models lstm,tree,bert] [--disassemble lstm]
"""
from __future__ import annotations

import argparse
import os
from collections import Counter

from nimble.models import bert, lstm, tree_lstm
from nimble.vm import compiler

MODELS = {
    "lstm": lambda: lstm.build_module(lstm.random_weights(lstm.LSTMConfig(32, 64, 2), 0), lstm.LSTMConfig(32, 64, 2)),
    "tree": lambda: tree_lstm.build_module(tree_lstm.random_weights(tree_lstm.TreeLSTMConfig(), 0),
                                           tree_lstm.TreeLSTMConfig()),
    "bert": lambda: bert.build_module(bert.random_weights(bert.BertConfig(), 0), bert.BertConfig()),
}


def counts(exe) -> dict:
    """{function name: Counter of opcode names} plus a total per function."""
    return {f.name: Counter(i.opname for i in f.instructions) for f in exe.functions}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="lstm,tree,bert")
    p.add_argument("--disassemble", default="")
    args = p.parse_args()
    for name in args.models.split(","):
        mod = MODELS[name]()
        rows = {}
        for optimize in (False, True):
            os.environ["NIMBLE_BYTECODE_OPT"] = "1" if optimize else "0"
            exe = compiler.compile(mod)
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


if __name__ == "__main__":
    main()
