"""nonzero's O(size) loop-IR kernel against numpy: shapes with 0, 1, primes and large dims, every dtype kind,
-0.0 and NaN, a wrong count from the caller, and through a compiled model on both VMs."""
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nimble
from nimble import ir, te
from nimble import ops as nb
from nimble.errors import OutOfRangeError, ShapeError
from nimble.ir import Any
from nimble.schedules.nonzero import build_nonzero

_KERNELS: dict = {}


def kernel(rank: int, dtype: str):
    key = (rank, dtype)
    if key not in _KERNELS:
        _KERNELS[key] = build_nonzero(f"nz{rank}_{dtype}", tuple(te.var(f"d{i}") for i in range(rank)), dtype)
    return _KERNELS[key]


def data(rng, shape, dtype, density):
    mask = rng.random(shape) < density
    if dtype == "bool":
        return mask
    values = rng.integers(1, 100, shape) if np.dtype(dtype).kind in "iu" else rng.standard_normal(shape) + 3
    return np.where(mask, values, 0).astype(dtype)


DIMS = st.sampled_from([0, 1, 2, 3, 7, 13, 31, 64, 97])


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(DIMS, min_size=1, max_size=3), dtype=st.sampled_from(["float32", "float64", "int64", "int32",
                                                                          "uint8", "bool"]),
       density=st.sampled_from([0.0, 0.1, 0.5, 1.0]), seed=st.integers(0, 2**16))
def test_matches_numpy(shape, dtype, density, seed):
    x = data(np.random.default_rng(seed), tuple(shape), dtype, density)
    want = np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)
    out = np.empty(want.shape, np.int64)
    kernel(x.ndim, dtype)(x, out)
    np.testing.assert_array_equal(out, want)


def test_negative_zero_is_zero_and_nan_is_not():
    x = np.array([0.0, -0.0, np.nan, 1.0, -np.inf, 0.0], np.float32)
    out = np.empty((1, 3), np.int64)
    kernel(1, "float32")(x, out)
    np.testing.assert_array_equal(out, [[2, 3, 4]])


def test_a_large_input_is_one_pass():
    x = data(np.random.default_rng(0), (1_000_003,), "float32", 0.3)  # O(size^2) would take hours
    want = np.array(np.nonzero(x))
    out = np.empty(want.shape, np.int64)
    t0 = time.perf_counter()
    kernel(1, "float32")(x, out)
    assert time.perf_counter() - t0 < 5
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("delta, message", [(-1, "more non-zero"), (1, "fewer non-zero")])
def test_a_wrong_count_is_an_error_and_nothing_is_written_past_the_output(delta, message):
    x = np.array([[1, 0, 2], [0, 3, 4]], np.int64)
    cols = 4 + delta
    buf = np.full(2 * cols + 8, -7, np.int64)  # guard elements past the output the kernel gets
    with pytest.raises(OutOfRangeError, match=message):
        kernel(2, "int64")(x, buf[:2 * cols].reshape(2, cols))
    assert (buf[2 * cols:] == -7).all()


def test_rank_zero_is_refused():
    with pytest.raises(ShapeError, match="rank >= 1"):
        build_nonzero("nz0", (), "float32")


@pytest.mark.parametrize("backend", ["native", "python"])
def test_a_model_runs_the_one_pass_kernel(backend):
    x = ir.var("x", shape=(Any, Any), dtype="float32")
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], nb.nonzero(nb.multiply(x, x))))
    exe = nimble.compile(mod)
    assert any(p.name.endswith("nonzero") for p in exe.packed)
    vm = nimble.VirtualMachine(exe, backend=backend)
    rng = np.random.default_rng(1)
    for shape in [(0, 3), (1, 1), (5, 7), (400, 300)]:
        a = data(rng, shape, "float32", 0.4)
        np.testing.assert_array_equal(vm.run(a), np.array(np.nonzero(a * a)))
