"""The dense_integer template (uint8 x, constant int8 weight, VNNI dot products): every kind of config against
numpy's exact int32 product at many row counts, the weight packing, and the signatures it refuses."""
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nimble.schedules import Signature, TemplateError, get_template
from nimble.schedules.dense_integer import column_sums, dense_integer_signature, pack_weight
from template_checks import built, configs_to_test

T = get_template("dense_integer")
SIZES = [0, 1, 2, 5, 8, 11, 13, 31, 64, 97]
SHAPES = [(768, 64), (64, 33)]


@pytest.mark.parametrize("k, m", SHAPES)
def test_configs_are_exact_at_many_row_counts(k, m):
    sig = dense_integer_signature("n", k, m)
    rng = np.random.default_rng(k + m)
    for index in configs_to_test("dense_integer", sig, {"n": 64}):
        kernel = built("dense_integer", sig, index)
        for n in SIZES:
            ins = T.random_inputs(sig, {"n": n}, rng)
            got, want = kernel(*ins), T.reference(sig, ins)[0]
            assert got.dtype == np.int32 and got.shape == want.shape == (n, m)
            np.testing.assert_array_equal(got, want, err_msg=f"config {T.space(sig).get(index)} n={n}")


def test_a_narrow_weight_with_the_fallback():
    sig = dense_integer_signature("n", 12, 5)
    kernel = built("dense_integer", sig, T.fallback(sig, T.space(sig), {"n": 8}).index)
    for n in (0, 1, 9):
        ins = T.random_inputs(sig, {"n": n}, np.random.default_rng(n))
        np.testing.assert_array_equal(kernel(*ins), T.reference(sig, ins)[0])


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(n=st.integers(0, 300), zero=st.integers(0, 255), seed=st.integers(0, 2**16))
def test_any_rows_and_zero_point(n, zero, seed):
    sig = dense_integer_signature("n", 96, 40)
    space = T.space(sig)
    kernel = built("dense_integer", sig, T.fallback(sig, space, {"n": 64}).index)
    x, w, _ = T.random_inputs(sig, {"n": n}, np.random.default_rng(seed))
    z = np.array(zero, np.uint8)
    np.testing.assert_array_equal(kernel(x, w, z), (x.astype(np.int32) - zero) @ w.astype(np.int32).T)


def test_a_static_row_count_and_the_extremes():
    sig = dense_integer_signature(7, 256, 48)
    space = T.space(sig)
    kernel = built("dense_integer", sig, space.random(random.Random(4)).index)
    x, w = np.full((7, 256), 255, np.uint8), np.full((48, 256), -128, np.int8)
    np.testing.assert_array_equal(kernel(x, w, np.array(0, np.uint8)), np.full((7, 48), 255 * -128 * 256))
    np.testing.assert_array_equal(kernel(x, w, np.array(255, np.uint8)), np.zeros((7, 48), np.int32))


def test_pack_weight_layout_and_column_sums():
    w = np.arange(5 * 8, dtype=np.int64).reshape(5, 8).astype(np.int8)
    wp = pack_weight(w, 4)
    assert wp.shape == (2, 2, 4, 4) and wp.dtype == np.int8
    assert wp[1, 1, 0, 3] == w[4, 7] and wp[0, 0, 2, 1] == w[2, 1] and not wp[1, 0, 1:].any()  # zero padding
    np.testing.assert_array_equal(column_sums(w), w.astype(np.int32).sum(axis=1))


@pytest.mark.parametrize("args, match", [
    ([(("n", 10), "uint8"), ((4, 10), "int8"), ((), "uint8")], "multiple of 4"),
    ([(("n", 8), "int8"), ((4, 8), "int8"), ((), "int8")], "uint8 x, int8 w"),
    ([(("n", 8), "uint8"), ((4, 12), "int8"), ((), "uint8")], "x has 8 columns, weight expects 12"),
    ([(("n", 8), "uint8"), (("m", 8), "int8"), ((), "uint8")], "static"),
    ([(("n", 8), "uint8"), ((4, 8), "int8"), ((1,), "uint8")], "scalar"),
])
def test_signatures_it_does_not_take_are_named(args, match):
    with pytest.raises(TemplateError, match=match):
        T.space(Signature.make(args, weight="const"))


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(n=st.one_of(st.integers(0, 150), st.sampled_from([0, 1, 8, 9, 17, 31, 64, 65, 127])), seed=st.integers(0, 99))
def test_streaming_the_next_weight_block_is_exact_at_every_pass_count(n, seed):
    """8-row tiles over 2-panel blocks: 0..19 passes, the stream off (1, above 16), on with each power-of-two share."""
    sig = dense_integer_signature("n", 96, 200)
    space = T.space(sig)
    cfg = space.config(**{**T.fallback(sig, space, {"n": 32}).values, "tile_rows": 8, "col_block": 2, "stream": 1})
    kernel = built("dense_integer", sig, cfg.index)
    assert "prefetch to L2 wp[" in kernel.kernel.ir()
    ins = T.random_inputs(sig, {"n": n}, np.random.default_rng(seed))
    np.testing.assert_array_equal(kernel(*ins), T.reference(sig, ins)[0])
