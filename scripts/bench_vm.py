"""VM overhead, native VM beside the Python VM, in one process: ns per cheap instruction (a list
walk: get_tag, if, get_field, move, goto), per call/return pair (1,000 invokes of a function that
returns its argument), per tiny kernel call (1,000 x alloc_storage + alloc_tensor + invoke_packed
of an 8-element add). Medians of repeats after a warm-up.

    python scripts/bench_vm.py [--repeat 15]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

import nimble
from nimble import te
from nimble.vm import (
    ADT, AllocStorage, AllocTensor, GetField, GetTag, Goto, If, Invoke, InvokePacked, LoadConsti, Move, Ret,
    VirtualMachine, VMFunction,
)
from nimble.vm.executable import Executable, KernelEntry, host_metadata


def executable(functions, packed) -> Executable:
    return Executable(tuple(functions), (), tuple(packed), {f.name: i for i, f in enumerate(functions)},
                      host_metadata())


def add_kernel() -> KernelEntry:
    n = te.var("n")
    a, b = te.placeholder((n,), name="A"), te.placeholder((n,), name="B")
    c = te.compute((n,), lambda i: a[i] + b[i], name="C")
    return KernelEntry.from_kernel(nimble.build([c], [a, b, c], name="bench_add"))


def programs(nodes: int, calls: int, kernels: int) -> list:
    walk = VMFunction("main", ("list",), (
        LoadConsti(0, 2), GetTag(0, 3), If(3, 2, 5, 1), GetField(0, 1, 4), Move(4, 0), Move(0, 5), Goto(-5),
        Ret(5)), 6)
    lst = ADT(0, ())
    head = np.zeros((), np.int64)
    for _ in range(nodes):
        lst = ADT(1, (head, lst))
    callee = VMFunction("callee", ("x",), (Ret(0),), 1)
    caller = VMFunction("main", ("x",), tuple(Invoke(1, (0,), 1) for _ in range(calls)) + (Ret(1),), 2)
    body = []
    for _ in range(kernels):
        body += [LoadConsti(32, 2), AllocStorage(2, 64, 0, 3), AllocTensor(3, 0, (8,), "float32", 4),
                 InvokePacked(0, (0, 1, 4), 1)]
    x = np.ones(8, np.float32)
    return [
        ("cheap instruction (list walk)", executable([walk], []), (lst,), nodes * 6),
        ("invoke + ret", executable([caller, callee], []), (np.zeros(1),), calls),
        ("alloc + tiny kernel call", executable([VMFunction("main", ("x", "y"), tuple(body) + (Ret(4),), 5)],
                                                [add_kernel()]), (x, x), kernels),
    ]


def median_ns(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--count", type=int, default=1000, help="calls / kernel calls per program")
    args = p.parse_args()
    print(f"CPU: {platform.processor() or platform.machine()}; nimble {nimble.__version__}")
    print("| program | units | Python VM ns/unit | native VM ns/unit | speedup |")
    print("|---|---|---|---|---|")
    for name, exe, inputs, units in programs(args.count * 10, args.count, args.count):
        row = []
        for backend in ("python", "native"):
            vm = VirtualMachine(exe, backend=backend)
            row.append(median_ns(lambda: vm.run(*inputs), args.repeat) / units)
        print(f"| {name} | {units} | {row[0]:.0f} | {row[1]:.1f} | {row[0] / row[1]:.0f}x |")


if __name__ == "__main__":
    main()
