"""te.dot4 (four byte products summed into int32) in the LLVM code generator: the VNNI form (vpdpbusd) where the CPU
has it and the pattern allows, the generic widened form everywhere else; both exact against numpy."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nimble
from nimble import te
from nimble.codegen import isa
from nimble.errors import TypeError as NimbleTypeError

EXAMPLES = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
ROWS = st.sampled_from([0, 1, 2, 3, 7, 13, 31, 97])
HAS_VNNI = bool(isa.host_dot_widths())


def _kernel(x_dtype, w_dtype, k, m, bn, vector=True, x_first=True, name="dot4"):
    """out[i, j] = sum_r dot4(x[i, 4r..4r+3], wp[j // bn, r, j % bn, 0..3])."""
    n = te.var("n")
    x = te.placeholder((n, k), x_dtype, name="x")
    wp = te.placeholder((-(-m // bn), k // 4, bn, 4), w_dtype, name="wp")
    r = te.reduce_axis(k // 4, "r")

    def body(i, j):
        xs = [x[i, r.var * 4 + t] for t in range(4)]
        ws = [wp[j // bn, r.var, j % bn, t] for t in range(4)]
        return te.sum(te.dot4(xs, ws) if x_first else te.dot4(ws, xs), axis=r)

    out = te.compute((n, m), body, name="out")
    s = te.create_schedule(out)
    if vector:
        i, j = s[out].axis
        jo, ji = s[out].split(j, bn)
        s[out].reorder(i, jo, s[out].reduce_axis[0], ji)
        s[out].vectorize(ji)
    return nimble.build(s, [x, wp, out], name=name)


def _pack(w, bn):
    m, k = w.shape
    mo = -(-m // bn)
    padded = np.zeros((mo * bn, k), w.dtype)
    padded[:m] = w
    return np.ascontiguousarray(padded.reshape(mo, bn, k // 4, 4).transpose(0, 2, 1, 3))


def _values(dtype, shape, rng):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)


CASES = {  # (x dtype, w dtype, k, m, tile width, vector, x first)
    "u8s8_16": ("uint8", "int8", 64, 48, 16, True, True),
    "u8s8_32": ("uint8", "int8", 768, 64, 32, True, True),
    "u8s8_48": ("uint8", "int8", 16, 100, 48, True, True),
    "s8u8_order": ("uint8", "int8", 32, 32, 16, True, False),
    "s8s8_generic": ("int8", "int8", 32, 40, 16, True, True),
    "u8u8_generic": ("uint8", "uint8", 32, 40, 8, True, True),
    "u8s8_8": ("uint8", "int8", 24, 20, 8, True, True),
    "u8s8_scalar": ("uint8", "int8", 20, 9, 4, False, True),
}


@pytest.mark.parametrize("case", sorted(CASES))
@EXAMPLES
@given(n=ROWS, seed=st.integers(0, 2**16))
def test_dot4_kernels_are_exact_at_any_row_count(case, n, seed):
    xd, wd, k, m, bn, vector, x_first = CASES[case]
    kernel = _cached(case)
    rng = np.random.default_rng(seed)
    x, w = _values(xd, (n, k), rng), _values(wd, (m, k), rng)
    want = x.astype(np.int32) @ w.astype(np.int32).T
    np.testing.assert_array_equal(kernel(x, _pack(w, bn)), want)


_built = {}


def _cached(case):
    if case not in _built:
        xd, wd, k, m, bn, vector, x_first = CASES[case]
        _built[case] = _kernel(xd, wd, k, m, bn, vector, x_first, name=f"dot4_{case}")
    return _built[case]


@pytest.mark.skipif(not HAS_VNNI, reason="this CPU has no VNNI byte dot product")
@pytest.mark.parametrize("case, fast", [("u8s8_16", True), ("u8s8_32", True), ("u8s8_48", True),
                                        ("s8u8_order", True), ("s8s8_generic", False), ("u8s8_scalar", False)])
def test_the_vnni_form_is_used_exactly_where_the_pattern_allows(case, fast):
    assert ("vpdpbusd" in _cached(case)._llvm_ir) == fast


def test_without_vnni_the_generic_form_computes_the_same(monkeypatch):
    monkeypatch.setattr(isa, "host_dot_widths", lambda: ())
    kernel = _kernel("uint8", "int8", 64, 48, 16, name="dot4_generic")
    assert "vpdpbusd" not in kernel._llvm_ir
    rng = np.random.default_rng(5)
    x, w = _values("uint8", (11, 64), rng), _values("int8", (48, 64), rng)
    np.testing.assert_array_equal(kernel(x, _pack(w, 16)), x.astype(np.int32) @ w.astype(np.int32).T)


def test_extremes_do_not_saturate():
    """255 * -128 four times a step, 192 steps: the int32 sum is exact (vpdpbusd, unlike vpdpbusds, wraps)."""
    kernel = _cached("u8s8_32")
    x, w = np.full((3, 768), 255, np.uint8), np.full((64, 768), -128, np.int8)
    np.testing.assert_array_equal(kernel(x, _pack(w, 32)), np.full((3, 64), 255 * -128 * 768, np.int32))


def test_dot4_checks_its_operands():
    a = te.placeholder((8,), "uint8", name="a")
    f = te.placeholder((8,), "float32", name="f")
    with pytest.raises(NimbleTypeError, match="4 expressions"):
        te.dot4([a[0]] * 3, [a[0]] * 4)
    with pytest.raises(NimbleTypeError, match="int8 or 4 uint8"):
        te.dot4([a[0]] * 4, [f[0]] * 4)


def test_dot_widths_follow_the_feature_string():
    assert isa.dot_widths("+avx512f,+avx512vnni,+avx512vl") == (16, 8, 4)
    assert isa.dot_widths("+avx512f,+avx512vnni,-avx512vl") == (16,)
    assert isa.dot_widths("+avx2,+avxvnni") == (8, 4)
    assert isa.dot_widths("+avx2,-avxvnni,-avx512vnni") == ()
    assert isa.dot_widths("") == ()
