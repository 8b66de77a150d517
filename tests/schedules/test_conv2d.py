"""conv2d template: 1x1 to 5x5, strides 1-3, dilation, padding, bias / activation / residual epilogues, every tested
config against numpy."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from template_checks import check_against_reference, configs_to_test

from nimble.schedules.conv2d import conv2d_signature
from nimble.schedules.registry import TemplateError, get_template

SIGS = {
    "3x3_pad1": (conv2d_signature(("n", 4, "h", "w"), (8, 4, 3, 3), strides=1, padding=1), 3, 1, 1, 1),
    "1x1": (conv2d_signature(("n", 3, "h", "w"), (6, 3, 1, 1)), 1, 1, 0, 1),
    "3x3_stride2": (conv2d_signature(("n", 4, "h", "w"), (4, 4, 3, 3), strides=2, padding=1), 3, 2, 1, 1),
    "3x3_dilation2": (conv2d_signature(("n", 2, "h", "w"), (3, 2, 3, 3), dilation=2), 3, 1, 0, 2),
    "3x3_stride2_bias_relu": (conv2d_signature(("n", 3, "h", "w"), (6, 3, 3, 3), strides=2, padding=1, bias=True,
                                               epilogue=["relu"]), 3, 2, 1, 1),
    "1x1_stride3_residual": (conv2d_signature(("n", 5, "h", "w"), (4, 5, 1, 1), strides=3, epilogue=["residual"],
                                              residual_shapes=[("n", 4, "r2", "r3")]), 1, 3, 0, 1),
    "5x5_stride2_dil2_bias_res_relu": (conv2d_signature(("n", 2, "h", "w"), (3, 2, 5, 5), strides=(1, 2),
                                                        padding=2, dilation=2, bias=True,
                                                        epilogue=["residual", "relu"],
                                                        residual_shapes=[("n", 3, "r2", "r3")]), 5, 2, 2, 2),
    "3x3_bias_scaled_residual": (conv2d_signature(("n", 4, "h", "w"), (5, 4, 3, 3), padding=1, bias=True,
                                                  epilogue=["residual", "relu"], residual_shapes=[("n", 5, "r2", "r3")],
                                                  residual_scale=True), 3, 1, 1, 1),
}
spatial = st.sampled_from([1, 2, 3, 5, 7, 13, 16, 17, 33, 40])


@pytest.mark.parametrize("name", SIGS)
@settings(max_examples=8, deadline=None)
@given(n=st.sampled_from([0, 1, 2]), h=spatial, w=spatial, pick=st.integers(0, 10))
def test_conv2d_configs_match_numpy(name, n, h, w, pick):
    sig, k, _, pad, dil = SIGS[name]
    reach = dil * (k - 1) + 1 - 2 * pad  # the smallest input the kernel fits in
    h, w = max(h, reach), max(w, reach)
    configs = configs_to_test("conv2d", sig, {"w": 32})
    check_against_reference("conv2d", sig, configs[pick % len(configs)], {"n": n, "h": h, "w": w},
                            seed=n + h * 41 + w, rtol=1e-4, atol=1e-4)


def test_conv2d_rejects_groups_and_symbolic_channels():
    t = get_template("conv2d")
    with pytest.raises(TemplateError, match="must be static"):
        t.space(conv2d_signature(("n", "c", "h", "w"), (8, 4, 3, 3)))
    sig = conv2d_signature(("n", 4, "h", "w"), (8, 4, 3, 3))
    with pytest.raises(TemplateError, match="groups=1"):
        t.space(sig.make(list(sig.args), groups=2))


def test_conv2d_checks_the_residual_against_the_output_shape():
    from nimble.errors import ShapeError
    import numpy as np

    sig = SIGS["1x1_stride3_residual"][0]
    t = get_template("conv2d")
    kernel = t.build(sig, t.fallback(sig, t.space(sig), {}), name="conv_res_check")
    data, weight, residual = t.random_inputs(sig, {"n": 1, "h": 7, "w": 8}, np.random.default_rng(0))
    assert residual.shape == (1, 4, 3, 3)
    with pytest.raises(ShapeError, match="residual0"):
        kernel(data, weight, np.zeros((1, 4, 3, 4), np.float32))
