"""take template: embedding gathers with int32/int64 indices, out-of-range indices raise."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from template_checks import built, check_against_reference, configs_to_test

import nimble
from nimble.schedules.registry import TemplateError, get_template
from nimble.schedules.take import take_signature

SIGS = [take_signature("v", "d", ("n",), "int32"), take_signature("v", 768, ("b", "s"), "int64")]


@pytest.mark.parametrize("sig", SIGS, ids=["int32-symbolic-dim", "int64-bert"])
@settings(max_examples=10, deadline=None)
@given(v=st.sampled_from([1, 2, 7, 100]), d=st.sampled_from([1, 15, 16, 17, 64, 100, 129]),
       n=st.sampled_from([0, 1, 3, 8]), pick=st.integers(0, 10))
def test_take_configs_match_numpy(sig, v, d, n, pick):
    configs = configs_to_test("take", sig)
    check_against_reference("take", sig, configs[pick % len(configs)], {"v": v, "d": d, "n": n, "b": 2, "s": n},
                            seed=v + d + n)


@pytest.mark.parametrize("bad", [[0, 5], [-1, 0], [2**31 - 1]])
def test_take_raises_out_of_range_for_indices_outside_the_table(bad):
    sig = SIGS[0]
    index = configs_to_test("take", sig)[0]
    table = np.ones((5, 16), "float32")
    with pytest.raises(nimble.OutOfRangeError, match="outside the table"):
        built("take", sig, index)(table, np.array(bad, "int32"))


def test_take_rejects_float_indices():
    with pytest.raises(TemplateError, match="int32 or int64"):
        get_template("take").space(take_signature("v", "d", ("n",), "float32"))
