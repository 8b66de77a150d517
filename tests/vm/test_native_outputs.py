"""The native VM builds a run's outputs itself (``nvm_to_py``): arrays viewing pool storage held by
a capsule, copies of inline scalars and empty tensors, nested tuples; what it does not build
(a view of a constant or an input, an ADT) takes the Python path. Same values as the Python VM."""
import gc
import sys
import threading

import numpy as np
import pytest

import nimble
from nimble import ir
from nimble import ops as nb
from nimble.ir import Any
from nimble.vm import ADT, GetField, Ret, VirtualMachine, VMFunction
from nimble.vm.native_boundary import native_outputs

import vm_kernels as K


def _pair(vm, python, *inputs):
    got, want = vm.run(*inputs), python.run(*inputs)
    return got, want


@pytest.fixture(scope="module")
def nested():
    """main(x) = (x + x, (x * x, sum(x), x[:0]), x > 0)  with x (n, 3) float32."""
    x = ir.var("x", shape=(Any, 3))
    empty = nb.strided_slice(x, begin=(0, 0), end=(0, 3), strides=(1, 1))
    body = ir.Tuple([nb.add(x, x), ir.Tuple([nb.multiply(x, x), nb.sum(x), empty]), nb.greater(x, ir.const(0.0))])
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], body))
    exe = nimble.compile(mod)
    return VirtualMachine(exe, backend="native"), VirtualMachine(exe, backend="python")


@pytest.mark.parametrize("n", [0, 1, 2, 7, 64])
def test_nested_tuples_scalars_empty_and_constants_match_the_python_vm(nested, n):
    vm, python = nested
    x = np.random.default_rng(n).standard_normal((n, 3)).astype(np.float32)
    got, want = _pair(vm, python, x)
    assert isinstance(got, tuple) and isinstance(got[1], tuple) and len(got) == 3 and len(got[1]) == 3
    flat_got = [got[0], *got[1], got[2]]
    flat_want = [want[0], *want[1], want[2]]
    for g, w in zip(flat_got, flat_want):
        assert isinstance(g, np.ndarray) and g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-6)
    assert got[1][1].shape == () and got[1][2].shape == (0, 3)
    if n:  # built natively: a view held by a capsule, not a copy
        assert not got[0].flags.owndata and type(got[0].base).__name__ == "PyCapsule"
        assert got[0].flags.writeable and got[0].flags.c_contiguous and got[0].flags.aligned


def test_arrays_outlive_the_vm_and_give_their_storage_back(nested):
    vm, _ = nested
    exe = vm.exe
    own = VirtualMachine(exe, backend="native")
    x = np.ones((5, 3), np.float32)
    own.run(x)
    pool = own.pool
    base_refs = sys.getrefcount(pool)
    out = own.run(x)
    assert sys.getrefcount(pool) > base_refs  # each view's capsule holds the pool
    in_use = pool.stat("bytes_in_use")
    del out
    gc.collect()
    assert sys.getrefcount(pool) == base_refs
    own.run(x)  # (blocks handed back are drained on the next run)
    assert pool.stat("bytes_in_use") <= in_use
    kept = own.run(x)
    del own, pool
    gc.collect()
    np.testing.assert_array_equal(kept[0], x + x)  # still valid: the capsule keeps the pool


def test_outputs_released_on_another_thread(nested):
    vm, _ = nested
    x = np.full((4, 3), 2.0, np.float32)
    outs = [vm.run(x) for _ in range(50)]
    t = threading.Thread(target=outs.clear)
    t.start()
    t.join()
    for _ in range(5):
        np.testing.assert_array_equal(vm.run(x)[0], x + x)


def test_a_constant_among_the_outputs_takes_the_python_path():
    x = ir.var("x", shape=(Any,))
    k = np.arange(4, dtype=np.int64)
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], ir.Tuple([nb.add(x, x), ir.const(k, name="k")])))
    exe = nimble.compile(mod)
    got = VirtualMachine(exe, backend="native").run(np.ones(3, np.float32))
    np.testing.assert_array_equal(got[0], np.full(3, 2, np.float32))
    np.testing.assert_array_equal(got[1], k)


def test_an_adt_output_and_an_input_view_take_the_python_path():
    main = VMFunction("main", ("t",), (GetField(0, 1, 1), Ret(1)), 2)
    exe = K.executable([main], [])
    vm = VirtualMachine(exe, backend="native")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    inner = ADT(0, (x,))
    out = vm.run(ADT(1, (np.zeros(1), inner)))
    assert (out[0] if isinstance(out, tuple) else out.fields[0]) is x


def test_which_declared_outputs_are_built_natively():
    tensor = {"shape": [None, 3], "dtype": "float32"}
    assert native_outputs(None) and native_outputs(tensor)
    assert native_outputs({"kind": "tuple", "fields": [tensor, {"kind": "tuple", "fields": [tensor]}]})
    assert not native_outputs({"kind": "adt", "name": "List"})
    assert not native_outputs({"kind": "tuple", "fields": [tensor, {"kind": "any"}]})


def test_a_returned_list_of_input_arrays_gives_back_the_arrays_themselves():
    """Each output that views an input array finds it in one map built per call (once a walk per output:
    quadratic in the list's length)."""
    from nimble.ir.prelude import list_type

    xs = ir.var("xs", type=list_type(ir.TensorType((Any,), "float32")))
    mod = ir.IRModule()
    mod.define("main", ir.Function([xs], xs))
    vm = nimble.VirtualMachine(nimble.compile(mod), backend="native")
    arrays = [np.full(3, i, np.float32) for i in range(3000)]
    value = ADT(1, ())
    for a in arrays:
        value = ADT(0, (a, value))
    out, got = vm.run(value), []
    while out.tag == 0:
        got.append(out.fields[0])
        out = out.fields[1]
    assert len(got) == len(arrays) and all(g is a for g, a in zip(got, reversed(arrays)))
