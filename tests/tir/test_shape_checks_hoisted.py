"""Checks over the shape alone run once before any loop: also when the loops run zero times (an empty
output must not hide a size mismatch), and also for a stage that is inlined into its consumer."""
import numpy as np
import pytest

import nimble
from nimble import te
from nimble.errors import OutOfRangeError, ShapeError

MISMATCH = (ShapeError, OutOfRangeError)  # a kernel reports a failed shape check as OutOfRangeError
from nimble.ops.compute_transform import reshaped


def _reshape_kernel(inline_into_copy: bool):
    n = te.var("n")
    x = te.placeholder((n,), "float32", "x")
    r = reshaped(x, (te.const(3), n // 3), "reshape")
    if not inline_into_copy:
        return nimble.build(te.create_schedule(r), [x, r], name="rs"), r
    out = te.compute(r.shape, lambda i, j: r[i, j] * 2.0, name="twice")
    s = te.create_schedule(out)
    s[r].compute_inline()
    return nimble.build(s, [x, out], name="rs2"), out


@pytest.mark.parametrize("inline", [False, True])
def test_a_size_mismatch_with_an_empty_output_is_an_error(inline):
    kernel, _ = _reshape_kernel(inline)
    assert "assert" in kernel.ir().splitlines()[1]  # the first statement, outside the loops
    with pytest.raises(MISMATCH, match="sizes must be equal"):
        kernel(np.arange(2, dtype=np.float32), np.empty((3, 0), np.float32))
    with pytest.raises(MISMATCH, match="sizes must be equal"):
        kernel(np.arange(7, dtype=np.float32), np.empty((3, 2), np.float32))
    out = kernel(np.arange(6, dtype=np.float32))
    np.testing.assert_array_equal(out, np.arange(6, dtype=np.float32).reshape(3, 2) * (2 if inline else 1))


@pytest.mark.parametrize("backend", ["native", "python"])
def test_model_reshape_with_minus_one_that_does_not_divide(backend):
    from nimble import ops as nb
    from nimble.ir.builder import var
    from nimble.ir.expr import Function
    from nimble.ir.module import IRModule
    from nimble.ir.types import Any

    x = var("x", shape=(Any,))
    mod = IRModule()
    mod.define("main", Function([x], nb.reshape(x, newshape=(3, -1))))
    vm = nimble.VirtualMachine(nimble.compile(mod), backend=backend)
    assert vm.run(np.arange(6, dtype=np.float32)).shape == (3, 2)
    assert vm.run(np.zeros(0, np.float32)).shape == (3, 0)
    for bad in (1, 2, 7):
        with pytest.raises(MISMATCH):
            vm.run(np.arange(bad, dtype=np.float32))
