"""reduce template: sum / mean / max / min over inner, outer and mixed axes, every tested config."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from template_checks import check_against_reference, configs_to_test

from nimble.schedules.reduce import reduce_signature
from nimble.schedules.registry import TemplateError, get_template

CASES = [
    (("n", "m"), (-1,), "max", False), (("n", "m"), (-1,), "sum", True), (("n", "m"), (0,), "min", False),
    (("n", "m"), (0,), "mean", True), (("n", 5, "m"), (1, 2), "mean", False), (("n", 5, "m"), (0, 1), "max", True),
    (("n", 3, "m"), (0, 2), "sum", False), (("m",), (0,), "min", False), (("n", "m"), (0, 1), "sum", False),
]
sizes = st.sampled_from([1, 2, 3, 15, 16, 17, 31, 33, 64, 65, 100, 129])


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[2]}{list(c[1])}{'k' if c[3] else ''}-rank{len(c[0])}")
@settings(max_examples=8, deadline=None)
@given(n=st.sampled_from([1, 2, 3, 6]), m=sizes, pick=st.integers(0, 10))
def test_reduce_configs_match_numpy(case, n, m, pick):
    sig = reduce_signature(*case)
    configs = configs_to_test("reduce", sig, seeds=(1,))
    check_against_reference("reduce", sig, configs[pick % len(configs)], {"n": n, "m": m}, seed=n + m)


@pytest.mark.parametrize("index", configs_to_test("reduce", reduce_signature(("n", "m"), (-1,), "sum")))
def test_sum_of_empty_rows_is_zero(index):
    check_against_reference("reduce", reduce_signature(("n", "m"), (-1,), "sum"), index, {"n": 3, "m": 0})


def test_reduce_rejects_bad_axes_and_ops():
    t = get_template("reduce")
    with pytest.raises(TemplateError, match="out of range"):
        t.space(reduce_signature(("n", "m"), (2,)))
    with pytest.raises(TemplateError, match="op must be one of"):
        t.space(reduce_signature(("n", "m"), (0,), op="prod"))
