"""VM overhead, native VM beside the Python VM, in one process: ns per cheap instruction (a list
walk: get_tag, if, get_field, move, goto), per call/return pair (1,000 invokes of a function that
returns its argument), per tiny kernel call (1,000 x alloc_storage + alloc_tensor + invoke_packed
of an 8-element add). Medians of repeats after a warm-up.

``--models lstm,tree`` also measures the native VM's share of time outside kernels on
``bench_models.py``'s quick workloads in this process alone (no peer frameworks beside it, whose
thread pools distort a small machine): ``vm.profile`` as ``bench_models`` computes it (median of
passes), and ``native_profile``'s breakdown by instruction kind and boundary step. Threads:
``NIMBLE_NUM_THREADS``.

    python scripts/bench_vm.py [--repeat 15]
    NIMBLE_NUM_THREADS=1 python scripts/bench_vm.py --models lstm,tree --count 0
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

import nimble
from nimble import te
from nimble.vm import (
    ADT, AllocStorage, AllocTensor, GetField, GetTag, Goto, If, Invoke, InvokePacked, LoadConsti, Move, Ret,
    VirtualMachine, VMFunction,
)
from nimble.vm.executable import Executable, KernelEntry, host_metadata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import cpu_name  # noqa: E402


def executable(functions, packed) -> Executable:
    return Executable(tuple(functions), (), tuple(packed), {f.name: i for i, f in enumerate(functions)},
                      host_metadata())


def add_kernel() -> KernelEntry:
    n = te.var("n")
    a, b = te.placeholder((n,), name="A"), te.placeholder((n,), name="B")
    c = te.compute((n,), lambda i: a[i] + b[i], name="C")
    return KernelEntry.from_kernel(nimble.build([c], [a, b, c], name="bench_add"))


def dec_kernel() -> KernelEntry:
    a = te.placeholder((), "int64", name="A")
    c = te.compute((), lambda: a[()] - 1, name="C")
    return KernelEntry.from_kernel(nimble.build([c], [a, c], name="bench_dec"))


def programs(nodes: int, calls: int, kernels: int, reps: int = 100) -> list:
    # walk(list, reps): reps walks over the list (get_tag, if, get_field, move, goto per node), so that
    # passing the list in (once) is a small part of the time
    walk = VMFunction("main", ("list", "reps"), (
        LoadConsti(0, 2), If(1, 2, 13, 1), Move(0, 3),
        GetTag(3, 4), If(4, 2, 4, 1), GetField(3, 1, 5), Move(5, 3), Goto(-4),
        LoadConsti(8, 6), AllocStorage(6, 64, 0, 7), AllocTensor(7, 0, (), "int64", 8), InvokePacked(0, (1, 8), 1),
        Move(8, 1), Goto(-12),
        Ret(2)), 9)
    lst = ADT(0, ())
    head = np.zeros((), np.int64)
    for _ in range(nodes // reps):
        lst = ADT(1, (head, lst))
    callee = VMFunction("callee", ("x",), (Ret(0),), 1)
    caller = VMFunction("main", ("x",), tuple(Invoke(1, (0,), 1) for _ in range(calls)) + (Ret(1),), 2)
    body = []
    for _ in range(kernels):
        body += [LoadConsti(32, 2), AllocStorage(2, 64, 0, 3), AllocTensor(3, 0, (8,), "float32", 4),
                 InvokePacked(0, (0, 1, 4), 1)]
    x = np.ones(8, np.float32)
    return [
        ("cheap instruction (list walk)", executable([walk], [dec_kernel()]), (lst, np.array(reps)),
         (nodes // reps) * reps * 5),
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
    p.add_argument("--count", type=int, default=1000, help="calls / kernel calls per program (0: none)")
    p.add_argument("--models", default="", help="comma-separated bench_models models (lstm, tree, bert): VM share")
    p.add_argument("--passes", type=int, default=5, help="profiled passes over a model's workload")
    args = p.parse_args()
    print(f"CPU: {cpu_name()}; nimble {nimble.__version__}")
    if args.models:
        model_shares([m.strip() for m in args.models.split(",") if m.strip()], args.passes)
    if not args.count:
        return
    print("| program | units | Python VM ns/unit | native VM ns/unit | speedup |")
    print("|---|---|---|---|---|")
    for name, exe, inputs, units in programs(args.count * 100, args.count, args.count):
        row = []
        for backend in ("python", "native"):
            vm = VirtualMachine(exe, backend=backend)
            row.append(median_ns(lambda: vm.run(*inputs), args.repeat) / units)
        print(f"| {name} | {units} | {row[0]:.0f} | {row[1]:.1f} | {row[0] / row[1]:.0f}x |")


def model_shares(models: list, passes: int) -> None:
    """Per model: the native VM's share outside kernels on bench_models' quick workload, two ways."""
    import os
    import sys
    import tempfile

    from nimble.codegen.threads import num_threads
    from nimble.tuner import Database
    from nimble.vm.native_profile import native_profile

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_models as bm

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            module, config, workloads = bm.model_spec(model)
            weights = module.random_weights(config, 0)
            exe = nimble.compile(module.build_module(weights, config), records=Database(os.path.join(tmp, "none.db")))
            vm = VirtualMachine(exe, backend="native")
            workload = workloads(config, 10)[-1 if model == "bert" else 0]
            prepare = (lambda item, m=module, c=config: m.to_inputs(item, c)) if model == "tree" else module.to_inputs
            items = [prepare(x) for x in workload.items]
            for x in items:
                vm.run(*x)
            share = bm.vm_overhead(vm, items, passes)
            prof = native_profile(vm, items, repeat=passes)
            rows.append((workload.label, share, prof))
            print(prof.table() + "\n")
    print(f"| workload ({num_threads()} thread(s)) | vm.profile share (median of {passes}) | native_profile share |")
    print("|---|---|---|")
    for label, share, prof in rows:
        print(f"| {label} | {share:.1%} | {prof.vm_share:.1%} |")
    print()


if __name__ == "__main__":
    main()
