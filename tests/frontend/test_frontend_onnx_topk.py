"""ONNX TopK with symbolic dims and k a run-time input (largest / smallest, ties), compiled once per model and
compared with ONNX Runtime and a numpy reference at shapes drawn by hypothesis (0, 1, primes)."""
import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

import nimble  # noqa: E402
from nimble import ir  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402

F, I64 = TensorProto.FLOAT, TensorProto.INT64
EXAMPLES = settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
DIMS = st.sampled_from([0, 1, 2, 3, 5, 7, 13])


CONFIGS = ((-1, 1), (1, 0))  # (axis, largest) of the model's TopK nodes, each with its own k


def _model(configs=CONFIGS, k_const=None):
    inputs = [helper.make_tensor_value_info("x", F, ["a", "b", "c"])]
    nodes, outputs = [], []
    for n, (axis, largest) in enumerate(configs):
        if k_const is None:
            inputs.append(helper.make_tensor_value_info(f"k{n}", I64, [1]))
        else:
            nodes.append(helper.make_node("Constant", [], [f"k{n}"],
                                          value=helper.make_tensor("kv", I64, [1], [k_const])))
        nodes.append(helper.make_node("TopK", ["x", f"k{n}"], [f"v{n}", f"i{n}"], axis=axis, largest=largest))
        outputs += [helper.make_tensor_value_info(f"v{n}", F, None), helper.make_tensor_value_info(f"i{n}", I64, None)]
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@functools.cache
def _compiled():
    model = _model()
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(model)))
    return vm, ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _numpy_topk(x, k, axis, largest):
    """A stable sort (ties keep index order): descending for largest."""
    order = np.argsort(-x if largest else x, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    return np.take_along_axis(x, idx, axis=axis), idx


@EXAMPLES
@given(st.data())
def test_topk_with_run_time_k_matches_onnxruntime_and_numpy(data):
    shape = tuple(data.draw(DIMS) for _ in range(3))
    ks = [np.array([data.draw(st.integers(0, shape[axis]))], np.int64) for axis, _ in CONFIGS]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.integers(-3, 4, shape).astype(np.float32)  # ties
    vm, sess = _compiled()
    got = [np.asarray(g) for g in vm.run(x, *ks)]
    want = [w for (axis, largest), k in zip(CONFIGS, ks) for w in _numpy_topk(x, int(k[0]), axis, largest)]
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
    if x.size:  # ONNX Runtime's TopK
        feeds = {"x": x, **{f"k{n}": k for n, k in enumerate(ks)}}
        for g, w in zip(got, sess.run(None, feeds), strict=True):
            np.testing.assert_array_equal(g, w)


def test_constant_k_gives_a_static_dim():
    mod = from_onnx(_model(((1, 1),), k_const=2))
    ret = ir.infer_types(mod).function("main").ret_type
    assert [f.shape[1] for f in ret.fields] == [2, 2]
    vm = nimble.VirtualMachine(nimble.compile(mod))
    x = np.arange(12, dtype=np.float32).reshape(1, 4, 3)
    v, i = vm.run(x)
    np.testing.assert_array_equal(i, [[[3, 3, 3], [2, 2, 2]]])
    np.testing.assert_array_equal(v, x[:, [3, 2], :])


def test_k_larger_than_the_axis_or_negative_raises_naming_k():
    vm, _ = _compiled()
    k = np.array([1], np.int64)
    with pytest.raises(nimble.OutOfRangeError, match=r"topk: k .* exceeds the length of the axis"):
        vm.run(np.zeros((2, 2, 3), np.float32), np.array([4], np.int64), k)
    with pytest.raises(nimble.ShapeError, match="negative"):
        vm.run(np.zeros((2, 2, 3), np.float32), np.array([-1], np.int64), k)


ORT_DTYPES = ("float16", "float32", "float64", "int8", "uint8", "int16", "int32", "int64")  # ONNX Runtime's CPU TopK


@functools.cache
def _one_node(dtype: str, largest: int):
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    node = helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=1, largest=largest)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", elem, ["a", "n"]),
                                            helper.make_tensor_value_info("k", I64, [1])],
                              [helper.make_tensor_value_info("v", elem, None), helper.make_tensor_value_info("i", I64, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return (nimble.VirtualMachine(nimble.compile(from_onnx(model))),
            ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"]))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_every_dtype_with_nan_negative_zero_and_long_rows_matches_onnxruntime(data):
    dtype = data.draw(st.sampled_from(ORT_DTYPES), label="dtype")
    largest = data.draw(st.sampled_from([0, 1]), label="largest")
    rows = data.draw(st.sampled_from([1, 2, 3]), label="rows")
    n = data.draw(st.sampled_from([1, 2, 7, 31, 1000, 8192, 100003]), label="n")
    k = data.draw(st.sampled_from(sorted({0, 1, 10 if n >= 10 else n, n // 2, n - 1, n})), label="k")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    if np.dtype(dtype).kind == "f":
        x = rng.choice(np.array([-1.5, -0.0, 0.0, 0.25, 3, np.inf, -np.inf, np.nan], dtype), (rows, n))
        x[:, : n // 2] = rng.standard_normal((rows, n // 2)).astype(dtype)  # distinct values beside the ties
    else:
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max, (rows, n), dtype=dtype, endpoint=True)
        x[:, ::3] = x[:, :1]  # ties
    vm, sess = _one_node(dtype, largest)
    kt = np.array([k], np.int64)
    want_v, want_i = sess.run(None, {"x": x, "k": kt})
    got_v, got_i = (np.asarray(g) for g in vm.run(x, kt))
    np.testing.assert_array_equal(got_i, want_i)
    assert got_v.dtype == want_v.dtype and got_v.tobytes() == want_v.tobytes()  # NaN and -0.0 bit for bit


@pytest.mark.parametrize("backend", ["native", "python"])
def test_k_is_read_by_the_shape_expression_on_both_vms(backend):
    """The outputs' k comes from k's value (``["value", 1]``); a k that is not one element is refused."""
    node = helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=0, largest=0)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", F, ["n"]),
                                            helper.make_tensor_value_info("k", I64, ["m"])],
                              [helper.make_tensor_value_info("v", F, None), helper.make_tensor_value_info("i", I64, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(model)), backend=backend)
    x = np.array([3, 1, np.nan, 1, -0.0, 0.0], np.float32)
    for k in range(7):
        v, i = (np.asarray(a) for a in vm.run(x, np.array([k], np.int64)))
        np.testing.assert_array_equal(i, [4, 5, 1, 3, 0, 2][:k])
        assert v.tobytes() == x[[4, 5, 1, 3, 0, 2][:k]].tobytes()
    with pytest.raises(nimble.NimbleError, match="one int32 / int64 value"):
        vm.run(x, np.array([1, 2], np.int64))


def test_a_saved_and_loaded_model_runs_topk(tmp_path):
    from nimble.vm.executable import Executable

    model = _model()
    exe = nimble.compile(from_onnx(model))
    exe.save(tmp_path / "topk.nimble")
    vm = nimble.VirtualMachine(Executable.load(tmp_path / "topk.nimble"))
    x = np.random.default_rng(3).standard_normal((2, 9, 4)).astype(np.float32)
    ks = [np.array([3], np.int64), np.array([2], np.int64)]
    got = [np.asarray(g) for g in vm.run(x, *ks)]
    want = [w for (axis, largest), k in zip(CONFIGS, ks) for w in _numpy_topk(x, int(k[0]), axis, largest)]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
