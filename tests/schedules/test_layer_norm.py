"""layer_norm template: every tested config against numpy, eps attr, offset inputs."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from template_checks import check_against_reference, configs_to_test

from nimble.schedules.layer_norm import layer_norm_signature
from nimble.schedules.registry import Signature, TemplateError, get_template

SYMBOLIC = layer_norm_signature(("n", "m"))
BERT = layer_norm_signature(("n", 768), eps=1e-12)
sizes = st.sampled_from([1, 2, 3, 7, 15, 16, 17, 31, 33, 64, 65, 97, 129, 200])


def _inputs(shape, seed, offset=0.0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape) * 2 + offset).astype("float32"),
            rng.standard_normal(shape[-1:]).astype("float32"), rng.standard_normal(shape[-1:]).astype("float32")]


@pytest.mark.parametrize("index", configs_to_test("layer_norm", SYMBOLIC, {"m": 128}))
@settings(max_examples=12, deadline=None)
@given(n=st.sampled_from([0, 1, 2, 5, 9]), m=sizes, offset=st.sampled_from([0.0, 50.0]))
def test_layer_norm_configs_match_numpy_at_any_size(index, n, m, offset):
    check_against_reference("layer_norm", SYMBOLIC, index, {"n": n, "m": m}, rtol=1e-4, atol=1e-4,
                            inputs=_inputs((n, m), n * 1000 + m, offset))


@pytest.mark.parametrize("index", configs_to_test("layer_norm", BERT, seeds=(5,)))
def test_layer_norm_bert_shape_with_tiny_eps(index):
    for n in (1, 7, 33):
        check_against_reference("layer_norm", BERT, index, {"n": n}, rtol=1e-4, atol=1e-4, inputs=_inputs((n, 768), n))


def test_layer_norm_rejects_gamma_of_the_wrong_length():
    sig = Signature.make([(("n", 8), "float32"), ((4,), "float32"), ((8,), "float32")])
    with pytest.raises(TemplateError, match="gamma must be float32 of shape"):
        get_template("layer_norm").space(sig)
