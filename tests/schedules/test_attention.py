"""attention template: configs against the numpy reference at symbolic sequence lengths (0, 1, primes, tile
multiples), heads read at column offsets of one fused (n, 3*H*D) projection, masks and the causal form."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from template_checks import built, check_against_reference, configs_to_test

from nimble.schedules.attention import attention_signature
from nimble.schedules.registry import TemplateError, get_template

H, D = 3, 16
FUSED_QKV = attention_signature(("n", 3 * H * D), ("n", 3 * H * D), ("n", 3 * H * D), ("n", "n"), heads=H,
                                head_size=D, scale=0.25, q_col=0, k_col=H * D, v_col=2 * H * D)
KEY_MASK = attention_signature(("n", H * D), ("nk", H * D), ("nk", H * D), (1, "nk"), heads=H, head_size=D,
                               scale=0.125)
CAUSAL = attention_signature(("n", H * 8), ("n", H * 8), ("n", H * 8), (1, 1), heads=H, head_size=8, scale=0.3,
                             causal=True)
lengths = st.sampled_from([0, 1, 2, 3, 5, 6, 7, 12, 13, 17, 31, 37, 64, 67])


@pytest.mark.parametrize("index", configs_to_test("attention", FUSED_QKV, {"n": 64}, seeds=(3,))[:3])
@settings(max_examples=10, deadline=None)
@given(n=lengths)
def test_attention_configs_match_numpy_reading_heads_from_a_fused_projection(index, n):
    check_against_reference("attention", FUSED_QKV, index, {"n": n}, seed=n)


@settings(max_examples=10, deadline=None)
@given(n=lengths, nk=lengths)
def test_attention_with_a_key_mask_and_other_key_count(n, nk):
    sig = KEY_MASK
    index = configs_to_test("attention", sig, {"n": 64, "nk": 64})[0]
    check_against_reference("attention", sig, index, {"n": n, "nk": nk}, seed=n * 100 + nk)


@settings(max_examples=10, deadline=None)
@given(n=lengths)
def test_causal_attention_sees_only_earlier_keys(n):
    index = configs_to_test("attention", CAUSAL, {"n": 64})[0]
    check_against_reference("attention", CAUSAL, index, {"n": n}, seed=n)
    if n > 1:  # changing the last key and value leaves every earlier row as it was
        t = get_template("attention")
        q, k, v, m = t.random_inputs(CAUSAL, {"n": n}, np.random.default_rng(n))
        before = built("attention", CAUSAL, index)(q, k, v, m)
        k2, v2 = k.copy(), v.copy()
        k2[-1] += 5.0
        v2[-1] -= 3.0
        after = built("attention", CAUSAL, index)(q, k2, v2, m)
        np.testing.assert_array_equal(before[:-1], after[:-1])
        assert not np.allclose(before[-1], after[-1])


def test_attention_is_stable_for_large_scores():
    index = configs_to_test("attention", KEY_MASK, {"n": 64, "nk": 64})[0]
    t = get_template("attention")
    q, k, v, m = t.random_inputs(KEY_MASK, {"n": 5, "nk": 9}, np.random.default_rng(1))
    q *= 300.0
    m[0, 3] = -1e9  # a padded key
    check_against_reference("attention", KEY_MASK, index, {"n": 5, "nk": 9}, inputs=[q, k, v, m], atol=1e-4)
    out = built("attention", KEY_MASK, index)(q, k, v, m)
    assert np.isfinite(out).all()


def test_attention_rejects_heads_that_do_not_fit_and_bad_masks():
    t = get_template("attention")
    with pytest.raises(TemplateError, match="do not fit"):
        t.space(attention_signature(("n", 40), ("n", 48), ("n", 48), (1, 1), heads=H, head_size=D, scale=1.0))
    with pytest.raises(TemplateError, match="do not fit"):
        t.space(attention_signature(("n", 48), ("n", 48), ("n", 48), (1, 1), heads=H, head_size=D, scale=1.0,
                                    v_col=8))
    with pytest.raises(TemplateError, match="mask"):
        t.space(attention_signature(("n", 48), ("n", 48), ("n", 48), (2, "n"), heads=H, head_size=D, scale=1.0))


def test_attention_flops_count_both_products():
    assert get_template("attention").flops(FUSED_QKV, {"n": 10}) == 2 * 2 * H * 10 * 10 * D


BATCHED = attention_signature(("n", H * D), ("nk", H * D), ("nk", H * D), ("b", "s", "sk"), heads=H, head_size=D,
                              scale=0.125)
BATCHED_KEYS = attention_signature(("n", 3 * H * D), ("n", 3 * H * D), ("n", 3 * H * D), ("b", 1, "sk"), heads=H,
                                   head_size=D, scale=0.3, q_col=0, k_col=H * D, v_col=2 * H * D)


@settings(max_examples=12, deadline=None)
@given(b=st.sampled_from([0, 1, 2, 3, 5]), s=lengths)
def test_batched_attention_attends_within_each_sequence(b, s):
    """A 3-D mask (b, s, sk): q, k and v hold b sequences of rows; sequence i sees its own keys, with mask[i]."""
    rng = np.random.default_rng(b * 100 + s)
    for sig, sk, cols in ((BATCHED, s + 2, H * D), (BATCHED_KEYS, s, 3 * H * D)):
        index = configs_to_test("attention", sig, {"n": 64, "nk": 64, "b": 1, "s": 64, "sk": 64})[0]
        q = rng.standard_normal((b * s, cols)).astype(np.float32)
        k = rng.standard_normal((b * sk, cols)).astype(np.float32)
        v = rng.standard_normal((b * sk, cols)).astype(np.float32)
        m = rng.standard_normal((b, s if sig is BATCHED else 1, sk)).astype(np.float32)
        if b and sk:
            m[-1, :, sk // 2:] = -np.inf  # the last sequence padded
        got = built("attention", sig, index)(q, k, v, m)
        want = get_template("attention").reference(sig, [q, k, v, m])[0]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        if b > 1 and s:  # the first sequence is independent of the second's keys
            k2 = k.copy()
            k2[sk:2 * sk] += 3.0
            again = built("attention", sig, index)(q, k2, v, m)
            np.testing.assert_array_equal(again[:s], got[:s])
