"""The loop-IR topk kernel (schedules/topk.py) against a numpy stable-sort reference: every dtype, any axis,
symbolic dims drawn by hypothesis (0, 1, primes, up to 10^5), k = 0, 1, n and between, ties, -0.0 and NaN."""
import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nimble
from nimble import te
from nimble.ops.topk import reference_indices
from nimble.schedules.topk import DTYPES, build_topk, topk_func

EXAMPLES = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
DIMS = st.sampled_from([0, 1, 2, 3, 5, 7, 13, 31])


# the kernel's paths, forced: the heap, the partial quicksort, the quicksort whose every range of SMALL or more
# elements falls back to heapsort, and the kernel's own choice
PATHS = {"heap": {"sort_ratio": 0}, "sort": {"sort_ratio": 1 << 40}, "heapsort": {"sort_ratio": 1 << 40, "max_depth": 0},
         "auto": {}}


@functools.cache
def kernel(rank: int, axis: int, dtype: str, largest: bool, outputs=("values", "indices"), k_dtype: str = "int64",
           path="auto"):
    shape = tuple(te.var(f"d{i}") for i in range(rank))
    name = f"topk_{rank}_{axis}_{dtype}_{int(largest)}_{'_'.join(outputs)}_{k_dtype}_{path}"
    return build_topk(name, shape, dtype, (1,), k_dtype, axis, largest, outputs, **PATHS[path])


def data_of(rng, shape, dtype, special: bool) -> np.ndarray:
    """Few distinct values (ties); for floats also -0.0 beside 0.0, +-inf and (``special``) NaN."""
    if np.dtype(dtype).kind == "f":
        pool = np.array([-2, -0.5, -0.0, 0.0, 0.5, 2, np.inf, -np.inf] + ([np.nan] if special else []), dtype)
        return rng.choice(pool, shape)
    info = np.iinfo(dtype)
    pool = np.array([info.min, -3 if info.min < 0 else 0, 0, 1, 3, info.max], dtype)
    return rng.choice(pool, shape) if special else rng.integers(max(info.min, -4), min(info.max, 4) + 1, shape,
                                                                    dtype=dtype)


def check(x: np.ndarray, k: int, axis: int, largest: bool, k_dtype: str = "int64", path: str = "auto") -> None:
    kt = np.array([k], k_dtype)
    want_i = reference_indices(x, kt, axis, largest)
    want_v = np.take_along_axis(x, want_i, axis=axis)
    shape = list(x.shape)
    shape[axis] = k
    got_v, got_i = np.full(shape, 7, want_v.dtype), np.full(shape, 7, np.int64)
    kernel(x.ndim, axis, str(x.dtype), largest, ("values", "indices"), k_dtype, path)(x, kt, got_v, got_i)
    np.testing.assert_array_equal(got_i, want_i)
    assert got_v.tobytes() == want_v.tobytes()  # bit for bit: -0.0 is not 0.0 here, NaN is NaN
    if path == "auto":  # the one-output kernels of topk_values / topk_indices
        for outputs, want in ((("indices",), want_i), (("values",), want_v)):
            got = np.full(shape, 7, want.dtype)
            kernel(x.ndim, axis, str(x.dtype), largest, outputs, k_dtype)(x, kt, got)
            assert got.tobytes() == want.tobytes()


@EXAMPLES
@given(st.data())
def test_topk_matches_a_stable_sort(data):
    rank = data.draw(st.integers(1, 3), label="rank")
    shape = tuple(data.draw(DIMS, label="dim") for _ in range(rank))
    axis = data.draw(st.integers(0, rank - 1), label="axis")
    n = shape[axis]
    k = data.draw(st.sampled_from(sorted({0, min(1, n), n, n // 2})) | st.integers(0, n), label="k")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    x = data_of(rng, shape, dtype, data.draw(st.booleans(), label="special"))
    check(x, k, axis, data.draw(st.booleans(), label="largest"), path=data.draw(st.sampled_from(sorted(PATHS))))


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_topk_of_long_rows(data):
    n = data.draw(st.sampled_from([8191, 8192, 65537, 100000]), label="n")
    k = data.draw(st.sampled_from([0, 1, 2, 10, 1000, n // 2, n - 1, n]), label="k")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    dtype = data.draw(st.sampled_from(["float32", "int32"]), label="dtype")
    if dtype == "float32":
        x = rng.standard_normal((2, n)).astype(dtype)
        x[:, rng.integers(0, n, 50)] = np.nan
        x[:, rng.integers(0, n, 50)] = 0.5  # ties
    else:
        x = rng.integers(-100, 100, (2, n), dtype=dtype)
    check(x, k, 1, data.draw(st.booleans(), label="largest"), path=data.draw(st.sampled_from(sorted(PATHS))))


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("order", ["ascending", "descending", "equal", "organ_pipe"])
def test_topk_of_presorted_rows(path, order):
    n = 5003
    x = {"ascending": np.arange(n), "descending": np.arange(n)[::-1], "equal": np.zeros(n),
         "organ_pipe": np.minimum(np.arange(n), n - np.arange(n))}[order].astype(np.float32)[None]
    for k in (1, 100, n // 2, n):
        check(np.ascontiguousarray(x), k, 1, True, path=path)
        check(np.ascontiguousarray(x), k, 1, False, path=path)


def test_topk_along_a_leading_axis_of_a_long_axis():
    x = np.random.default_rng(1).standard_normal((3001, 3, 2)).astype(np.float32)
    check(x, 1500, 0, True)
    check(x, 7, 0, False, k_dtype="int32")


def test_nan_order_is_onnx_runtimes():
    x = np.array([np.nan, np.nan, 1, np.nan, 2], np.float32)
    order = lambda largest: [int(i) for i in reference_indices(x, np.array([5]), 0, largest)]  # noqa: E731
    assert order(True) == [0, 1, 3, 4, 2]  # what ONNX Runtime 1.32 returns (tests/frontend checks it live)
    assert order(False) == [2, 4, 0, 1, 3]
    check(x, 5, 0, True)
    check(x, 3, 0, False)


def test_k_beyond_the_axis_raises_before_writing():
    f = kernel(2, 1, "float32", True, ("indices",))
    out = np.full((2, 4), -1, np.int64)
    with pytest.raises(nimble.OutOfRangeError, match="exceeds the length of the axis"):
        f(np.zeros((2, 3), np.float32), np.array([4]), out)
    assert (out == -1).all()


def test_an_output_whose_other_dims_disagree_raises_a_shape_error():
    with pytest.raises(nimble.ShapeError):
        kernel(2, 1, "float32", True, ("indices",))(np.zeros((2, 3), np.float32), np.array([1]),
                                                    np.empty((3, 1), np.int64))


def test_a_static_k_is_the_outputs_static_dim():
    f = build_topk("topk_static", (te.var("n"),), "int8", (), "int32", 0, False, ("indices",), out_k=2)
    x = np.array([5, -1, 3, -1], np.int8)
    np.testing.assert_array_equal(f(x, np.array(2, np.int32)), [1, 3])


def test_the_loop_ir_sifts_with_a_while_loop_and_rows_run_in_parallel():
    text = str(topk_func("t", (te.var("n"), te.var("m")), "float32", (1,), "int64", 1, True))
    assert "while " in text and "# parallel" in text


def test_unsupported_dtype_and_axis_raise():
    with pytest.raises(nimble.ShapeError, match="dtype"):
        topk_func("t", (te.var("n"),), "bool", (1,), "int64", 0, True)
    with pytest.raises(nimble.ShapeError, match="axis"):
        topk_func("t", (te.var("n"),), "float32", (1,), "int64", 1, True)
    with pytest.raises(nimble.ShapeError, match="outputs"):
        topk_func("t", (te.var("n"),), "float32", (1,), "int64", 0, True, ("indices", "indices"))
