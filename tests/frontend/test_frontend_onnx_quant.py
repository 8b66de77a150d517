"""ONNX integer quantization: QuantizeLinear / DequantizeLinear / DynamicQuantizeLinear / MatMulInteger /
QLinearMatMul with symbolic dims (exact vs numpy and ONNX Runtime), and an MLP exported from torch and quantized
with onnxruntime's `quantize_dynamic`, against ONNX Runtime.

The quantized model uses `reduce_range=True` (7-bit weights): with full-range int8 weights ONNX Runtime's u8s8
MatMulInteger kernels on this CPU saturate int16 pair sums (an accumulator measured 13,313 off numpy's exact
product), while nimble's int32 accumulation is exact; see `test_matmul_integer_is_exact_where_onnxruntime_saturates`.
"""
import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402

F, U8, I8, I32 = TensorProto.FLOAT, TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32
EXAMPLES = settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
ROWS = st.sampled_from([0, 1, 2, 3, 5, 7, 13])


def _session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@functools.cache
def _ops_model():
    """x (n, 6) float -> per-axis QuantizeLinear -> DequantizeLinear; DynamicQuantizeLinear(x) -> MatMulInteger
    with a per-column weight zero point -> QLinearMatMul."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.array([0.05, 0.1, 0.5, 0.02, 1.0, 0.25], np.float32), "s6"),
        numpy_helper.from_array(np.array([0, 3, -4, 7, -128, 127], np.int8), "z6"),
        numpy_helper.from_array(rng.integers(-60, 60, (6, 5)).astype(np.int8), "w"),  # 7-bit: see above
        numpy_helper.from_array(np.array([1, -2, 0, 5, -7], np.int8), "wz"),
        numpy_helper.from_array(np.array(0.02, np.float32), "ws"),
        numpy_helper.from_array(np.array(0.5, np.float32), "ys"),
        numpy_helper.from_array(np.array(3, np.uint8), "yz"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s6", "z6"], ["q"], axis=1),
        helper.make_node("DequantizeLinear", ["q", "s6", "z6"], ["dq"], axis=1),
        helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
        helper.make_node("MatMulInteger", ["xq", "w", "xz", "wz"], ["acc"]),
        helper.make_node("QLinearMatMul", ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"]),
    ]
    outputs = [("q", I8), ("dq", F), ("xq", U8), ("xs", F), ("xz", U8), ("acc", I32), ("y", U8)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, ["n", 6])],
                              [helper.make_tensor_value_info(n, t, None) for n, t in outputs], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)
    return model, _session(model), nimble.VirtualMachine(nimble.compile(from_onnx(model)))


def _numpy_ops(x, model):
    """numpy's (independent) version of `_ops_model`."""
    c = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    q = np.clip(np.rint(x / c["s6"]) + c["z6"], -128, 127).astype(np.int8)
    dq = ((q.astype(np.int32) - c["z6"]) * c["s6"]).astype(np.float32)
    top, low = np.float32(max(0, x.max(initial=0))), np.float32(min(0, x.min(initial=0)))
    xs = np.float32((top - low) if top != low else 1) / np.float32(255)
    xz = np.uint8(np.clip(np.rint(-low / xs), 0, 255))
    xq = np.clip(np.rint(x / xs) + xz, 0, 255).astype(np.uint8)
    acc = (xq.astype(np.int32) - xz) @ (c["w"].astype(np.int32) - c["wz"])
    mult = xs * c["ws"] / c["ys"]
    y = np.clip(np.rint(acc * np.float64(mult)) + c["yz"], 0, 255).astype(np.uint8)
    return [q, dq, xq, xs, xz, acc, y]


@EXAMPLES
@given(n=ROWS, seed=st.integers(0, 2**16), ties=st.booleans())
def test_quantization_ops_with_symbolic_rows_are_exact(n, seed, ties):
    model, sess, vm = _ops_model()
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, 6)) * 4).astype(np.float32)
    if ties:  # x / scale lands on .5 for the scales 0.1, 0.5, 1.0, 0.25 (round half to even)
        x = (np.round(x * 4) / 4 + np.array([0.0, 0.05, 0.25, 0.0, 0.5, 0.125], np.float32)).astype(np.float32)
    got = [np.asarray(g) for g in vm.run(x)]
    for g, w in zip(got, _numpy_ops(x, model), strict=True):
        assert g.dtype == np.asarray(w).dtype and g.shape == np.shape(w)
        np.testing.assert_array_equal(g, w)
    if n:  # ONNX Runtime needs a non-empty x for the min / max of DynamicQuantizeLinear
        for name, g, w in zip(("q", "dq", "xq", "xs", "xz", "acc", "y"), got, sess.run(None, {"x": x})):
            np.testing.assert_array_equal(g, w, err_msg=name)


def test_matmul_integer_is_exact_where_onnxruntime_saturates():
    """Full-range uint8 x int8: nimble's int32 accumulator equals numpy's; ONNX Runtime's may not (x86 u8s8)."""
    a = np.full((1, 4), 255, np.uint8)
    b = np.full((4, 1), 127, np.int8)
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "g",
                              [helper.make_tensor_value_info("a", U8, ["n", 4])],
                              [helper.make_tensor_value_info("y", I32, None)],
                              initializer=[numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    got = nimble.VirtualMachine(nimble.compile(from_onnx(model))).run(a)
    np.testing.assert_array_equal(got, [[4 * 255 * 127]])


@functools.cache
def _quantized_mlp(tmp):
    torch = pytest.importorskip("torch")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8)).eval()
    fp32, int8 = f"{tmp}/mlp.onnx", f"{tmp}/mlp_int8.onnx"
    torch.onnx.export(mlp, (torch.randn(3, 16),), fp32, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17)
    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, reduce_range=True)
    model = onnx.load(int8)
    return model, nimble.VirtualMachine(nimble.compile(from_onnx(model))), _session(model)


def test_dynamically_quantized_mlp_matches_onnxruntime(tmp_path_factory):
    model, vm, sess = _quantized_mlp(str(tmp_path_factory.mktemp("quant")))
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= {node.op_type for node in model.graph.node}
    for n in (1, 2, 5, 13):
        x = np.random.default_rng(n).standard_normal((n, 16)).astype(np.float32)
        got, want = np.asarray(vm.run(x)), sess.run(None, {"x": x})[0]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _lowered(mod):
    from nimble.passes.pipeline import Pipeline
    from nimble.vm.pipeline import compile_pipeline

    passes = compile_pipeline("llvm", None, False).passes
    return Pipeline(passes[:[p.name for p in passes].index("lower_kernels") + 1]).run(mod, print_after=(), debug=0)


@functools.cache
def _projection_model(a_type, k, b_zero, w_type=I8):
    """DynamicQuantizeLinear (or QuantizeLinear to int8) of x (batch, seq, k) -> MatMulInteger with a constant
    (k, 24) weight of `w_type` and zero point `b_zero` -> Cast -> Mul by the scales, as quantize_dynamic writes it."""
    rng = np.random.default_rng(k)
    wd = np.int8 if w_type == I8 else np.uint8
    w = rng.integers(np.iinfo(wd).min, np.iinfo(wd).max, (k, 24), endpoint=True).astype(wd)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(b_zero, wd), "wz"),
             numpy_helper.from_array(np.array(0.01, np.float32), "ws"),
             numpy_helper.from_array(np.array(0.05, np.float32), "s"), numpy_helper.from_array(np.array(-3, np.int8), "z")]
    if a_type == U8:
        quant = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"])]
    else:
        quant = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]), helper.make_node("Identity", ["s"], ["xs"]),
                 helper.make_node("Identity", ["z"], ["xz"])]
    nodes = quant + [
        helper.make_node("MatMulInteger", ["xq", "w", "xz", "wz"], ["acc"]),
        helper.make_node("Cast", ["acc"], ["accf"], to=F),
        helper.make_node("Mul", ["xs", "ws"], ["scale"]),
        helper.make_node("Mul", ["accf", "scale"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, ["b", "s", k])],
                              [helper.make_tensor_value_info("acc", I32, None), helper.make_tensor_value_info("y", F, None)],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)
    mod = from_onnx(model)
    return model, mod, nimble.VirtualMachine(nimble.compile(mod))


CASES = [(U8, 64, 0, I8, True), (U8, 64, 5, I8, True), (U8, 30, 0, I8, False), (I8, 64, 0, I8, True),
         (I8, 64, 3, U8, True), (U8, 64, 200, U8, True)]


@pytest.mark.parametrize("a_type, k, b_zero, w_type, template", CASES)
def test_which_kernel_serves_matmul_integer(a_type, k, b_zero, w_type, template):
    """The dense_integer template, or on a CPU with AMX-INT8 its tile form; other widths the generic kernel."""
    from nimble.schedules.dense_integer_amx import dense_integer_template

    kinds = [gk.template for gk in _lowered(_projection_model(a_type, k, b_zero, w_type)[1]).kernels]
    assert (dense_integer_template() in kinds) == template, kinds


@pytest.mark.parametrize("a_type, k, b_zero, w_type, template", CASES)
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.sampled_from([0, 1, 2, 3]), seq=ROWS, seed=st.integers(0, 2**16))
def test_matmul_integer_with_a_constant_weight_is_one_exact_dense_integer(a_type, k, b_zero, w_type, template, batch,
                                                                          seq, seed):
    """With k a multiple of 4 every 8-bit type pair runs the dense_integer template (VNNI where the CPU has it;
    int8 activations and uint8 weights shifted by 128), other widths the operator's generic kernel; a weight zero
    point is subtracted times the rows' sums. Exact."""
    model, mod, vm = _projection_model(a_type, k, b_zero, w_type)
    x = (np.random.default_rng(seed).standard_normal((batch, seq, k)) * 3).astype(np.float32)
    acc, y = (np.asarray(v) for v in vm.run(x))
    c = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    if a_type == U8:  # DynamicQuantizeLinear
        top, low = np.float32(max(0, x.max(initial=0))), np.float32(min(0, x.min(initial=0)))
        xs = np.float32((top - low) if top != low else 1) / np.float32(255)
        xz = np.uint8(np.clip(np.rint(-low / xs), 0, 255))
        xq = np.clip(np.rint(x / xs) + xz, 0, 255).astype(np.uint8)
    else:
        xq = np.clip(np.rint(x / c["s"]) + c["z"], -128, 127).astype(np.int8)
        xs, xz = c["s"], c["z"]
    want = (xq.astype(np.int32) - np.int32(xz)) @ (c["w"].astype(np.int32) - np.int32(b_zero))
    assert acc.dtype == np.int32 and acc.shape == (batch, seq, 24)
    np.testing.assert_array_equal(acc, want)
    np.testing.assert_allclose(y, want.astype(np.float32) * (np.float32(xs) * c["ws"]), rtol=1e-6, atol=1e-6)


def _conv_integer_model(x_type, w, x_zero, w_zero, pads, strides, dilations):
    channels = w.shape[1]
    inits, names = [numpy_helper.from_array(w, "w")], ["x", "w"]
    if x_zero is not None:
        inits.append(numpy_helper.from_array(x_zero, "xz"))
        names.append("xz")
    if w_zero is not None:
        if x_zero is None:
            names.append("")
        inits.append(numpy_helper.from_array(w_zero, "wz"))
        names.append("wz")
    node = helper.make_node("ConvInteger", names, ["y"], pads=pads, strides=strides, dilations=dilations)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", x_type, ["n", channels, "h", "w"])],
                              [helper.make_tensor_value_info("y", I32, None)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def _conv_integer_reference(x, w, x_zero, w_zero, pads, strides, dilations):
    """Exact int64 convolution of (x - x_zero) and (w - w_zero[m]), loops over the kernel taps."""
    n, c, h, wd = x.shape
    m, _, kh, kw = w.shape
    (sh, sw), (dh, dw) = strides, dilations
    pt, pl, pb, pr = pads
    xs = x.astype(np.int64) - (0 if x_zero is None else int(x_zero))
    ws = w.astype(np.int64) - (0 if w_zero is None else np.asarray(w_zero, np.int64).reshape(-1, 1, 1, 1))
    padded = np.zeros((n, c, h + pt + pb, wd + pl + pr), np.int64)
    padded[:, :, pt:pt + h, pl:pl + wd] = xs
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, m, oh, ow), np.int64)
    for i in range(kh):
        for j in range(kw):
            tap = padded[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
            out += np.einsum("nchw,mc->nmhw", tap, ws[:, :, i, j])
    return out.astype(np.int32)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(types=st.sampled_from([(U8, np.uint8, np.int8), (I8, np.int8, np.int8), (U8, np.uint8, np.uint8)]),
       geometry=st.sampled_from([([1, 1, 1, 1], [1, 1], [1, 1], 3), ([0, 1, 2, 0], [2, 1], [1, 2], 3),
                                 ([0, 0, 0, 0], [1, 1], [1, 1], 1), ([2, 2, 2, 2], [3, 2], [2, 1], 5)]),
       zeros=st.sampled_from(["none", "scalar", "channel"]), n=st.sampled_from([0, 1, 2]),
       hw=st.sampled_from([(5, 5), (7, 12), (13, 6)]), seed=st.integers(0, 2**16))
def test_conv_integer_is_one_exact_integer_product(types, geometry, zeros, n, hw, seed):
    """ConvInteger with a constant weight: image_patches then dense_integer (AMX or VNNI), exact against numpy at
    any batch and image size; C x kh x kw = 5 x k x k is rounded up to a multiple of 4 by zero-point columns."""
    x_type, x_dt, w_dt = types
    pads, strides, dilations, k = geometry
    rng = np.random.default_rng(seed)
    info_w, info_x = np.iinfo(w_dt), np.iinfo(x_dt)
    w = rng.integers(info_w.min, info_w.max + 1, (6, 5, k, k)).astype(w_dt)
    x = rng.integers(info_x.min, info_x.max + 1, (n, 5) + hw).astype(x_dt)
    x_zero = None if zeros == "none" else np.array(rng.integers(info_x.min, info_x.max + 1), x_dt)
    w_zero = {"none": None, "scalar": np.array(rng.integers(info_w.min, info_w.max + 1), w_dt),
              "channel": rng.integers(info_w.min, info_w.max + 1, (6,)).astype(w_dt)}[zeros]
    model = _conv_integer_model(x_type, w, x_zero, w_zero, pads, strides, dilations)
    got = np.asarray(nimble.VirtualMachine(nimble.compile(from_onnx(model))).run(x))
    want = _conv_integer_reference(x, w, x_zero, w_zero, pads, strides, dilations)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)


def test_conv_integer_matches_onnxruntime_and_runs_on_the_integer_template():
    from nimble.schedules.dense_integer_amx import dense_integer_template

    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, (16, 8, 3, 3)).astype(np.int8)
    model = _conv_integer_model(U8, w, np.array(9, np.uint8), None, [1, 1, 1, 1], [1, 1], [1, 1])
    mod = from_onnx(model)
    kinds = [gk.template for gk in _lowered(mod).kernels]
    assert dense_integer_template() in kinds, kinds
    vm, sess = nimble.VirtualMachine(nimble.compile(mod)), _session(model)
    for shape in [(1, 8, 14, 14), (2, 8, 9, 17)]:
        x = rng.integers(0, 256, shape).astype(np.uint8)
        np.testing.assert_array_equal(np.asarray(vm.run(x)), sess.run(None, {"x": x})[0])


@pytest.mark.parametrize("x_type, x_dt, per_channel, bias", [(U8, np.uint8, False, True), (U8, np.uint8, True, True),
                                                              (I8, np.int8, True, False)])
def test_qlinear_conv_matches_onnxruntime(x_type, x_dt, per_channel, bias):
    """QLinearConv (the integer convolution, an int32 bias, requantized per tensor or per output channel) equal to
    ONNX Runtime's at several image sizes."""
    rng = np.random.default_rng(int(per_channel) + 2 * int(bias))
    m, c, k = 8, 4, 3
    w = rng.integers(-127, 128, (m, c, k, k)).astype(np.int8)
    w_scale = (rng.uniform(0.001, 0.01, (m,)) if per_channel else np.array(0.004)).astype(np.float32)
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "xs"),
             numpy_helper.from_array(np.array(3 if x_dt == np.uint8 else -2, x_dt), "xz"),
             numpy_helper.from_array(w, "w"), numpy_helper.from_array(w_scale, "ws"),
             numpy_helper.from_array(np.zeros(w_scale.shape, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.5, np.float32), "ys"),
             numpy_helper.from_array(np.array(10 if x_dt == np.uint8 else 0, x_dt), "yz")]
    names = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"]
    if bias:
        inits.append(numpy_helper.from_array(rng.integers(-5000, 5000, (m,)).astype(np.int32), "b"))
        names.append("b")
    node = helper.make_node("QLinearConv", names, ["y"], pads=[1, 1, 1, 1], strides=[2, 1])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", x_type, ["n", c, "h", "w"])],
                              [helper.make_tensor_value_info("y", x_type, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    vm, sess = nimble.VirtualMachine(nimble.compile(from_onnx(model))), _session(model)
    for shape in [(1, c, 9, 9), (2, c, 6, 11), (0, c, 4, 4)]:
        x = rng.integers(np.iinfo(x_dt).min, np.iinfo(x_dt).max + 1, shape).astype(x_dt)
        got = np.asarray(vm.run(x))
        assert got.dtype == x_dt
        np.testing.assert_array_equal(got, sess.run(None, {"x": x})[0])


def test_dynamically_quantized_cnn_matches_onnxruntime(tmp_path):
    """A small CNN (a strided stem, a residual block) quantized by `quantize_dynamic`: ConvInteger on the integer
    template at several batch and image sizes (all dynamic), equal to ONNX Runtime's up to float rounding."""
    torch = pytest.importorskip("torch")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 16, 5, stride=2, padding=2)
            self.c1, self.c2 = torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.Conv2d(16, 16, 3, padding=1)

        def forward(self, x):
            x = torch.relu(self.stem(x))
            return torch.relu(x + self.c2(torch.relu(self.c1(x))))

    fp32, int8 = f"{tmp_path}/cnn.onnx", f"{tmp_path}/cnn_int8.onnx"
    torch.onnx.export(Net().eval(), (torch.randn(1, 3, 20, 20),), fp32, dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n"}}, opset_version=13)
    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, reduce_range=True)
    model = onnx.load(int8)
    assert "ConvInteger" in {node.op_type for node in model.graph.node}
    vm, sess = nimble.VirtualMachine(nimble.compile(from_onnx(model))), _session(model)
    for shape in [(1, 3, 20, 20), (2, 3, 13, 31), (1, 3, 1, 1)]:
        x = np.random.default_rng(shape[2]).standard_normal(shape).astype(np.float32)
        got, want = np.asarray(vm.run(x)), sess.run(None, {"x": x})[0]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
