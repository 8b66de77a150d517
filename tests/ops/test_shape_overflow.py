"""Size arithmetic in shape functions and output sizing never wraps int64: it is a ShapeError."""
import numpy as np
import pytest

import nimble
import nimble.ir as ir
from nimble import ops as nb
from nimble.ir import Any
from nimble.ops.creation import arange_length
from nimble.ops.transform import reshaped_dims


@pytest.mark.parametrize("n", [2**31, 2**32])
def test_reshape_of_huge_dims_is_a_shape_error_not_a_wrapped_product(n):
    with pytest.raises(nimble.ShapeError, match="cannot reshape 0 elements"):
        reshaped_dims((n, 0), (n, n))


@pytest.mark.parametrize("args", [(0, float("inf"), 1), (0, float("nan"), 1), (0, 1e300, 1e-300), (0, 2.0**63, 1)])
def test_arange_of_unbounded_length_is_a_shape_error(args):
    with pytest.raises(nimble.ShapeError, match="arange"):
        arange_length(*args)


@pytest.fixture(scope="module")
def square_vm():
    x = ir.var("x", shape=(Any, Any))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], nb.dense(x, x)))  # (n, k) -> (n, n)
    return nimble.VirtualMachine(nimble.compile(mod))


@pytest.mark.parametrize("n", [2**31, 2**32])
def test_an_output_whose_byte_count_overflows_int64_is_a_shape_error(square_vm, n):
    with pytest.raises(nimble.ShapeError, match="more than an int64 byte count can hold|overflowing"):
        square_vm.run(np.empty((n, 0), "float32"))


def test_a_small_square_still_runs(square_vm):
    x = np.arange(6, dtype="float32").reshape(3, 2)
    np.testing.assert_allclose(square_vm.run(x), x @ x.T)
