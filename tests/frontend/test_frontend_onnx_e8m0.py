"""ONNX FLOAT8E8M0 (ml_dtypes' float8_e8m0fnu) through from_onnx -> compile -> both VMs, with a symbolic dim: Cast to
it bit-exact with ONNX's reference conversion (``onnx.numpy_helper.to_float8e8m0``) for every round_mode and
saturate over every float32 exponent (zero, subnormals, negatives, inf, NaN, powers of two, halfway points and
their neighbours) and every float16; every one of the 256 codes widened exactly; round trips; constants."""
import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
ml_dtypes = pytest.importorskip("ml_dtypes")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402
from nimble.frontend.onnx_graph import ConversionError  # noqa: E402

E8M0 = ml_dtypes.float8_e8m0fnu
MODES = [(s, r) for s in (1, 0) for r in ("up", "down", "nearest")]
BACKENDS = ("native", "python")
EXAMPLES = settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
# float32 fraction bits around e8m0's rounding points: 0, 1 ulp, the 'nearest' tie (0x400000) and ml_dtypes'
# subnormal tie (0x600000), each with its neighbours, and the largest
FRACTIONS = np.array([0, 1, 2, 0x1FFFFF, 0x200000, 0x3FFFFF, 0x400000, 0x400001, 0x5FFFFF, 0x600000, 0x600001,
                      0x7FFFFE, 0x7FFFFF], np.uint32)


def _model(node, src: int, dst: int, opset: int = 25):
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", src, ["n"])],
                              [helper.make_tensor_value_info("y", dst, ["n"])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@functools.cache
def _cast(src: int, dst: int, saturate: int = 1, round_mode: str = "up"):
    node = helper.make_node("Cast", ["x"], ["y"], to=dst, saturate=saturate, round_mode=round_mode)
    model = _model(node, src, dst)
    return model, nimble.compile(from_onnx(model))


def _run(exe, x, backend="native"):
    return nimble.VirtualMachine(exe, backend=backend).run(x)


def _edge_floats() -> np.ndarray:
    """Every float32 exponent (both signs) with FRACTIONS: zero, subnormals, powers of two, halfway points, their
    neighbours, inf and NaN."""
    exps = np.arange(256, dtype=np.uint32)
    bits = (exps[:, None] << 23 | FRACTIONS[None, :]).reshape(-1)
    return np.concatenate([bits, bits | np.uint32(0x80000000)]).view(np.float32)


def _same_codes(got, want):
    assert got.dtype == E8M0 and want.dtype == E8M0 and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("saturate,round_mode", MODES)
def test_float32_edges_to_e8m0_match_onnx_reference(saturate, round_mode):
    x = _edge_floats()
    _, exe = _cast(TensorProto.FLOAT, TensorProto.FLOAT8E8M0, saturate, round_mode)
    _same_codes(_run(exe, x), numpy_helper.to_float8e8m0(x, bool(saturate), round_mode))


@pytest.mark.parametrize("saturate,round_mode", MODES)
def test_reference_evaluator_agrees_on_named_edges(saturate, round_mode):
    """The ONNX Cast node itself (ReferenceEvaluator) on the values the spec's table names, on both VMs."""
    x = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 2.0**127, 1.5 * 2.0**127, 3.4e38, 2.0**-127, 2.0**-126, 1e-45,
                  1.25 * 2.0**-127, 1.5 * 2.0**-127, 1.0, 1.5, 1.5000001, 1.4999999, 3.0, 0.124, -0.25, -3.0, 1.1],
                 np.float32)
    model, exe = _cast(TensorProto.FLOAT, TensorProto.FLOAT8E8M0, saturate, round_mode)
    (want,) = ReferenceEvaluator(model).run(None, {"x": x})
    for backend in BACKENDS:
        _same_codes(_run(exe, x, backend), want)


@pytest.mark.parametrize("saturate,round_mode", MODES)
@EXAMPLES
@given(n=st.sampled_from([0, 1, 2, 3, 7, 31, 1031]), seed=st.integers(0, 2**16))
def test_random_float32_bits_to_e8m0_match_onnx_reference(saturate, round_mode, n, seed):
    x = np.random.default_rng(seed).integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    _, exe = _cast(TensorProto.FLOAT, TensorProto.FLOAT8E8M0, saturate, round_mode)
    _same_codes(_run(exe, x), numpy_helper.to_float8e8m0(x, bool(saturate), round_mode))


@pytest.mark.parametrize("round_mode", ["up", "nearest"])
def test_every_float16_to_e8m0_matches_onnx_reference(round_mode):
    x = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    _, exe = _cast(TensorProto.FLOAT16, TensorProto.FLOAT8E8M0, 1, round_mode)
    _same_codes(_run(exe, x), numpy_helper.to_float8e8m0(x, True, round_mode))


def test_float64_goes_through_float32_like_the_reference():
    x = np.array([1.0 + 2.0**-30, 1.5 - 2.0**-40, 2.0**-127 * (1 + 2.0**-30), 1e-300, 1e300, -1e300, 2.0**128 * 0.99999],
                 np.float64)
    _, exe = _cast(TensorProto.DOUBLE, TensorProto.FLOAT8E8M0, 1, "nearest")
    _same_codes(_run(exe, x), numpy_helper.to_float8e8m0(x, True, "nearest"))


@pytest.mark.parametrize("dst", [TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16])
def test_every_e8m0_code_widens_exactly_on_both_vms(dst, backend):
    codes = np.arange(256, dtype=np.uint8).view(E8M0)
    model, exe = _cast(TensorProto.FLOAT8E8M0, dst)
    (want,) = ReferenceEvaluator(model).run(None, {"x": codes})
    got = _run(exe, codes, backend)
    assert got.dtype == want.dtype
    g, w = got.astype(np.float64), want.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
    np.testing.assert_array_equal(g[~np.isnan(w)], w[~np.isnan(w)])  # 2**-127 (a float32 subnormal) included


@pytest.mark.parametrize("saturate,round_mode", MODES)
def test_every_code_round_trips_through_float32(saturate, round_mode):
    """Each code comes back (0xFF: NaN -> NaN), but for code 0 (2**-127, a float32 subnormal) under 'up': the
    reference reads its nonzero fraction bits as 'above 2**(0 - 127)' and rounds it up to code 1."""
    codes = np.arange(256, dtype=np.uint8).view(E8M0)
    _, widen = _cast(TensorProto.FLOAT8E8M0, TensorProto.FLOAT)
    _, narrow = _cast(TensorProto.FLOAT, TensorProto.FLOAT8E8M0, saturate, round_mode)
    wide = _run(widen, codes)
    got = _run(narrow, wide)
    _same_codes(got, numpy_helper.to_float8e8m0(wide, bool(saturate), round_mode))
    want = codes.view(np.uint8).copy()
    want[0] = 1 if round_mode == "up" else 0
    np.testing.assert_array_equal(got.view(np.uint8), want)


def test_castlike_to_e8m0_takes_round_mode():
    node = helper.make_node("CastLike", ["x", "like"], ["y"], round_mode="down")
    like = numpy_helper.from_array(np.ones(1, np.float32).astype(E8M0), "like")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT8E8M0, ["n"])], initializer=[like])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)])
    x = _edge_floats()
    got = _run(nimble.compile(from_onnx(model)), x)
    _same_codes(got, numpy_helper.to_float8e8m0(x, True, "down"))


def test_e8m0_to_saturating_float8_goes_through_float32(backend):
    """e8m0 has no +-448 to clip to: the clip is done in float32 (2**9 and up -> 448)."""
    codes = np.arange(256, dtype=np.uint8).view(E8M0)
    _, exe = _cast(TensorProto.FLOAT8E8M0, TensorProto.FLOAT8E4M3FN, 1)
    got = _run(exe, codes, backend)
    with np.errstate(invalid="ignore", over="ignore"):
        want = np.clip(codes.astype(np.float32), -448, 448).astype(ml_dtypes.float8_e4m3fn)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_e8m0_constants_survive_save_and_load(tmp_path, backend):
    consts = np.array([0, 1, 126, 127, 128, 254, 255], np.uint8).view(E8M0)
    nodes = [helper.make_node("Cast", ["c"], ["cf"], to=TensorProto.FLOAT), helper.make_node("Mul", ["x", "cf"], ["y"]),
             helper.make_node("Identity", ["c"], ["k"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 7]),
                               helper.make_tensor_value_info("k", TensorProto.FLOAT8E8M0, [7])],
                              initializer=[numpy_helper.from_array(consts, "c")])
    exe = nimble.compile(from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)])))
    exe.save(tmp_path / "m.nimble")
    back = nimble.Executable.load(tmp_path / "m.nimble")
    assert "float8_e8m0fnu" in {c.dtype.name for c in back.constants}
    x = np.full((3, 7), 2.0, np.float32)
    got, kept = nimble.VirtualMachine(back, backend=backend).run(x)
    _same_codes(kept, consts)
    want = x * consts.astype(np.float32)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~np.isnan(want)], want[~np.isnan(want)])


def test_an_unknown_round_mode_is_a_conversion_error_naming_the_node():
    node = helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT8E8M0, round_mode="sideways", name="to_mx")
    with pytest.raises(ConversionError, match="to_mx.*round_mode.*sideways"):
        from_onnx(_model(node, TensorProto.FLOAT, TensorProto.FLOAT8E8M0))


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param
