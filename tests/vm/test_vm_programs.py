"""Hand-written bytecode programs run by the VM: straight line, branches, recursion, ADTs,
closures, shape functions, reshape, copies, kills and errors raised inside the VM."""
import sys

import numpy as np
import pytest
import vm_kernels as K

import nimble
from nimble.vm import (
    ADT, AllocADT, AllocClosure, AllocStorage, AllocTensorReg, DeviceCopy, Fatal, GetField, GetTag, HostFuncEntry,
    If, Invoke, InvokeClosure, InvokePacked, KillRegister, LoadConst, LoadConsti, ReshapeTensor, Ret, ShapeOf,
    VirtualMachine, VMFunction,
)
from nimble.vm import interpreter

F32 = "float32"


def test_straight_line_program_adds_two_vectors():
    main = VMFunction("main", ("x", "y"), (*K.alloc(2, 3, 4, (16,), F32, 64), InvokePacked(0, (0, 1, 4), 1), Ret(4)), 5)
    vm = VirtualMachine(K.executable([main], [K.add_f32()]))
    x, y = np.arange(16, dtype=np.float32), np.full(16, 0.5, np.float32)
    np.testing.assert_array_equal(vm.run(x, y), x + y)
    assert vm.kernel_calls == [1]


@pytest.mark.parametrize("n", [0, 5, 8, 13, 64])
def test_symbolic_length_takes_residue_variant_or_general_kernel(n):
    # the output's shape comes from the input's (shape_of), in an upper-bound storage
    code = (ShapeOf(0, 2), LoadConsti(4 * 64, 3), AllocStorage(3, 64, 0, 4), AllocTensorReg(4, 0, 2, F32, 5),
            InvokePacked(0, (0, 1, 5), 1), Ret(5))
    vm = VirtualMachine(K.executable([VMFunction("main", ("x", "y"), code, 6)], [K.add_f32()]))
    x, y = np.random.default_rng(n).standard_normal((2, n)).astype(np.float32)
    np.testing.assert_array_equal(vm.run(x, y), x + y)


IF_PROGRAM = (
    LoadConsti(1, 2),
    If(1, 2, 1, 6),  # flag == 1 -> 2, else -> 7
    *K.alloc(3, 4, 5, (4,), F32, 16),
    InvokePacked(0, (0, 0, 5), 1),
    Ret(5),
    Ret(0),
)


@pytest.mark.parametrize("flag", [True, False, 1, 0])
def test_if_branches_on_a_register_compare(flag):
    vm = VirtualMachine(K.executable([VMFunction("main", ("x", "flag"), IF_PROGRAM, 6)], [K.add_f32()]))
    x = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(vm.run(x, np.array(flag)), x + x if flag else x)


def countdown_exe():
    """main(n) = count(n); count(n) = 0 if n == 0 else count(n - 1) + 1 (not a tail call)."""
    main = VMFunction("main", ("n",), (Invoke(1, (0,), 1), Ret(1)), 2)
    count = VMFunction("count", ("n",), (
        LoadConsti(0, 1),
        If(0, 1, 1, 2),
        Ret(0),
        *K.alloc(2, 3, 4, (), "int64", 8),
        InvokePacked(0, (0, 4), 1),  # m = n - 1
        Invoke(1, (4,), 5),
        LoadConsti(1, 6),
        *K.alloc(2, 3, 7, (), "int64", 8),
        InvokePacked(1, (5, 6, 7), 1),  # count(m) + 1
        Ret(7),
    ), 8)
    return K.executable([main, count], [K.dec_i64(), K.add_i64()])


def test_recursion_ten_thousand_deep_needs_no_python_recursion():
    vm = VirtualMachine(countdown_exe())
    assert sys.getrecursionlimit() < 10_000
    assert vm.run(np.array(10_000)).item() == 10_000
    assert vm.kernel_calls == [10_000, 10_000]


def test_runaway_recursion_stops_at_the_call_depth_limit(monkeypatch):
    monkeypatch.setattr(interpreter, "MAX_CALL_DEPTH", 50)
    with pytest.raises(nimble.NimbleError, match="call depth exceeds 50"):
        VirtualMachine(countdown_exe()).run(np.array(100))


def test_kernel_check_failure_raises_out_of_range_with_the_vm_location():
    main = VMFunction("main", ("n",), (*K.alloc(1, 2, 3, (), "int64", 8), InvokePacked(0, (0, 3), 1), Ret(3)), 4)
    with pytest.raises(nimble.OutOfRangeError, match="countdown below zero") as info:
        VirtualMachine(K.executable([main], [K.dec_i64()])).run(np.array(0))
    assert "@main[3]: invoke_packed @dec_i64" in "".join(info.value.__notes__)


def list_exe():
    """main(n): builds the list [1, 2, ..., n] (Cons tag 1, Nil tag 0) and returns (sum, list)."""
    main = VMFunction("main", ("n",), (
        AllocADT(0, (), 1),  # Nil
        Invoke(1, (0, 1), 2),
        LoadConst(0, 3),
        Invoke(2, (2, 3), 4),
        AllocADT(0, (4, 2), 5),  # the (sum, list) tuple
        Ret(5),
    ), 6)
    build = VMFunction("build", ("n", "tail"), (
        LoadConsti(0, 2),
        If(0, 2, 1, 2),
        Ret(1),
        AllocADT(1, (0, 1), 6),  # Cons(n, tail)
        *K.alloc(3, 4, 5, (), "int64", 8),
        InvokePacked(0, (0, 5), 1),
        Invoke(1, (5, 6), 7),
        Ret(7),
    ), 8)
    total = VMFunction("sum", ("list", "acc"), (
        GetTag(0, 2),
        LoadConsti(0, 3),
        If(2, 3, 1, 2),
        Ret(1),
        GetField(0, 0, 4),
        GetField(0, 1, 5),
        *K.alloc(6, 7, 8, (), "int64", 8),
        InvokePacked(1, (1, 4, 8), 1),
        Invoke(2, (5, 8), 9),
        Ret(9),
    ), 10)
    outputs = {"main": {"kind": "tuple", "fields": [{"shape": [], "dtype": "int64"}, {"kind": "adt", "name": "List"}]}}
    return K.executable([main, build, total], [K.dec_i64(), K.add_i64()], [np.array(0, dtype=np.int64)],
                        outputs=outputs)


def test_adt_list_is_built_matched_and_summed():
    total, lst = VirtualMachine(list_exe()).run(np.array(100))
    assert total.item() == 5050
    heads = []
    while lst.tag == 1:
        heads.append(lst.fields[0].item())
        lst = lst.fields[1]
    assert heads == list(range(1, 101)) and lst == ADT(0, ())


def test_closure_captures_values_passed_before_the_call_arguments():
    main = VMFunction("main", ("x", "y"), (AllocClosure(1, (1,), 2), InvokeClosure(2, (0,), 3), Ret(3)), 4)
    add_y = VMFunction("add_y", ("y", "x"), (
        *K.alloc(2, 3, 4, (8,), F32, 32), InvokePacked(0, (1, 0, 4), 1), AllocADT(0, (0, 4), 5), Ret(5)), 6)
    vm = VirtualMachine(K.executable([main, add_y], [K.add_f32()]))
    x, y = np.arange(8, dtype=np.float32), np.full(8, 10, np.float32)
    captured, total = vm.run(x, y)
    assert captured is y
    np.testing.assert_array_equal(total, x + y)


def broadcast_exe(input_modes=()):
    """main(x: (n, m), b: (m,)) = x + b with the output shape from the `add` shape function."""
    shapes = (ShapeOf(0, 2), ShapeOf(1, 3)) if not input_modes else ()
    host_args = (2, 3, 6) if not input_modes else (0, 1, 6)
    code = (*shapes, *K.alloc(4, 5, 6, (2,), "int64", 16), InvokePacked(0, host_args, 1),
            *K.alloc(7, 8, 9, (), "int64", 8), InvokePacked(1, (6, 9), 1),  # storage bytes from the shape
            AllocStorage(9, 64, 0, 10), AllocTensorReg(10, 0, 6, F32, 11),
            InvokePacked(2, (0, 1, 11), 1), Ret(11))
    packed = [HostFuncEntry("add_shape", "shape_func", "add", {}, input_modes), K.nbytes_f32_2d(), K.add_rows_f32()]
    inputs = {"main": [{"shape": [None, None], "dtype": F32}, {"shape": [None], "dtype": F32}]}
    return K.executable([VMFunction("main", ("x", "b"), code, 12)], packed, inputs=inputs)


@pytest.mark.parametrize("input_modes", [(), ("shape", "shape")])
@pytest.mark.parametrize("n,m", [(3, 5), (0, 4), (7, 1), (2, 0)])
def test_shape_function_sizes_the_output_of_a_broadcast(input_modes, n, m):
    vm = VirtualMachine(broadcast_exe(input_modes))
    x, b = np.ones((n, m), np.float32), np.arange(m, dtype=np.float32)
    out = vm.run(x, b)
    assert out.shape == (n, m)
    np.testing.assert_array_equal(out, x + b)


def test_reshape_tensor_is_a_checked_view():
    def run(newshape, x):
        main = VMFunction("main", ("x",), (LoadConst(0, 1), ReshapeTensor(0, 1, 2), Ret(2)), 3)
        return VirtualMachine(K.executable([main], [], [np.array(newshape, np.int64)])).run(x)

    x = np.arange(6, dtype=np.float32)
    y = run([2, 3], x)
    assert y.shape == (2, 3) and np.shares_memory(x, y)
    with pytest.raises(nimble.ShapeError, match=r"shape \(6,\) \(6 elements\) as shape \(4, 2\)"):
        run([4, 2], x)


def test_device_copy_on_the_cpu_copies():
    main = VMFunction("main", ("x",), (DeviceCopy(0, 0, 0, 1), Ret(1)), 2)
    x = np.arange(3, dtype=np.float32)
    y = VirtualMachine(K.executable([main], [])).run(x)
    assert np.array_equal(x, y) and not np.shares_memory(x, y)


def test_fatal_raises_its_message_and_location():
    main = VMFunction("main", ("x",), (Fatal("no pattern matched the value"),), 1)
    with pytest.raises(nimble.NimbleError, match="fatal at @main\\[0\\]: no pattern matched the value"):
        VirtualMachine(K.executable([main], [])).run(np.zeros(1))


def test_killed_tensor_returns_its_storage_within_the_run():
    code = (*K.alloc(0, 1, 2, (16,), F32, 64), KillRegister(2), KillRegister(1),
            *K.alloc(0, 3, 4, (16,), F32, 64), Ret(4))
    vm = VirtualMachine(K.executable([VMFunction("main", (), code, 5)], []))
    vm.run()
    assert (vm.pool.system_allocations, vm.pool.pool_reuses) == (1, 1)


def test_wrong_value_kinds_inside_the_vm_are_named():
    get_tag = VMFunction("main", ("x",), (GetTag(0, 1), Ret(1)), 2)
    with pytest.raises(nimble.NimbleError, match=r"get_tag: register \$0 holds ndarray, not an ADT"):
        VirtualMachine(K.executable([get_tag], [])).run(np.zeros(1))
    packed_adt = VMFunction("main", ("x",), (AllocADT(0, (0,), 1), *K.alloc(2, 3, 4, (1,), F32, 4),
                                             InvokePacked(0, (1, 0, 4), 1), Ret(4)), 5)
    with pytest.raises(nimble.TypeError, match="add_f32: argument #0 must be a tensor, got ADT"):
        VirtualMachine(K.executable([packed_adt], [K.add_f32()])).run(np.zeros(1, np.float32))


@pytest.mark.parametrize("backend", ["python", "native"])
def test_a_kernel_whose_first_argument_is_a_scalar_and_whose_shape_var_is_on_another(backend):
    """dyn.full(fill 0-d, shape (1,)) of a dim read at run time: the Python VM's three-argument fast path once read
    dim 0 of the 0-d fill value (IndexError)."""
    from nimble import ir
    from nimble import ops as nb
    from nimble.ir import Any

    x = ir.var("x", shape=(2, Any), dtype="float32")
    shape = nb.reshape(nb.take(nb.shape_of(x), ir.const(np.array(1, np.int64)), axis=0), (1,))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], nb.full(ir.const(np.array(7, np.int64)), shape)))
    vm = nimble.VirtualMachine(nimble.compile(mod), backend=backend)
    for n in (0, 1, 5):
        np.testing.assert_array_equal(vm.run(np.zeros((2, n), np.float32)), np.full(n, 7, np.int64))
