"""Inputs to ``run`` are checked against the declared input types, with errors naming the input."""
import numpy as np
import pytest
import vm_kernels as K
from test_vm_programs import broadcast_exe

import nimble
from nimble.vm import ADT, GetField, Ret, VirtualMachine, VMFunction


@pytest.fixture(scope="module")
def vm():
    return VirtualMachine(broadcast_exe())  # main(x: (?, ?) float32, b: (?,) float32)


def test_wrong_dtype_names_the_input(vm):
    with pytest.raises(nimble.TypeError, match=r"main: input 'b' \(#1\): expected dtype float32, got float64"):
        vm.run(np.ones((2, 3), np.float32), np.ones(3))


def test_wrong_rank_names_the_input(vm):
    with pytest.raises(nimble.ShapeError, match=r"input 'x' \(#0\): expected rank 2 \(shape \(\?, \?\)\), got rank 1"):
        vm.run(np.ones(3, np.float32), np.ones(3, np.float32))


def test_missing_and_extra_inputs_are_reported(vm):
    with pytest.raises(nimble.TypeError, match=r"main: missing input 'b'; expected 2 inputs \(x, b\), got 1"):
        vm.run(np.ones((2, 3), np.float32))
    with pytest.raises(nimble.TypeError, match=r"expected 2 inputs \(x, b\), got 3"):
        vm.run(*[np.ones((2, 3), np.float32)] * 3)


def test_wrong_static_dim_is_reported():
    exe = K.executable([VMFunction("main", ("x",), (Ret(0),), 1)], [],
                       inputs={"main": [{"shape": [None, 4], "dtype": "float32"}]})
    with pytest.raises(nimble.ShapeError, match=r"input 'x' \(#0\): dimension 1 must be 4 \(shape \(\?, 4\)\), got 5"):
        VirtualMachine(exe).run(np.ones((2, 5), np.float32))


def test_non_tensor_where_a_tensor_is_declared(vm):
    with pytest.raises(nimble.TypeError, match=r"input 'x' \(#0\): expected a tensor, got tuple"):
        vm.run((1, 2), np.ones(3, np.float32))


def test_non_contiguous_inputs_are_copied_to_contiguous(vm):
    x = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]
    b = np.arange(6, dtype=np.float32)[::2]
    np.testing.assert_array_equal(vm.run(x, b), x + b)


def test_python_numbers_take_the_declared_dtype(vm):
    np.testing.assert_array_equal(vm.run([[1.5, 2.5]], [1, 2]), np.array([[2.5, 4.5]], np.float32))


def test_unknown_entry_function_is_named(vm):
    with pytest.raises(nimble.NimbleError, match=r"no function 'predict'; it has \['main'\]"):
        vm.invoke("predict")


def test_tuple_and_adt_inputs():
    first = VMFunction("main", ("pair",), (GetField(0, 0, 1), Ret(1)), 2)
    tuple_exe = K.executable([first], [], inputs={"main": [{"kind": "tuple", "fields": [
        {"shape": [2], "dtype": "int64"}, {"kind": "any"}]}]})
    vm = VirtualMachine(tuple_exe)
    np.testing.assert_array_equal(vm.run((np.arange(2), 7)), np.arange(2))
    np.testing.assert_array_equal(vm.run(ADT(0, (np.arange(2), 7))), np.arange(2))
    with pytest.raises(nimble.TypeError, match=r"input 'pair' \(#0\): expected a tuple of 2 fields, got 1"):
        vm.run((np.arange(2),))
    with pytest.raises(nimble.ShapeError, match=r"input 'pair' \(#0\)\[0\]: dimension 0 must be 2"):
        vm.run((np.arange(3), 7))
    adt_exe = K.executable([first], [], inputs={"main": [{"kind": "adt", "name": "a List"}]})
    with pytest.raises(nimble.TypeError, match="expected a List"):
        VirtualMachine(adt_exe).run(np.arange(2))
    assert VirtualMachine(adt_exe).run(ADT(1, (np.arange(2), ADT(0, ())))).shape == (2,)


def test_a_long_interpreter_list_converts_without_recursion():
    """from_constructor_value walks iteratively: 100,000 Cons cells (deeper than Python's recursion limit)."""
    from nimble.ir.prelude import Cons, Nil
    from nimble.ir.values import ConstructorValue
    from nimble.vm.values import ADT, from_constructor_value

    value = ConstructorValue(Nil, ())
    for i in range(100_000):
        value = ConstructorValue(Cons, (np.full(2, i, np.float32), value))
    adt, count = from_constructor_value(value), 0
    while adt.tag == Cons.tag:
        assert isinstance(adt, ADT) and adt.fields[0][0] == 99_999 - count
        adt, count = adt.fields[1], count + 1
    assert count == 100_000 and adt.tag == Nil.tag and adt.fields == ()
    shared = ConstructorValue(Cons, (np.zeros(1), value))
    pair = from_constructor_value((shared, shared))  # a shared subtree converts once, to one ADT
    assert pair.tag == 0 and pair.fields[0] is pair.fields[1]


@pytest.fixture(scope="module")
def list_sum_exe():
    """main(xs: List[Tensor[(?, 3), float32]]) = foldl(add, zeros, xs), through the prelude."""
    from nimble import ir
    from nimble import ops as nb
    from nimble.ir import Any
    from nimble.ir.expr import GlobalVar
    from nimble.ir.prelude import add_prelude, list_type

    mod = add_prelude(ir.IRModule())
    acc, x = ir.var("acc", shape=(1, 3), dtype="float32"), ir.var("x", shape=(Any, 3), dtype="float32")
    xs = ir.var("xs", type=list_type(ir.TensorType((Any, 3), "float32")))
    add_rows = ir.Function([acc, x], nb.add(acc, nb.sum(x, axis=0, keepdims=True)))
    mod.define("main", ir.Function([xs], GlobalVar("foldl")(add_rows, ir.const(np.zeros((1, 3), np.float32)), xs)))
    return nimble.compile(mod)


@pytest.mark.parametrize("backend", ["python", "native"])
def test_a_python_list_is_taken_for_a_list_input_and_its_elements_are_checked(list_sum_exe, backend, tmp_path):
    rng = np.random.default_rng(0)
    rows = [rng.standard_normal((n, 3)).astype(np.float32) for n in (0, 1, 2, 7)]
    want = sum(r.sum(axis=0) for r in rows).reshape(1, 3)
    list_sum_exe.save(tmp_path / "sum.nimble")
    for exe in (list_sum_exe, nimble.Executable.load(tmp_path / "sum.nimble")):
        vm = VirtualMachine(exe, backend=backend)
        np.testing.assert_allclose(vm.run(rows), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(vm.run([]), np.zeros((1, 3), np.float32))
        np.testing.assert_allclose(vm.run([[[1, 2, 3]]]), [[1, 2, 3]])  # nested Python lists: elements as tensors
        with pytest.raises(nimble.ShapeError, match=r"input 'xs' \(#0\)\[1\]: dimension 1 must be 3"):
            vm.run([rows[1], np.zeros((2, 4), np.float32)])
        with pytest.raises(nimble.TypeError, match=r"\[0\]: expected dtype float32"):
            vm.run([np.zeros((2, 3), np.float64) + 0.5j])
