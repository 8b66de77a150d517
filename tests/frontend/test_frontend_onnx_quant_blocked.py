"""Blocked QuantizeLinear / DequantizeLinear (block_size > 0) through from_onnx -> compile -> both VMs, against a
numpy reference (np.repeat of the scale along the axis, cut to the dim) and ONNX Runtime: every dim symbolic (x,
scale and zero point all graph inputs, one executable for every shape: 0, 1, primes, dims block_size does not divide),
constant scales with a run-time batch dim, integer and float8 outputs; bad scale shapes refused (static: a
MalformedNodeError naming the node; run-time: an OutOfRangeError)."""
import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
ml_dtypes = pytest.importorskip("ml_dtypes")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402
from nimble.frontend.onnx_graph import ConversionError  # noqa: E402

EXAMPLES = settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
DIMS = st.sampled_from([0, 1, 2, 3, 5, 7, 13, 31])
CODES = {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8, "int16": TensorProto.INT16,
         "uint16": TensorProto.UINT16, "int4": TensorProto.INT4, "uint4": TensorProto.UINT4,
         "float8_e4m3fn": TensorProto.FLOAT8E4M3FN}
RANGES = {"uint8": (0, 255), "int8": (-128, 127), "int16": (-32768, 32767), "uint16": (0, 65535), "int4": (-8, 7),
          "uint4": (0, 15)}
# (rank, axis, block_size)
LAYOUTS = [(1, 0, 4), (2, 1, 2), (2, 0, 3), (3, 1, 5), (3, -1, 32), (2, 1, 1)]
BACKENDS = ("native", "python")


def _np_dtype(name):
    return np.dtype(getattr(ml_dtypes, name)) if name in ("int4", "uint4", "float8_e4m3fn") else np.dtype(name)


def _expand(v, shape, axis, block):
    """The numpy reference's per-element scale / zero point: each entry repeated block times, cut to the dim."""
    return np.take(np.repeat(v, block, axis=axis), np.arange(shape[axis]), axis=axis)


def _quantize_ref(x, scale, zero, axis, block, dtype):
    y = x / _expand(scale, x.shape, axis, block)
    if dtype == "float8_e4m3fn":
        return np.clip(y, -448, 448).astype(ml_dtypes.float8_e4m3fn)
    q = np.rint(y).astype(np.int64) + _expand(zero, x.shape, axis, block).astype(np.int64)
    low, high = RANGES[dtype]
    return np.clip(q, low, high).astype(_np_dtype(dtype))


def _dequantize_ref(q, scale, zero, axis, block):
    centred = q.astype(np.float32) - _expand(zero, q.shape, axis, block).astype(np.float32)
    return centred * _expand(scale, q.shape, axis, block)


def _blocks(shape, axis, block):
    s = list(shape)
    s[axis] = -(-s[axis] // block)
    return tuple(s)


def _model(op, dtype, rank, axis, block, zero: bool, scale_inits=None):
    """QuantizeLinear (float32 -> dtype) or DequantizeLinear (dtype -> float32) over symbolic dims; the scale and
    zero point are graph inputs with their own symbolic dims, or the initializers `scale_inits`."""
    code = CODES[dtype]
    src, dst = (TensorProto.FLOAT, code) if op == "QuantizeLinear" else (code, TensorProto.FLOAT)
    dims = [f"d{k}" for k in range(rank)]
    names = ["x", "s", "z"] if zero else ["x", "s"]
    inputs = [helper.make_tensor_value_info("x", src, dims)]
    inits = []
    if scale_inits is None:
        sdims = [f"s{k}" for k in range(rank)]
        inputs.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, sdims))
        if zero:
            inputs.append(helper.make_tensor_value_info("z", code, sdims))
    else:
        inits = [numpy_helper.from_array(v, n) for n, v in zip(("s", "z"), scale_inits)]
    extra = {"output_dtype": code} if op == "QuantizeLinear" and not zero else {}
    node = helper.make_node(op, names, ["y"], axis=axis, block_size=block, name="blocked_q", **extra)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", dst, dims)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


@functools.cache
def _compiled(op, dtype, rank, axis, block, zero):
    model = _model(op, dtype, rank, axis, block, zero)
    return model, nimble.compile(from_onnx(model))


def _data(rng, op, dtype, shape, axis, block, zero):
    sshape = _blocks(shape, axis, block)
    scale = rng.uniform(0.05, 3.0, sshape).astype(np.float32)
    z = None
    if zero:
        low, high = RANGES[dtype]
        z = rng.integers(low, high, sshape, endpoint=True).astype(_np_dtype(dtype))
    if op == "QuantizeLinear":
        x = (rng.standard_normal(shape) * 40).astype(np.float32)
    elif dtype == "float8_e4m3fn":
        x = (rng.standard_normal(shape) * 10).astype(ml_dtypes.float8_e4m3fn)
    else:
        low, high = RANGES[dtype]
        x = rng.integers(low, high, shape, endpoint=True).astype(_np_dtype(dtype))
    return x, scale, z


def _reference(op, dtype, x, scale, z, axis, block):
    zeros = np.zeros_like(scale, dtype=np.int64) if z is None else z
    if op == "QuantizeLinear":
        return _quantize_ref(x, scale, zeros, axis, block, dtype)
    return _dequantize_ref(x, scale, zeros, axis, block)


def _same(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype
    if want.dtype == np.float32:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
    else:
        np.testing.assert_array_equal(got.view(f"uint{8 * want.dtype.itemsize}"),
                                      want.view(f"uint{8 * want.dtype.itemsize}"))


def _ort(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
@pytest.mark.parametrize("op,dtype,zero", [("QuantizeLinear", "uint8", True), ("QuantizeLinear", "int4", True),
                                           ("QuantizeLinear", "int16", False), ("QuantizeLinear", "float8_e4m3fn", False),
                                           ("DequantizeLinear", "int8", True), ("DequantizeLinear", "uint4", True),
                                           ("DequantizeLinear", "uint16", False)])
@EXAMPLES
@given(dims=st.lists(DIMS, min_size=3, max_size=3), seed=st.integers(0, 2**16))
def test_blocked_over_run_time_dims_matches_numpy(layout, op, dtype, zero, dims, seed):
    rank, axis, block = layout
    shape = tuple(dims[:rank])
    model, exe = _compiled(op, dtype, rank, axis, block, zero)
    x, scale, z = _data(np.random.default_rng(seed), op, dtype, shape, axis, block, zero)
    want = _reference(op, dtype, x, scale, z, axis % rank, block)
    args = (x, scale) if z is None else (x, scale, z)
    for backend in BACKENDS:
        _same(nimble.VirtualMachine(exe, backend=backend).run(*args), want)


@pytest.mark.parametrize("op,dtype,zero", [("QuantizeLinear", "uint8", True), ("QuantizeLinear", "int8", False),
                                           ("QuantizeLinear", "uint16", True), ("DequantizeLinear", "uint8", True),
                                           ("DequantizeLinear", "int8", True), ("DequantizeLinear", "int16", False)])
@pytest.mark.parametrize("layout", [(2, 1, 2), (3, 1, 5), (2, 0, 3)], ids=str)
def test_blocked_matches_onnx_runtime(op, dtype, zero, layout):
    """(ONNX Runtime's Python API takes no ml_dtypes arrays: the 4-bit ones are checked against numpy only.)"""
    rank, axis, block = layout
    model, exe = _compiled(op, dtype, rank, axis, block, zero)
    rng = np.random.default_rng(11)
    for shape in [(7, 13, 3)[:rank], (5, 31, 2)[:rank], (1, 1, 1)[:rank]]:
        x, scale, z = _data(rng, op, dtype, shape, axis, block, zero)
        args = (x, scale) if z is None else (x, scale, z)
        want = _ort(model, dict(zip("xsz", args)))
        for backend in BACKENDS:
            _same(nimble.VirtualMachine(exe, backend=backend).run(*args), want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["QuantizeLinear", "DequantizeLinear"])
def test_constant_blocked_scale_with_a_run_time_batch(op, backend):
    """The common case: weights' scales as initializers (K = 13 along the axis, block 4: a short last block), the
    batch dim symbolic; a batch that disagrees with the scale's dim is refused at run time."""
    rng = np.random.default_rng(5)
    scale = rng.uniform(0.1, 2, (6, 4)).astype(np.float32)
    zero = rng.integers(0, 255, (6, 4)).astype(np.uint8)
    model = _model(op, "uint8", 2, 1, 4, True, scale_inits=(scale, zero))
    exe = nimble.compile(from_onnx(model))
    x, _, _ = _data(rng, op, "uint8", (6, 13), 1, 4, True)
    got = nimble.VirtualMachine(exe, backend=backend).run(x)
    _same(got, _ort(model, {"x": x}))
    _same(got, _reference(op, "uint8", x, scale, zero, 1, 4))
    bad, _, _ = _data(rng, op, "uint8", (5, 13), 1, 4, True)
    with pytest.raises(nimble.OutOfRangeError):
        nimble.VirtualMachine(exe, backend=backend).run(bad)


def _static_model(x_shape, scale_shape, axis=1, block=2, name="q_static"):
    node = helper.make_node("QuantizeLinear", ["x", "s"], ["y"], axis=axis, block_size=block, name=name)
    scale = numpy_helper.from_array(np.ones(scale_shape, np.float32), "s")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, x_shape)], initializer=[scale])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


@pytest.mark.parametrize("x_shape,scale_shape,block,match", [
    ((3, 5), (3, 2), 2, r"q_static.*dim 1 must be ceil\(5 / block_size 2\) = 3, got 2"),
    ((3, 5), (3, 4), 2, r"q_static.*dim 1 must be ceil\(5 / block_size 2\) = 3, got 4"),
    ((3, 4), (1, 2), 2, r"q_static.*dim 0 must be x's dim 3, got 1"),
    ((3, 4), (2,), 2, r"q_static.*x's rank 2"),
    ((3, 4), (3, 2), -2, r"q_static.*block_size must be a positive integer"),
])
def test_a_bad_static_scale_shape_names_the_node(x_shape, scale_shape, block, match):
    with pytest.raises(ConversionError, match=match):
        from_onnx(_static_model(x_shape, scale_shape, block=block))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scale_shape", [(3, 2), (3, 4), (1, 3), (2, 3)])
def test_a_bad_run_time_scale_shape_raises(scale_shape, backend):
    """x (3, 5) with block 2 needs a (3, 3) scale: fewer or more blocks, or a non-axis dim of 1 (which would
    broadcast) or of another size, are errors when the model runs."""
    _, exe = _compiled("QuantizeLinear", "uint8", 2, 1, 2, False)
    x = np.ones((3, 5), np.float32)
    vm = nimble.VirtualMachine(exe, backend=backend)
    _same(vm.run(x, np.ones((3, 3), np.float32)), np.ones((3, 5), np.uint8))
    with pytest.raises(nimble.OutOfRangeError):
        vm.run(x, np.ones(scale_shape, np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["int8", "float8_e4m3fn"])
def test_mx_style_e8m0_block_scales_match_onnx_reference(dtype, backend):
    """Blocks of 32 along the last axis with float8 e8m0 scales (powers of two), quantized and dequantized back,
    the batch dim symbolic (1 at run time: the scale has x's rank); the reference is onnx's ReferenceEvaluator."""
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(3)
    scale = np.exp2(rng.integers(-4, 5, (3, 2))).astype(np.float32).astype(ml_dtypes.float8_e8m0fnu)
    code = CODES[dtype]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s"], ["q"], axis=-1, block_size=32, output_dtype=code),
             helper.make_node("DequantizeLinear", ["q", "s"], ["y"], axis=-1, block_size=32,
                              output_dtype=TensorProto.FLOAT)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 50])],
                              [helper.make_tensor_value_info("q", code, ["n", 3, 50]),
                               helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, 50])],
                              initializer=[numpy_helper.from_array(scale[None], "s")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)])
    exe = nimble.compile(from_onnx(model))
    x = (rng.standard_normal((1, 3, 50)) * 100).astype(np.float32)
    got = nimble.VirtualMachine(exe, backend=backend).run(x)
    want = ReferenceEvaluator(model).run(None, {"x": x})
    for g, w in zip(got, want):
        _same(g, w)


def _dequantize_model(x_dims, s_dims, block):
    node = helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], axis=1, block_size=block)
    inputs = [helper.make_tensor_value_info("x", TensorProto.INT8, x_dims),
              helper.make_tensor_value_info("s", TensorProto.FLOAT, s_dims),
              helper.make_tensor_value_info("z", TensorProto.INT8, s_dims)]
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, x_dims)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def test_a_run_time_blocked_dim_costs_a_few_times_the_static_form_not_tens():
    """The block index over a run-time dim is computed once per run, not divided out per element of x (that cost
    20-30x the static form's time; now ~4x: the gather still loads an index of its own dim)."""
    import time

    from nimble import settings

    rows, k, block = 256, 1024, 32
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 127, (rows, k)).astype(np.int8)
    s = rng.uniform(0.01, 1, (rows, k // block)).astype(np.float32)
    z = rng.integers(-5, 5, (rows, k // block)).astype(np.int8)
    vms = [nimble.VirtualMachine(nimble.compile(from_onnx(_dequantize_model(x_dims, s_dims, block))))
           for x_dims, s_dims in (([rows, k], [rows, k // block]), (["n", "k"], ["n", "b"]))]
    want = _dequantize_ref(x, s, z, 1, block)
    times = [[], []]
    threads = settings.num_threads()
    settings.set_num_threads(1)  # (one thread: the ratio of work, not of how it spreads)
    try:
        for _ in range(15):
            for vm, t in zip(vms, times):
                start = time.perf_counter()
                got = vm.run(x, s, z)
                t.append(time.perf_counter() - start)
                _same(got, want)
    finally:
        settings.set_num_threads(threads)
    static, dynamic = (min(t) for t in times)  # (the least disturbed run of each)
    assert dynamic < 12 * static, f"run-time dim {dynamic * 1e3:.2f} ms, static {static * 1e3:.2f} ms"
