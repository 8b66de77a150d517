"""nonzero's O(size) loop-IR kernel against numpy: shapes with 0, 1, primes and large dims, every dtype kind,
-0.0 and NaN, the upper-bound allocation (nothing written past it), and through a compiled model on both VMs
(the output views the bound's storage with the shape the kernel wrote)."""
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
from nimble.ops.registry import get_op
from nimble.schedules.nonzero import build_nonzero

_KERNELS: dict = {}


def kernel(rank: int, dtype: str):
    key = (rank, dtype)
    if key not in _KERNELS:
        _KERNELS[key] = build_nonzero(f"nz{rank}_{dtype}", tuple(te.var(f"d{i}") for i in range(rank)), dtype)
    return _KERNELS[key]


def run(x):
    """The kernel into the op's upper-bound allocation; the (rank, count) result it reports, and the raw bound."""
    bound = get_op("nonzero").output_bounds([np.array(x.shape)], {})[0]
    out, shape = np.full(tuple(bound), -7, np.int64), np.zeros(2, np.int64)
    kernel(x.ndim, x.dtype.name)(x, out, shape)
    rank, count = (int(v) for v in shape)
    assert rank == x.ndim and 0 <= count <= x.size
    return out.reshape(-1)[:rank * count].reshape(rank, count), out


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
    np.testing.assert_array_equal(run(x)[0], want)


def test_negative_zero_is_zero_and_nan_is_not():
    x = np.array([0.0, -0.0, np.nan, 1.0, -np.inf, 0.0], np.float32)
    np.testing.assert_array_equal(run(x)[0], [[2, 3, 4]])


def test_a_large_input_is_one_pass():
    x = data(np.random.default_rng(0), (1_000_003,), "float32", 0.3)  # O(size^2) would take hours
    want = np.array(np.nonzero(x))
    kernel(1, "float32")
    t0 = time.perf_counter()
    got = run(x)[0]
    assert time.perf_counter() - t0 < 5
    np.testing.assert_array_equal(got, want)


def test_rows_are_compacted_in_the_bound_and_nothing_past_the_result_changes():
    x = np.array([[[1, 0], [2, 0]], [[0, 3], [4, 5]]], np.int64)  # rank 3: rows 1 and 2 move down
    got, raw = run(x)
    np.testing.assert_array_equal(got, np.array(np.nonzero(x)))
    rank, count = got.shape
    assert (raw.reshape(-1)[(rank - 1) * x.size + count:] == -7).all()  # the last row's tail was never written


def test_a_bound_of_the_wrong_size_is_refused_before_the_kernel_runs():
    x = np.array([[1, 0, 2], [0, 3, 4]], np.int64)
    with pytest.raises(ShapeError):
        kernel(2, "int64")(x, np.empty((2, 5), np.int64), np.zeros(2, np.int64))


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
    # sized by the upper bound from x's dims: no host callback counts the non-zeros first
    assert not any(getattr(p, "kind", None) == "op_shape" for p in exe.packed)
    vm = nimble.VirtualMachine(exe, backend=backend)
    rng = np.random.default_rng(1)
    kept = []
    for shape in [(0, 3), (1, 1), (5, 7), (400, 300), (3, 1), (2, 2)]:
        a = data(rng, shape, "float32", 0.4)
        got = vm.run(a)
        np.testing.assert_array_equal(got, np.array(np.nonzero(a * a)))
        assert got.flags.c_contiguous
        kept.append((got, got.copy()))
    for got, copy in kept:  # results of earlier runs keep their storage
        np.testing.assert_array_equal(got, copy)
