"""injective template: elementwise chains with broadcasting, transposes and reshapes, every tested config."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from template_checks import check_against_reference, configs_to_test

from nimble.schedules.injective import injective_signature
from nimble.schedules.registry import TemplateError, get_template

SIGS = {
    "add_gelu_bias": injective_signature([("n", 768), (768,)], ["add", "gelu"]),
    "broadcast_rows_and_cols": injective_signature([("n", "m"), ("m",), ("n", 1)], ["add", "tanh", "multiply"]),
    "same_shape_chain": injective_signature([("n", "m"), ("n", "m")], ["subtract", "relu", "exp", "sigmoid"]),
    "unary_only": injective_signature([("n", "m")], ["negative", "abs", "sqrt", "erf"]),
    "min_max_divide": injective_signature([("n", "m"), ("m",), ("n", "m")], ["maximum", "divide"]),
    "transpose_heads": injective_signature([(3, "n", 64)], ["transpose"], perm=[1, 0, 2]),
    "transpose_2d": injective_signature([("n", "m")], ["transpose"], perm=[1, 0]),
    "reshape_split_heads": injective_signature([("n", 48)], ["reshape"], newshape=["n", 3, 16]),
    "reshape_merge": injective_signature([("n", 3, "m")], ["reshape"], newshape=["n", 3, "m"]),
}
sizes = st.sampled_from([0, 1, 2, 3, 15, 16, 17, 31, 33, 64, 65, 100, 129])


@pytest.mark.parametrize("name", SIGS)
@settings(max_examples=10, deadline=None)
@given(n=sizes, m=sizes, pick=st.integers(0, 10))
def test_injective_configs_match_numpy(name, n, m, pick):
    sig = SIGS[name]
    configs = configs_to_test("injective", sig, {"m": 64})
    check_against_reference("injective", sig, configs[pick % len(configs)], {"n": n, "m": m}, seed=n * 131 + m,
                            rtol=2e-6, atol=2e-6)


def test_injective_rejects_shapes_that_do_not_broadcast():
    with pytest.raises(TemplateError, match="do not broadcast"):
        get_template("injective").space(injective_signature([("n", 4), (5,)], ["add"]))


def test_injective_rejects_a_wrong_number_of_inputs():
    with pytest.raises(TemplateError, match="take 2 inputs"):
        get_template("injective").space(injective_signature([("n", 4)], ["add"]))
