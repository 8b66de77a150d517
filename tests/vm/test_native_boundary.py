"""The native VM's boundary and its opt-in instruction profile: arrays native code takes as they
are and the ones Python converts first (non-contiguous, another byte order, int64 spelled
``longlong``), inputs nested deeper than the recursive encoder goes, and ``native_profile``'s
instruction counts against the Python VM's."""
import numpy as np
import pytest
import vm_kernels as K

import nimble
from nimble.vm import ADT, GetField, GetTag, Goto, If, InvokePacked, LoadConsti, Move, Ret, VirtualMachine, VMFunction
from nimble.vm.native_boundary import _FAST_DEPTH
from nimble.vm.native_profile import native_profile


@pytest.fixture(scope="module")
def add_vm():
    main = VMFunction("main", ("x", "y"), (*K.alloc(2, 3, 4, (8,), "float32", 32), InvokePacked(0, (0, 1, 4), 1),
                                           Ret(4)), 5)
    exe = K.executable([main], [K.add_f32()])
    return VirtualMachine(exe, backend="native"), VirtualMachine(exe, backend="python")


@pytest.mark.parametrize("make", [
    lambda a: a,  # taken as it is
    lambda a: np.repeat(a, 2)[::2],  # not contiguous
    lambda a: a.astype(">f4"),  # big-endian
    lambda a: np.asfortranarray(a),  # 1-D: still C-contiguous
], ids=["contiguous", "strided", "big-endian", "fortran-1d"])
def test_arrays_native_code_rejects_are_converted_first(add_vm, make):
    native, python = add_vm
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(8).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    got = native.run(make(x), y)
    np.testing.assert_array_equal(got, x + y)
    if make(x).dtype.isnative:  # (the Python VM's kernel call rejects a big-endian array)
        np.testing.assert_array_equal(got, python.run(make(x), y))


def test_int64_spelled_longlong_is_int64():
    main = VMFunction("main", ("n",), (*K.alloc(1, 2, 3, (), "int64", 8), InvokePacked(0, (0, 3), 1), Ret(3)), 4)
    vm = VirtualMachine(K.executable([main], [K.dec_i64()]), backend="native")
    n = np.array(7, dtype=np.longlong)
    assert n.dtype.num != np.dtype(np.int64).num or n.dtype == np.int64
    assert int(vm.run(n)) == 6


def test_a_rank_above_the_limit_is_a_shape_error(add_vm):
    native, _ = add_vm
    with pytest.raises(nimble.ShapeError, match="rank <= 8"):
        native.run(np.zeros((1,) * 9, np.float32), np.zeros(8, np.float32))


@pytest.mark.parametrize("depth", [3, _FAST_DEPTH - 1, _FAST_DEPTH + 5])
def test_lists_around_the_recursive_encoders_depth(depth):
    lst = ADT(0, ())
    for k in range(depth):
        lst = ADT(1, (np.array(k), lst))
    main = VMFunction("main", ("xs",), (Ret(0),), 1)
    out = VirtualMachine(K.executable([main], []), backend="native").run(lst)
    seen = []
    while out.tag == 1:
        seen.append(int(out.fields[0]))
        out = out.fields[1]
    assert seen == list(range(depth))[::-1]


def _walk_program():
    """walk(list): count the nodes with a dec kernel per node (get_tag, if, get_field, move, goto)."""
    return VMFunction("main", ("list", "n"), (
        LoadConsti(0, 2), Move(0, 3),
        GetTag(3, 4), If(4, 2, 9, 1), GetField(3, 1, 5), Move(5, 3),
        *K.alloc(6, 7, 8, (), "int64", 8), InvokePacked(0, (1, 8), 1), Move(8, 1), Goto(-9),
        Ret(1)), 9)


def test_native_profile_counts_what_the_python_vm_counts():
    exe = K.executable([_walk_program()], [K.dec_i64()])
    lst = ADT(0, ())
    for k in range(5):
        lst = ADT(1, (np.array(k), lst))
    native = VirtualMachine(exe, backend="native")
    report = native_profile(native, [(lst, np.array(100))], repeat=2)
    py = VirtualMachine(exe, backend="python").profile(lst, np.array(100))
    assert int(native.run(lst, np.array(100))) == 95
    for op, k in py.instructions.items():
        assert report.kinds[op]["count"] == k["count"], op
    assert report.kinds["kernel"]["count"] == 5
    assert report.kinds["function entry"]["count"] == report.kinds["function exit"]["count"] == 1
    assert set(report.phases) == {"check inputs", "build native inputs", "native run", "outputs"}  # (the inputs
    # read natively: no encoding step; the outputs built natively: no Python step)
    assert 0 <= report.vm_share <= 1
    assert "kernel" in report.table() and "build native inputs" in report.table()


def test_an_output_that_is_an_input_nested_in_an_adt_comes_back_as_it_is():
    main = VMFunction("main", ("t",), (GetField(0, 1, 1), GetField(1, 0, 2), Ret(2)), 3)
    vm = VirtualMachine(K.executable([main], []))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = vm.run(ADT(1, (np.zeros(1), ADT(0, (x,)))))
    assert out is x
