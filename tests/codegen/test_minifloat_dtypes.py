"""bfloat16, float8 (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz, e8m0fnu), float4 e2m1 and int4 / uint4 / int2 / uint2 as te storage
dtypes: the LLVM codegen's conversions are bit-exact with ml_dtypes' astype (RNE, each format's overflow and NaN
rules, -0, subnormals), for scalar and vector code, over symbolic lengths."""
import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nimble
from nimble import te

ml_dtypes = pytest.importorskip("ml_dtypes")

FLOATS = ("bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float4_e2m1fn",
          "float8_e8m0fnu")
SMALL_INTS = ("int4", "uint4", "int2", "uint2")
SIZES = st.sampled_from([0, 1, 2, 3, 5, 7, 13, 31, 67, 1031])
EXAMPLES = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 448, 449, 464, 465, 480, 240, 241, 248, 57344, 61439,
                    61440, 65536, 6, 6.5, 7, -7, 0.25, 0.75, 0.2500001, 1e-7, -1e-7, 2.0**-9, 2.0**-10, 2.0**-17,
                    1.5 * 2.0**-17, 2.0**-18, 2.0**-133, 1e-40, -1e-40, 3.4e38, -3.4e38, 1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8],
                   np.float32)


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(f"uint{8 * a.dtype.itemsize}")


def _same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(_bits(got), _bits(want))


@functools.cache
def _convert_kernel(dtype: str, vector: bool = False):
    n = te.var("n")
    x = te.placeholder((n,), "float32", name="x")
    down = te.compute((n,), lambda i: te.cast(dtype, x[i]), name="down")
    s = te.create_schedule(down)
    if vector:
        _, inner = s[down].split(s[down].axis[0], 8)
        s[down].vectorize(inner)
    return nimble.build(s, [x, down], name=f"to_{dtype}_{int(vector)}")


@functools.cache
def _widen_kernel(dtype: str, vector: bool):
    n = te.var("n")
    d = te.placeholder((n,), dtype, name="d")
    up = te.compute((n,), lambda i: te.cast("float32", d[i]), name="up")
    s = te.create_schedule(up)
    if vector:
        _, inner = s[up].split(s[up].axis[0], 8)
        s[up].vectorize(inner)
    return nimble.build(s, [d, up], name=f"from_{dtype}_{int(vector)}")


def _random_floats(rng, n: int) -> np.ndarray:
    """Random float32 bit patterns, and values spread over the small formats' ranges."""
    raw = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    spread = (rng.standard_normal(n) * np.exp2(rng.uniform(-20, 18, n))).astype(np.float32)
    return np.where(rng.random(n) < 0.3, raw, spread)


@pytest.mark.parametrize("dtype", FLOATS)
def test_float32_to_minifloat_special_values_match_ml_dtypes(dtype):
    got = _convert_kernel(dtype)(SPECIAL)
    with np.errstate(invalid="ignore", over="ignore"):
        _same(got, SPECIAL.astype(getattr(ml_dtypes, dtype)))


@pytest.mark.parametrize("vector", [False, True])
@pytest.mark.parametrize("dtype", FLOATS)
@EXAMPLES
@given(n=SIZES, seed=st.integers(0, 2**16))
def test_float32_to_minifloat_rounds_like_ml_dtypes(dtype, vector, n, seed):
    x = _random_floats(np.random.default_rng(seed), n)
    with np.errstate(invalid="ignore", over="ignore"):
        want = x.astype(getattr(ml_dtypes, dtype))
    _same(_convert_kernel(dtype, vector)(x), want)


@pytest.mark.parametrize("vector", [False, True])
@pytest.mark.parametrize("dtype", FLOATS)
def test_every_minifloat_code_widens_exactly(dtype, vector):
    count = {"bfloat16": 1 << 16, "float4_e2m1fn": 16}.get(dtype, 256)
    codes = np.arange(count).astype("uint16" if dtype == "bfloat16" else "uint8").view(getattr(ml_dtypes, dtype))
    got = _widen_kernel(dtype, vector)(codes)
    want = codes.astype(np.float32)
    assert got.dtype == np.float32
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(_bits(got[~nan]), _bits(want[~nan]))  # -0.0 included


@pytest.mark.parametrize("vector", [False, True])
def test_float32_to_e8m0_at_every_exponent_matches_ml_dtypes(vector):
    """Both signs of every float32 exponent, with fractions spread over [0, 2**23) and e8m0's rounding points (the
    tie 0x400000, the subnormal tie 0x600000) and their neighbours: zero, -0, subnormals, inf and NaN included."""
    frac = np.concatenate([np.arange(0, 1 << 23, 4099), [0x3FFFFF, 0x400000, 0x400001, 0x5FFFFF, 0x600000, 0x600001,
                                                         0x7FFFFF]]).astype(np.uint32)
    x = (np.arange(512, dtype=np.uint32)[:, None] << 23 | frac[None, :]).reshape(-1).view(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        _same(_convert_kernel("float8_e8m0fnu", vector)(x), x.astype(ml_dtypes.float8_e8m0fnu))


@functools.cache
def _bf16_kernel():
    n = te.var("n")
    a, b = te.placeholder((n,), "bfloat16", name="a"), te.placeholder((n,), "bfloat16", name="b")
    fma = te.compute((n,), lambda i: a[i] * b[i] + a[i], name="fma")
    return nimble.build([fma], [a, b, fma], name="bf16_fma")


@EXAMPLES
@given(n=SIZES, seed=st.integers(0, 2**16))
def test_bfloat16_computes_in_float32_and_rounds_on_store(n, seed):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(n) * 10).astype(ml_dtypes.bfloat16)
    b = (rng.standard_normal(n) * 10).astype(ml_dtypes.bfloat16)
    exact = a.astype(np.float32) * b.astype(np.float32) + a.astype(np.float32)
    _same(_bf16_kernel()(a, b), exact.astype(ml_dtypes.bfloat16))


@functools.cache
def _small_int_kernel(dtype: str):
    n = te.var("n")
    x = te.placeholder((n,), "float32", name="x")
    k = te.placeholder((n,), "int32", name="k")
    d = te.placeholder((n,), dtype, name="d")
    outs = [
        te.compute((n,), lambda i: te.cast(dtype, x[i]), name="from_float"),
        te.compute((n,), lambda i: te.cast(dtype, k[i]), name="from_int"),
        te.compute((n,), lambda i: d[i] + d[i], name="add"),
        te.compute((n,), lambda i: te.cast("float32", d[i]), name="to_float"),
    ]
    return nimble.build(outs, [x, k, d] + outs, name=f"small_{dtype}")


@pytest.mark.parametrize("dtype", SMALL_INTS)
@EXAMPLES
@given(n=SIZES, seed=st.integers(0, 2**16))
def test_small_int_casts_and_wrapping_match_ml_dtypes(dtype, n, seed):
    rng = np.random.default_rng(seed)
    np_dtype = getattr(ml_dtypes, dtype)
    info = ml_dtypes.iinfo(np_dtype)
    x = np.concatenate([[np.nan, np.inf, -np.inf, -0.5, 0.99, info.max + 0.99, info.max + 1.0, info.min - 0.99,
                         info.min - 1.0], rng.uniform(-20, 20, n)]).astype(np.float32)
    k = rng.integers(-100, 100, x.size).astype(np.int32)
    d = rng.integers(info.min, info.max, x.size, endpoint=True).astype(np_dtype)
    got = _small_int_kernel(dtype)(x, k, d)
    with np.errstate(invalid="ignore", over="ignore"):
        want = [x.astype(np_dtype), k.astype(np_dtype), d + d, d.astype(np.float32)]
    for g, w in zip(got, want):
        _same(g, w)


def test_ml_dtypes_is_imported_only_when_a_kernel_uses_one_of_its_dtypes():
    import subprocess
    import sys

    code = ("import sys, numpy as np, nimble\n"
            "from nimble import te\n"
            "assert 'ml_dtypes' not in sys.modules\n"
            "n = te.var('n'); x = te.placeholder((n,), 'float32', name='x')\n"
            "y = te.compute((n,), lambda i: te.cast('bfloat16', x[i] * 2.0 + te.cast('float32', te.cast('bfloat16', 0.3))), name='y')\n"
            "k = nimble.build([y], [x, y], name='late')\n"
            "assert 'ml_dtypes' in sys.modules\n"
            "import ml_dtypes\n"
            "got = k(np.array([1.0, 2.5], np.float32))\n"
            "want = (np.array([1.0, 2.5], np.float32) * 2 + np.float32(ml_dtypes.bfloat16(0.3))).astype(ml_dtypes.bfloat16)\n"
            "assert got.dtype == ml_dtypes.bfloat16 and (got.view(np.uint16) == want.view(np.uint16)).all(), (got, want)\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


@functools.cache
def _from_double_kernel(dtype: str):
    n = te.var("n")
    x = te.placeholder((n,), "float64", name="x")
    down = te.compute((n,), lambda i: te.cast(dtype, x[i]), name="down")
    s = te.create_schedule(down)
    _, inner = s[down].split(s[down].axis[0], 4)
    s[down].vectorize(inner)
    return nimble.build(s, [x, down], name=f"from_double_{dtype}")


@pytest.mark.parametrize("dtype", ("float16",) + FLOATS)
@EXAMPLES
@given(n=SIZES, seed=st.integers(0, 2**16))
def test_float64_rounds_once_to_narrow_floats(dtype, n, seed):
    """Near-ties of the target format, off by far less than a float32 ulp: float64 -> float32 -> target would
    round twice (1 + 2**-8 + 2**-30 to bfloat16, 65519.99999 to float16 (inf))."""
    np_dtype = np.dtype(np.float16) if dtype == "float16" else np.dtype(getattr(ml_dtypes, dtype))
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(n).astype(np_dtype).astype(np.float32)
    step = np.nextafter(base, np.float32(np.inf)).astype(np_dtype).astype(np.float64) - base
    x = base + step / 2 + rng.choice([-1.0, 1.0, 0.0], n) * np.abs(base) * 2.0**-40
    x = np.concatenate([[1 + 2.0**-8 + 2.0**-30, 1 + 2.0**-4 + 2.0**-30, 65519.99999, 1e300, -1e300, np.nan, -0.0,
                         1e-320], x])
    with np.errstate(invalid="ignore", over="ignore"):
        want = x.astype(np_dtype)
    got = _from_double_kernel(dtype)(x)
    assert got.dtype == want.dtype
    g, w = got.astype(np.float64), want.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
    np.testing.assert_array_equal(g[~np.isnan(w)], w[~np.isnan(w)])
