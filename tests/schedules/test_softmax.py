"""softmax template: every tested config against numpy at symbolic row counts and row lengths."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from template_checks import built, check_against_reference, configs_to_test

from nimble.schedules.registry import TemplateError, get_template
from nimble.schedules.softmax import softmax_signature

SYMBOLIC = softmax_signature(("n", "m"))
STATIC_ROW = softmax_signature(("b", "h", 128))
sizes = st.sampled_from([1, 2, 3, 7, 13, 15, 16, 17, 31, 33, 63, 64, 65, 97, 128, 129, 200])


@pytest.mark.parametrize("index", configs_to_test("softmax", SYMBOLIC, {"m": 128}))
@settings(max_examples=12, deadline=None)
@given(n=st.sampled_from([0, 1, 2, 5, 9]), m=sizes)
def test_softmax_configs_match_numpy_at_any_size(index, n, m):
    check_against_reference("softmax", SYMBOLIC, index, {"n": n, "m": m}, seed=n * 1000 + m)


@pytest.mark.parametrize("index", configs_to_test("softmax", STATIC_ROW, seeds=(3,)))
def test_softmax_of_a_static_row_length_with_two_leading_dims(index):
    for b, h in [(1, 1), (2, 3), (0, 4)]:
        check_against_reference("softmax", STATIC_ROW, index, {"b": b, "h": h}, seed=b + h)


def test_softmax_is_stable_for_large_inputs():
    x = np.array([[1000.0, 999.0, -1000.0], [88.0, 89.0, 90.0]], dtype="float32")
    index = configs_to_test("softmax", SYMBOLIC)[0]
    check_against_reference("softmax", SYMBOLIC, index, {}, inputs=[x])
    assert np.isfinite(built("softmax", SYMBOLIC, index)(x)).all()


def test_softmax_rejects_other_axes_and_dtypes():
    t = get_template("softmax")
    with pytest.raises(TemplateError, match="last axis"):
        t.space(softmax_signature(("n", "m")).__class__.make([(("n", "m"), "float32")], axis=0))
    with pytest.raises(TemplateError, match="float32"):
        t.space(softmax_signature(("n", "m"), dtype="float64"))
