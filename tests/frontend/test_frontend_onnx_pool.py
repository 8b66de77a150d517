"""ONNX MaxPool / AveragePool with symbolic dims: N-D, dilations, ceil_mode, count_include_pad, MaxPool's Indices;
each model compiled once and compared with ONNX Runtime at shapes drawn by hypothesis (0, 1, primes)."""
import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402
from nimble.frontend.onnx_graph import ConversionError  # noqa: E402

F, I64 = TensorProto.FLOAT, TensorProto.INT64
EXAMPLES = settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
SIZES = st.sampled_from([1, 2, 3, 5, 7, 11, 13])


def _model(op, dims, outputs, **attrs):
    node = helper.make_node(op, ["x"], [name for name, _ in outputs], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", F, dims)],
                              [helper.make_tensor_value_info(name, t, None) for name, t in outputs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)


@functools.cache
def _compiled(key):
    model = _MODELS[key]()
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(model)))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return vm, sess


def _check(key, x):
    vm, sess = _compiled(key)
    want = sess.run(None, {"x": x})
    got = vm.run(x)
    got = list(got) if isinstance(got, (list, tuple)) else [got]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g = np.asarray(g)
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


_MODELS = {
    "max3d": lambda: _model("MaxPool", ["n", "c", "d", "h", "w"], [("y", F), ("i", I64)], kernel_shape=[2, 3, 2],
                            strides=[2, 1, 2], dilations=[1, 2, 2], pads=[1, 0, 1, 0, 2, 1], ceil_mode=1),
    "max2d_col": lambda: _model("MaxPool", ["n", "c", "h", "w"], [("y", F), ("i", I64)], kernel_shape=[3, 3],
                                strides=[2, 2], pads=[1, 1, 1, 1], storage_order=1),
    "avg2d_ceil_pad": lambda: _model("AveragePool", ["n", "c", "h", "w"], [("y", F)], kernel_shape=[3, 2],
                                     strides=[2, 3], pads=[1, 1, 2, 1], ceil_mode=1, count_include_pad=1),
    "avg1d_dilated": lambda: _model("AveragePool", ["n", "c", "l"], [("y", F)], kernel_shape=[3], dilations=[2],
                                    strides=[2], pads=[2, 1], ceil_mode=1),
    "max_same": lambda: _model("MaxPool", ["n", "c", "h", "w"], [("y", F)], kernel_shape=[3, 2],
                               auto_pad="SAME_UPPER"),
    "avg_same_strided": lambda: _model("AveragePool", ["n", "c", "h", "w"], [("y", F)], kernel_shape=[3, 2],
                                       strides=[2, 3], auto_pad="SAME_LOWER", count_include_pad=1),
}


def _data(draw, shape, ties=False):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if ties:  # few distinct values: windows hold repeated maxima
        return rng.integers(-2, 3, shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


@EXAMPLES
@given(st.data())
def test_3d_dilated_ceil_mode_max_pool_and_indices(data):
    n, c = data.draw(st.sampled_from([0, 1, 2])), data.draw(st.sampled_from([1, 3]))
    d, h, w = (data.draw(SIZES) for _ in range(3))
    _check("max3d", _data(data.draw, (n, c, d + 1, h + 4, w + 2), ties=data.draw(st.booleans())))


@EXAMPLES
@given(st.data())
def test_column_major_indices_first_maximum_among_ties(data):
    shape = (data.draw(st.sampled_from([1, 2])), 2, data.draw(SIZES), data.draw(SIZES))
    _check("max2d_col", _data(data.draw, shape, ties=True))


@EXAMPLES
@given(st.data())
def test_ceil_mode_average_counts_the_explicit_padding(data):
    shape = (data.draw(st.sampled_from([0, 1, 2])), 3, data.draw(SIZES), data.draw(SIZES))
    _check("avg2d_ceil_pad", _data(data.draw, shape))


@EXAMPLES
@given(st.data())
def test_1d_dilated_ceil_mode_average(data):
    _check("avg1d_dilated", _data(data.draw, (2, 1, data.draw(SIZES) + 1)))


@EXAMPLES
@given(st.data())
def test_same_upper_with_unit_strides_keeps_dims_symbolic(data):
    _check("max_same", _data(data.draw, (1, 2, data.draw(SIZES), data.draw(SIZES))))




@EXAMPLES
@given(st.data())
def test_same_lower_with_strides_pads_from_the_run_time_size(data):
    _check("avg_same_strided", _data(data.draw, (1, 2, data.draw(SIZES), data.draw(SIZES))))


def test_a_kernel_of_the_wrong_rank_is_refused():
    model = _model("MaxPool", ["n", "c", "h", "w"], [("y", F)], kernel_shape=[3])
    with pytest.raises(ConversionError, match="kernel_shape has 1 dims"):
        from_onnx(model)
