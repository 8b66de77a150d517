"""Interpreter overhead: ns per cheap instruction (a list walk of GetTag/If/GetField/Move/Goto),
per call (Invoke + Ret) and per tiny kernel call (alloc + InvokePacked). Run as a script to print."""
import time

import numpy as np
import vm_kernels as K

from nimble.vm import (
    ADT, GetField, GetTag, Goto, If, Invoke, InvokePacked, LoadConsti, Move, Ret, VirtualMachine, VMFunction,
)

WALK = VMFunction("main", ("list",), (
    LoadConsti(0, 2),
    GetTag(0, 3),
    If(3, 2, 5, 1),  # Nil -> 7
    GetField(0, 1, 4),
    Move(4, 0),
    Move(0, 5),
    Goto(-5),
    Ret(5),
), 6)
WALK_PER_NODE = 6  # get_tag, if, get_field, move, move, goto


def _best_of(fn, repeat=5):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        best = min(best, time.perf_counter_ns() - t0)
    return best


def measure(nodes: int = 100_000, calls: int = 1_000, kernels: int = 1_000) -> dict:
    lst = ADT(0, ())
    head = np.zeros((), np.int64)
    for _ in range(nodes):
        lst = ADT(1, (head, lst))
    walk = VirtualMachine(K.executable([WALK], []))
    per_instr = _best_of(lambda: walk.run(lst)) / (nodes * WALK_PER_NODE)

    callee = VMFunction("callee", ("x",), (Ret(0),), 1)
    caller = VMFunction("main", ("x",), tuple(Invoke(1, (0,), 1) for _ in range(calls)) + (Ret(1),), 2)
    call_vm = VirtualMachine(K.executable([caller, callee], []))
    per_call = _best_of(lambda: call_vm.run(np.zeros(1))) / calls

    body = []
    for _ in range(kernels):
        body += [*K.alloc(2, 3, 4, (8,), "float32", 32), InvokePacked(0, (0, 1, 4), 1)]
    packed_vm = VirtualMachine(K.executable([VMFunction("main", ("x", "y"), tuple(body) + (Ret(4),), 5)],
                                            [K.add_f32()]))
    x = np.ones(8, np.float32)
    per_kernel = _best_of(lambda: packed_vm.run(x, x)) / kernels
    return {"ns_per_instruction": per_instr, "ns_per_invoke_ret": per_call,
            "ns_per_alloc_and_tiny_kernel": per_kernel}


def test_cheap_instructions_cost_well_under_a_microsecond():
    m = measure(nodes=20_000, calls=100, kernels=100)
    print(m)
    assert m["ns_per_instruction"] < 1_000  # about 100 ns here; a slowed hot loop would show


if __name__ == "__main__":
    for name, ns in measure().items():
        print(f"{name:<32} {ns:8.0f} ns")
