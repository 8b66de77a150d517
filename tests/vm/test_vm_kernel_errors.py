"""A kernel's symbolic-dim checks fail with errors that name the arguments and their concrete sizes,
not the kernel's internal dim names (``d0_0``), on both VMs."""
import numpy as np
import pytest

import nimble
from nimble import ops as nb
from nimble.ir import Any
from nimble.ir.builder import var
from nimble.ir.expr import Function
from nimble.ir.module import IRModule
from nimble.vm.executable import name_dims


@pytest.fixture(scope="module")
def add_exe():
    x, y = var("x", shape=(Any, 4)), var("y", shape=(Any, 4))
    return nimble.compile(IRModule({"main": Function([x, y], nb.add(x, y))}))


def test_dim_mismatch_names_each_argument_and_its_size(add_exe):
    vm = nimble.VirtualMachine(add_exe)
    with pytest.raises(nimble.OutOfRangeError) as info:
        vm.run(np.ones((3, 4), np.float32), np.ones((5, 4), np.float32))
    text = str(info.value)
    assert "dim 0 of argument #0 (= 3)" in text and "dim 0 of argument #1 (= 5)" in text
    assert "d0_0" not in text and "d1_0" not in text
    assert "(3, 4)" in text and "(5, 4)" in text


def test_matching_dims_still_run(add_exe):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(nimble.VirtualMachine(add_exe).run(x, x), x + x)


def test_name_dims_leaves_names_it_cannot_resolve():
    assert name_dims("d0_1 vs d2_0 vs o0_0_0", [(3, 7), None]) == "dim 1 of argument #0 (= 7) vs d2_0 vs o0_0_0"
