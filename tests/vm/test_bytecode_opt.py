"""Bytecode optimisations (``nimble.vm.bytecode_opt``): liveness metadata instead of kills, tuples
never built, tail self calls as loops with hoisted constants, static memory planning. Optimised and
unoptimised bytecode give the same outputs on both VMs (the conftest runs this module on each)."""
import numpy as np
import pytest
import vm_kernels as K

import nimble
from nimble.vm import (
    AllocADT, AllocStorage, AllocTensor, GetField, If, Invoke, InvokePacked, KillRegister, LoadConsti, Move, Ret,
    VirtualMachine, VMFunction,
)
from nimble.vm import bytecode as bc
from nimble.vm.bytecode_opt import dead_after, optimize_bytecode, plan_offsets
from nimble.vm.liveness import insert_kills

F32 = "float32"


def opcodes(func) -> list:
    return [ins.opname for ins in func.instructions]


def run_both(functions, packed, *inputs):
    """Outputs of the program as written and optimised (same VM backend)."""
    plain = VirtualMachine(K.executable(functions, packed)).run(*inputs)
    opt = VirtualMachine(K.executable(optimize_bytecode(functions), packed)).run(*inputs)
    return plain, opt


# ---------------------------------------------------------------- the planner alone

@pytest.mark.parametrize("seed", range(40))
def test_planned_offsets_never_give_two_tensors_live_at_once_a_shared_byte(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    intervals = []
    for _ in range(n):
        a = int(rng.integers(0, 60))
        intervals.append((a, a + int(rng.integers(0, 15)), int(rng.choice([0, 1, 7, 64, 100, 256, 1000, 4096]))))
    offsets, total = plan_offsets(intervals)
    for k, ((s, e, nb), off) in enumerate(zip(intervals, offsets)):
        assert off % 64 == 0 and off + nb <= total
        for (s2, e2, nb2), off2 in zip(intervals[k + 1:], offsets[k + 1:]):
            if s <= e2 and s2 <= e and nb and nb2:
                assert off + nb <= off2 or off2 + nb2 <= off, (intervals, offsets)
    assert total <= sum(-(-nb // 64) * 64 for *_, nb in intervals)


def test_planner_puts_tensors_of_disjoint_lifetimes_at_one_offset():
    offsets, total = plan_offsets([(0, 3, 1000), (4, 9, 800), (10, 12, 1000)])
    assert offsets == [0, 0, 0] and total == 1000


def test_planner_rejects_an_interval_ending_before_it_starts():
    with pytest.raises(nimble.NimbleError, match="interval 0"):
        plan_offsets([(5, 2, 8)])


# ---------------------------------------------------------------- liveness metadata

def chain_program(k: int) -> VMFunction:
    """x -> x + y -> ... (k adds, each into a new static (16,) tensor), returns the last one."""
    code, prev, r = [], 0, 2
    for _ in range(k):
        code += K.alloc(r, r + 1, r + 2, (16,), F32, 64)
        code.append(InvokePacked(0, (prev, 1, r + 2), 1))
        prev, r = r + 2, r + 3
    code.append(Ret(prev))
    return VMFunction("main", ("x", "y"), tuple(insert_kills(code, 2)), r)


def test_kills_become_dead_after_lists_and_leave_the_stream():
    func = chain_program(4)
    assert "kill" in opcodes(func)
    (opt,) = optimize_bytecode([func], passes=())
    assert "kill" not in opcodes(opt)
    assert len(opt.dead_after) == len(opt.instructions)
    released = {r for dead in opt.dead_after for r in dead}
    assert {r for ins in func.instructions if isinstance(ins, KillRegister) for r in (ins.reg,)} <= released
    assert bc.function_from_json(bc.function_to_json(opt)) == opt


def test_dead_after_keeps_registers_read_on_a_later_path_alive_across_a_branch():
    # $3 is read on the false path only: it stays live across the if and dies at its read there;
    # $2 dies at the comparison; $0 is read by the ret of the true path
    code = [LoadConsti(1, 2), LoadConsti(0, 3), bc.If(0, 2, 1, 2), Ret(0), Move(3, 4), Ret(4)]
    from nimble.vm.bytecode_cfg import absolute

    dead = dead_after(absolute(code))
    assert dead[2] == (2,) and dead[4] == (3,) and dead[5] == ()


@pytest.mark.parametrize("n", [16])
def test_liveness_release_returns_storage_to_the_pool_within_the_run(n):
    (opt,) = optimize_bytecode([chain_program(6)], passes=())
    vm = VirtualMachine(K.executable([opt], [K.add_f32()]))
    x, y = np.arange(n, dtype=np.float32), np.ones(n, np.float32)
    np.testing.assert_array_equal(vm.run(x, y), x + 6)
    # each step's input is dropped once the next output is computed: at most 2 chain tensors live at once
    assert vm.pool.stats().peak_bytes_in_use <= 2 * 64 + 64


# ---------------------------------------------------------------- tuples, loops, planning, on both VMs

def test_tuple_built_only_to_be_unpacked_is_never_built():
    code = (*K.alloc(2, 3, 4, (16,), F32, 64), InvokePacked(0, (0, 1, 4), 1), AllocADT(0, (4, 0), 5),
            GetField(5, 0, 6), GetField(5, 1, 7), *K.alloc(8, 9, 10, (16,), F32, 64),
            InvokePacked(0, (6, 7, 10), 1), Ret(10))
    func = VMFunction("main", ("x", "y"), tuple(insert_kills(list(code), 2)), 11)
    (opt,) = optimize_bytecode([func])
    assert "alloc_adt" not in opcodes(opt) and "get_field" not in opcodes(opt)
    x, y = np.arange(16, dtype=np.float32), np.full(16, 2, np.float32)
    plain, out = run_both([func], [K.add_f32()], x, y)
    np.testing.assert_array_equal(out, plain)
    np.testing.assert_array_equal(out, x + y + x)


def sum_to_program():
    """main(n) = loop(n, 0); loop(n, acc) = acc if n == 0 else loop(n - 1, acc + n) (a tail call)."""
    main = VMFunction("main", ("n",), (LoadConsti(0, 1), Invoke(1, (0, 1), 2), Ret(2)), 3)
    code = [LoadConsti(0, 2), If(0, 2, 1, 2), Ret(1),
            *K.alloc(3, 4, 5, (), "int64", 8), InvokePacked(0, (0, 5), 1),  # $5 = n - 1
            *K.alloc(6, 7, 8, (), "int64", 8), InvokePacked(1, (1, 0, 8), 1),  # $8 = acc + n
            Invoke(1, (5, 8), 9), Move(9, 10), Ret(10)]
    return [main, VMFunction("loop", ("n", "acc"), tuple(insert_kills(code, 2)), 11)]


def test_tail_self_call_becomes_a_loop_with_constants_hoisted():
    functions = sum_to_program()
    opt = optimize_bytecode(functions)
    loop = opt[1]
    assert "invoke" not in opcodes(loop) and "kill" not in opcodes(loop)
    back = [pc for pc, ins in enumerate(loop.instructions) if isinstance(ins, bc.Goto) and ins.offset < 0]
    assert len(back) == 1
    head = back[0] + loop.instructions[back[0]].offset
    assert all(isinstance(ins, LoadConsti) for ins in loop.instructions[:head])  # hoisted in front
    assert not any(isinstance(ins, LoadConsti) and ins.value == 0 for ins in loop.instructions[head:])
    for n in (0, 1, 7, 300):
        plain, out = run_both(functions, [K.dec_i64(), K.add_i64()], np.array(n, np.int64))
        assert int(out) == int(plain) == n * (n + 1) // 2


def test_tail_loop_runs_deeper_than_the_call_depth_limit_on_the_python_vm(monkeypatch):
    from nimble.vm import interpreter

    monkeypatch.setattr(interpreter, "MAX_CALL_DEPTH", 50)
    exe = K.executable(optimize_bytecode(sum_to_program()), [K.dec_i64(), K.add_i64()])
    assert int(VirtualMachine(exe).run(np.array(2000, np.int64))) == 2000 * 2001 // 2


def random_dag_program(seed: int) -> VMFunction:
    """Random adds over (16,) tensors: each reads two earlier values; a random few are returned."""
    rng = np.random.default_rng(seed)
    values, code, r = [0, 1], [], 2
    for _ in range(int(rng.integers(3, 14))):
        a, b = (int(v) for v in rng.choice(values, 2))
        code += K.alloc(r, r + 1, r + 2, (16,), F32, 64)
        code.append(InvokePacked(0, (a, b, r + 2), 1))
        values.append(r + 2)
        r += 3
    kept = sorted({int(v) for v in rng.choice(values[2:], min(2, len(values) - 2), replace=False)})
    code += [AllocADT(0, tuple(kept), r), Ret(r)]
    return VMFunction("main", ("x", "y"), tuple(insert_kills(code, 2)), r + 1)


@pytest.mark.parametrize("seed", range(12))
def test_static_plan_of_random_programs_gives_the_unplanned_outputs(seed):
    func = random_dag_program(seed)
    (opt,) = optimize_bytecode([func])
    n_tensors = sum(isinstance(i, AllocTensor) for i in func.instructions)
    n_returned = len(next(i for i in func.instructions if isinstance(i, AllocADT)).fields)
    # one arena for every tensor not returned, plus one storage per returned tensor
    assert sum(isinstance(i, AllocStorage) for i in opt.instructions) == \
        (1 if n_tensors - n_returned >= 2 else n_tensors - n_returned) + n_returned
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((2, 16)).astype(np.float32)
    plain, out = run_both([func], [K.add_f32()], x, y)
    for p, o in zip(plain, out):
        np.testing.assert_array_equal(o, p)
