"""ONNX models with ml_dtypes' element types (bfloat16, float8, float4, int4 / uint4 / int2 / uint2) through
from_onnx -> compile -> both VMs, with symbolic dims: Cast (saturate on and off, special values), QuantizeLinear /
DequantizeLinear, a bfloat16 model, saved and loaded executables with such constants, and the errors for what is
not supported. The reference is onnx's own ``ReferenceEvaluator`` (ml_dtypes' casts)."""
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

EXAMPLES = settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
ROWS = st.sampled_from([0, 1, 2, 3, 5, 7, 13, 101])
FLOAT8 = {"float8_e4m3fn": TensorProto.FLOAT8E4M3FN, "float8_e4m3fnuz": TensorProto.FLOAT8E4M3FNUZ,
          "float8_e5m2": TensorProto.FLOAT8E5M2, "float8_e5m2fnuz": TensorProto.FLOAT8E5M2FNUZ}
SMALL = {"float4_e2m1fn": TensorProto.FLOAT4E2M1, "int4": TensorProto.INT4, "uint4": TensorProto.UINT4,
         "int2": TensorProto.INT2, "uint2": TensorProto.UINT2, "bfloat16": TensorProto.BFLOAT16}
SPECIAL = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e6, -1e6, 1e-7, -1e-7, 447, 449, 465, 239, 241, 57343, 61441,
           0.4789, 2.0**-9, 2.0**-17, 6.5, -3.5]
BACKENDS = ("native", "python")


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def _model(nodes, inputs, outputs, inits=(), opset=23):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@functools.cache
def _compiled(key, model_fn):
    model = model_fn()
    return model, nimble.compile(from_onnx(model))


def _run(key, model_fn, backend, *inputs):
    model, exe = _compiled(key, model_fn)
    got = nimble.VirtualMachine(exe, backend=backend).run(*inputs)
    want = ReferenceEvaluator(model).run(None, {i.name: v for i, v in zip(model.graph.input, inputs)})
    return (list(got) if isinstance(got, (list, tuple)) else [got]), want


def _same(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    if want.dtype.name.startswith(("int", "uint")):
        np.testing.assert_array_equal(got.astype(np.int64), want.astype(np.int64))
        return
    g, w = got.astype(np.float64), want.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
    np.testing.assert_array_equal(np.where(np.isnan(w), 0, g), np.where(np.isnan(w), 0, w))
    np.testing.assert_array_equal(np.signbit(g[~np.isnan(w)]), np.signbit(w[~np.isnan(w)]))  # -0.0


def _cast_model(src: int, dst: int, saturate: int):
    node = helper.make_node("Cast", ["x"], ["y"], to=dst, saturate=saturate)
    return _model([node], [helper.make_tensor_value_info("x", src, ["n", 3])],
                  [helper.make_tensor_value_info("y", dst, ["n", 3])])


def _values(rng, n: int, dtype) -> np.ndarray:
    pool = np.array(SPECIAL, np.float64)
    x = np.where(rng.random(n * 3) < 0.5, rng.choice(pool, n * 3), rng.standard_normal(n * 3) * 10.0 ** rng.integers(-3, 5, n * 3))
    with np.errstate(over="ignore"):
        return x.astype(dtype).reshape(n, 3)


@pytest.mark.parametrize("saturate", [1, 0])
@pytest.mark.parametrize("src", ["float32", "float16"])
@pytest.mark.parametrize("dst", sorted(FLOAT8))
@EXAMPLES
@given(n=ROWS, seed=st.integers(0, 2**16))
def test_cast_to_float8_matches_onnx_reference(dst, src, saturate, n, seed):
    src_t = TensorProto.FLOAT if src == "float32" else TensorProto.FLOAT16
    key = ("cast", src, dst, saturate)
    x = _values(np.random.default_rng(seed), n, src)
    got, want = _run(key, lambda: _cast_model(src_t, FLOAT8[dst], saturate), "native", x)
    _same(got[0], want[0])


@pytest.mark.parametrize("dtype", sorted(FLOAT8) + sorted(SMALL))
def test_cast_both_ways_on_both_vms(dtype, backend):
    code = FLOAT8.get(dtype) or SMALL[dtype]
    x = _values(np.random.default_rng(7), 11, "float32")
    if dtype.startswith(("int", "uint")):
        x = np.random.default_rng(7).uniform(-9, 16, (11, 3)).astype(np.float32)
    got, want = _run(("cast", "float32", dtype, 1), lambda: _cast_model(TensorProto.FLOAT, code, 1), backend, x)
    _same(got[0], want[0])
    back, want_back = _run(("cast", dtype, "float32", 1), lambda: _cast_model(code, TensorProto.FLOAT, 1), backend,
                           want[0])
    _same(back[0], want_back[0])


def _quant_model(dtype: int, zero, scale):
    inits = [numpy_helper.from_array(np.asarray(scale, np.float32), "s"), helper.make_tensor("z", dtype, [3], zero)]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1)]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
                  [helper.make_tensor_value_info("q", dtype, ["n", 3]),
                   helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])], inits)


QUANT = {"int4": (TensorProto.INT4, [0, 3, -2]), "uint4": (TensorProto.UINT4, [0, 8, 15]),
         "int2": (TensorProto.INT2, [0, 1, -2]), "uint2": (TensorProto.UINT2, [0, 1, 3]),
         "float8_e4m3fn": (TensorProto.FLOAT8E4M3FN, [0, 0, 0]), "float8_e5m2": (TensorProto.FLOAT8E5M2, [0, 0, 0]),
         "float8_e4m3fnuz": (TensorProto.FLOAT8E4M3FNUZ, [0, 0, 0]),
         "float8_e5m2fnuz": (TensorProto.FLOAT8E5M2FNUZ, [0, 0, 0]),
         "float4_e2m1fn": (TensorProto.FLOAT4E2M1, [0, 0, 0])}


@pytest.mark.parametrize("dtype", sorted(QUANT))
@EXAMPLES
@given(n=ROWS, seed=st.integers(0, 2**16))
def test_quantize_dequantize_per_axis_matches_onnx_reference(dtype, n, seed):
    code, zero = QUANT[dtype]
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, 3)) * np.array([1.0, 30.0, 1000.0])).astype(np.float32)
    if n:  # saturation (within int32 after scaling: the reference casts x / scale to int32 first)
        x[0] = [0.25, -1e6, 1e6]
    got, want = _run(("quant", dtype), lambda: _quant_model(code, zero, [0.5, 2.0, 0.001]), "native", x)
    _same(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6)


def _bf16_model():
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.standard_normal((4, 5)).astype(ml_dtypes.bfloat16), "w")
    b = numpy_helper.from_array(rng.standard_normal(5).astype(ml_dtypes.bfloat16), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]), helper.make_node("Softmax", ["r"], ["y"], axis=-1)]
    bf = TensorProto.BFLOAT16
    return _model(nodes, [helper.make_tensor_value_info("x", bf, ["n", 4])],
                  [helper.make_tensor_value_info("y", bf, ["n", 5])], [w, b])


@EXAMPLES
@given(n=ROWS, seed=st.integers(0, 2**16))
def test_bfloat16_model_is_close_to_onnx_reference(n, seed):
    x = np.random.default_rng(seed).standard_normal((n, 4)).astype(ml_dtypes.bfloat16)
    got, want = _run(("bf16",), _bf16_model, "native", x)
    assert got[0].dtype == ml_dtypes.bfloat16 and got[0].shape == (n, 5)
    # the reference rounds every op's result to bfloat16, nimble a fused group's only: a few bfloat16 ulps
    np.testing.assert_allclose(got[0].astype(np.float32), want[0].astype(np.float32), rtol=2e-2, atol=1e-2)


def _constants_model():
    consts = {"cb": np.array([1.5, -0.0, 3e38, np.nan], ml_dtypes.bfloat16),
              "c8": np.array([448, -0.0, 0.015625, np.nan], ml_dtypes.float8_e4m3fn),
              "c4": np.array([-8, 7, 0, -1], ml_dtypes.int4)}
    nodes = [helper.make_node("Cast", ["c8"], ["c8f"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["c4"], ["c4f"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["cb"], ["cbf"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["x", "c8f"], ["a"]), helper.make_node("Add", ["a", "c4f"], ["b"]),
             helper.make_node("Add", ["b", "cbf"], ["c"]), helper.make_node("Cast", ["c"], ["y"], to=TensorProto.BFLOAT16),
             helper.make_node("Identity", ["c8"], ["k8"])]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                  [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, ["n", 4]),
                   helper.make_tensor_value_info("k8", TensorProto.FLOAT8E4M3FN, [4])],
                  [numpy_helper.from_array(v, k) for k, v in consts.items()])


def test_saved_executable_keeps_ml_dtypes_constants(tmp_path, backend):
    model, exe = _compiled(("consts",), _constants_model)
    path = tmp_path / "m.nimble"
    exe.save(path)
    back = nimble.Executable.load(path)
    kinds = {c.dtype.name for c in back.constants}
    assert {"bfloat16", "float8_e4m3fn"} & kinds, kinds
    for c, d in zip(exe.constants, back.constants):
        assert c.dtype == d.dtype
        np.testing.assert_array_equal(c.view(f"uint{8 * c.dtype.itemsize}"), d.view(f"uint{8 * d.dtype.itemsize}"))
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    got = nimble.VirtualMachine(back, backend=backend).run(x)
    want = ReferenceEvaluator(model).run(None, {"x": x})
    for g, w in zip(got, want):
        _same(g, w)


def test_a_bad_constant_dtype_name_is_a_format_error():
    from nimble.errors import FormatError
    from nimble.vm import validate

    with pytest.raises(FormatError, match="float6_e3m2fn"):
        validate.extended_constant(np.zeros(2, np.uint8), "float6_e3m2fn", 0)
    with pytest.raises(FormatError, match="uint16"):
        validate.extended_constant(np.zeros(2, np.uint8), "bfloat16", 0)


def test_ops_that_cannot_take_a_dtype_name_node_and_dtype():
    node = helper.make_node("Exp", ["x"], ["y"], name="exp_node")
    model = _model([node], [helper.make_tensor_value_info("x", TensorProto.INT4, ["n"])],
                   [helper.make_tensor_value_info("y", TensorProto.INT4, ["n"])], opset=21)
    with pytest.raises(ConversionError, match="exp_node.*int4"):
        from_onnx(model)
    float6 = _cast_model(TensorProto.FLOAT, TensorProto.FLOAT6E3M2, 1)
    with pytest.raises(ConversionError, match="float6_e3m2fn is not supported"):
        from_onnx(float6)


def _long_matmul_model(code: int, np_dtype):
    w = np.random.default_rng(5).standard_normal((1024, 16)).astype(np_dtype)
    return _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [helper.make_tensor_value_info("x", code, ["n", 1024])],
                  [helper.make_tensor_value_info("y", code, ["n", 16])], [numpy_helper.from_array(w, "w")])


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
@EXAMPLES
@given(n=ROWS, seed=st.integers(0, 2**16))
def test_half_precision_matmul_accumulates_in_float32(name, n, seed):
    """K = 1024: the product is the exact one rounded once (a float16 / bfloat16 accumulator was 20x off)."""
    np_dtype = np.dtype(np.float16) if name == "float16" else np.dtype(ml_dtypes.bfloat16)
    code = TensorProto.FLOAT16 if name == "float16" else TensorProto.BFLOAT16
    model, exe = _compiled(("long", name), lambda: _long_matmul_model(code, np_dtype))
    x = np.random.default_rng(seed).standard_normal((n, 1024)).astype(np_dtype)
    got = nimble.VirtualMachine(exe).run(x)
    w = numpy_helper.to_array(model.graph.initializer[0])
    exact = x.astype(np.float64) @ w.astype(np.float64)
    assert got.dtype == np_dtype
    # rounding once: within half a unit in the last place (2**-11 of the value for float16, 2**-8 for bfloat16) of the
    # exact product, give or take float32 accumulation
    half_ulp = 2.0**-11 if name == "float16" else 2.0**-8
    err = np.abs(got.astype(np.float64) - exact)
    assert (err <= np.abs(exact) * half_ulp * 1.01 + 1e-3).all(), err.max(initial=0)
