"""The native VM against the Python VM: identical outputs on random shapes, errors raised inside
native code, memory after many runs (and many failing runs), several threads on one executable."""
import threading

import numpy as np
import pytest
import vm_kernels as K
from hypothesis import given, settings
from hypothesis import strategies as st

import nimble
from nimble.models import bert, tree_lstm
from nimble.vm import ADT, InvokePacked, Ret, VirtualMachine, VMFunction


@pytest.fixture(scope="module", autouse=True)
def vm_backend():
    """These tests pick their VMs themselves (overrides the folder's two-backend parametrization)."""
    yield "both"


@pytest.fixture(scope="module")
def tiny_bert():
    cfg = bert.BertConfig(num_layers=1, hidden_size=32, num_heads=2, intermediate_size=64)
    exe = nimble.compile(bert.build_module(bert.random_weights(cfg, 0), cfg))
    return exe, VirtualMachine(exe, backend="native"), VirtualMachine(exe, backend="python")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_the_default_vm_is_native(tiny_bert, nimble_env):
    exe, native, _ = tiny_bert
    nimble_env(NIMBLE_VM=None)
    assert VirtualMachine(exe).backend == "native" and native.backend == "native"
    nimble_env(NIMBLE_VM="python")
    assert VirtualMachine(exe).backend == "python"
    with pytest.raises(nimble.NimbleError, match="NIMBLE_VM: expected one of"):
        nimble_env(NIMBLE_VM="jit")


@settings(max_examples=40, deadline=None)
@given(n=st.one_of(st.sampled_from([0, 1, 2, 3, 7, 8, 13, 31, 64, 97, 128, 257]), st.integers(0, 300)))
def test_both_vms_give_identical_outputs_on_random_lengths(tiny_bert, n):
    _, native, python = tiny_bert
    x = np.random.default_rng(n).standard_normal((n, 32)).astype(np.float32)
    a, b = native.run(x), python.run(x)
    assert a.shape == b.shape == (n, 32)
    np.testing.assert_array_equal(a, b)


def test_tree_lstm_matches_on_random_trees_of_both_vms():
    cfg = tree_lstm.TreeLSTMConfig(input_size=16, hidden_size=8)
    exe = nimble.compile(tree_lstm.build_module(tree_lstm.random_weights(cfg, 0), cfg))
    native, python = VirtualMachine(exe, backend="native"), VirtualMachine(exe, backend="python")
    rng = np.random.default_rng(3)
    for leaves in [1, 2, 3, 5, 17, 60]:
        ins = tree_lstm.to_inputs(tree_lstm.random_tree(rng, leaves, cfg.input_size), cfg)
        for a, b in zip(native.run(*ins), python.run(*ins)):
            np.testing.assert_array_equal(a, b)


def test_outputs_view_native_storage_and_outlive_the_vm(tiny_bert):
    exe, _, python = tiny_bert
    vm = VirtualMachine(exe, backend="native")
    x = np.ones((5, 32), np.float32)
    out = vm.run(x)
    assert not out.flags.owndata  # a view of the VM's storage, not a copy
    del vm
    np.testing.assert_array_equal(out, python.run(x))  # still valid: the storage lives while viewed
    again = VirtualMachine(exe, backend="native").run(x)
    np.testing.assert_array_equal(out, again)


def test_a_storage_returns_to_the_pool_when_the_last_output_view_dies(tiny_bert):
    exe, _, _ = tiny_bert
    vm = VirtualMachine(exe, backend="native")
    x = np.ones((9, 32), np.float32)
    vm.run(x)
    system = vm.pool.system_allocations
    for _ in range(5):
        vm.run(x)  # the previous output is dropped at once: its block is reused
    assert vm.pool.system_allocations == system
    kept = [vm.run(x) for _ in range(3)]  # kept outputs are never overwritten
    assert vm.pool.system_allocations > system
    assert all(np.array_equal(k, kept[0]) for k in kept)


def test_ten_thousand_runs_with_random_shapes_do_not_grow_memory(tiny_bert):
    _, vm, _ = tiny_bert
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((int(n), 32)).astype(np.float32) for n in rng.integers(1, 64, size=64)]
    for x in inputs * 8:  # warm-up: every size class in the pool
        vm.run(x)
    before = _rss_bytes()
    for i in range(10_000):
        vm.run(inputs[i % len(inputs)])
    grown = (_rss_bytes() - before) / before
    assert grown < 0.01, f"RSS grew by {grown:.2%} over 10,000 runs"


def test_ten_thousand_failing_calls_leak_nothing():
    main = VMFunction("main", ("n",), (*K.alloc(1, 2, 3, (), "int64", 8), InvokePacked(0, (0, 3), 1), Ret(3)), 4)
    vm = VirtualMachine(K.executable([main], [K.dec_i64()]), backend="native")
    zero = np.array(0)
    for _ in range(200):
        with pytest.raises(nimble.OutOfRangeError):
            vm.run(zero)
    before, in_use = _rss_bytes(), vm.pool.stats().bytes_in_use
    for _ in range(10_000):
        try:
            vm.run(zero)
        except nimble.OutOfRangeError:
            pass
    assert (_rss_bytes() - before) / before < 0.01
    assert vm.pool.stats().bytes_in_use == in_use  # the failed call's storage went back to the pool


def test_a_failing_kernel_names_the_function_instruction_and_shapes():
    main = VMFunction("main", ("x", "y"), (*K.alloc(2, 3, 4, (8,), "float32", 32), InvokePacked(0, (0, 1, 4), 1),
                                           Ret(4)), 5)
    vm = VirtualMachine(K.executable([main], [K.add_f32()]), backend="native")
    with pytest.raises(nimble.ShapeError, match=r"add_f32: argument #1 .* \(8,\) float32") as info:
        vm.run(np.ones(8, np.float32), np.ones(5, np.float32))  # n = 8 from x, 5 from y
    assert "@main[3]: invoke_packed" in "".join(info.value.__notes__)


def test_a_non_tensor_where_a_kernel_wants_one_is_a_type_error():
    main = VMFunction("main", ("x",), (InvokePacked(0, (0, 0, 0), 1), Ret(0)), 1)
    vm = VirtualMachine(K.executable([main], [K.add_f32()]), backend="native")
    with pytest.raises(nimble.TypeError, match="argument #0 must have dtype float32, got float64"):
        vm.run(np.ones(3))


def test_deep_lists_go_in_and_out_without_recursion():
    lst = ADT(0, ())
    for k in range(100_000):
        lst = ADT(1, (np.array(k), lst))
    main = VMFunction("main", ("xs",), (Ret(0),), 1)
    out = VirtualMachine(K.executable([main], []), backend="native").run(lst)
    depth = 0
    while out.tag == 1:
        out = out.fields[1]
        depth += 1
    assert depth == 100_000


def test_vms_on_several_threads_share_one_executable(tiny_bert):
    exe, _, python = tiny_bert
    xs = [np.random.default_rng(n).standard_normal((n, 32)).astype(np.float32) for n in range(1, 41)]
    want = [python.run(x) for x in xs]
    errors = []

    def work(offset):
        vm = VirtualMachine(exe, backend="native")
        for _ in range(5):
            for k in range(len(xs)):
                i = (k + offset) % len(xs)
                if not np.array_equal(vm.run(xs[i]), want[i]):
                    errors.append(i)

    threads = [threading.Thread(target=work, args=(t * 7,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_one_vm_used_by_two_threads_at_once_says_so(tiny_bert):
    exe, _, _ = tiny_bert
    vm = VirtualMachine(exe, backend="native")
    vm._vm._lock.acquire()  # as if another thread were inside run()
    try:
        with pytest.raises(nimble.NimbleError, match="running on another thread"):
            vm.run(np.ones((2, 32), np.float32))
    finally:
        vm._vm._lock.release()
