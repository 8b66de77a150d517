"""ONNX Floor, Ceil and Round through from_onnx -> compile -> both VMs (a run-time length) against numpy, bit for
bit: NaN, infinities, -0.0 (and the -0.0 that ceil(-0.5) gives), magnitudes past 2**63 and past float64's 2**52
where every value is already an integer, halfway points; float16, float32 and float64; hypothesis floats with NaN
and infinity allowed."""
import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402

EXAMPLES = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
DTYPES = {"float16": TensorProto.FLOAT16, "float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}
NUMPY = {"Floor": np.floor, "Ceil": np.ceil, "Round": np.rint}
SPECIAL = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, -0.5, 0.25, -0.75, 1.5, 2.5, -2.5, 1e-30, -1e-30,
           2.0**23 + 0.5, -(2.0**23) - 0.5, 2.0**52 + 0.5, -(2.0**52) - 0.5, 2.0**52 - 0.5, 2.0**53 + 2,
           2.0**63, -(2.0**63), 2.0**63 + 2**11, 2.0**64, -(2.0**64), 1e19, -1e19, 3e38, -3e38, 1e300, -1e300,
           65504.0, -65504.0, 1024.5, 2049.0, 5e-324, -5e-324]


def _model(dtype: str):
    elem = DTYPES[dtype]
    nodes = [helper.make_node(op, ["x"], [op.lower()]) for op in NUMPY]
    graph = helper.make_graph(nodes, "rounding", [helper.make_tensor_value_info("x", elem, ["n"])],
                              [helper.make_tensor_value_info(op.lower(), elem, ["n"]) for op in NUMPY])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@functools.cache
def _executable(dtype: str):
    return nimble.compile(from_onnx(_model(dtype)))


def _check(x: np.ndarray, backend: str = "native"):
    outs = nimble.VirtualMachine(_executable(x.dtype.name), backend=backend).run(x)
    for (op, ref), got in zip(NUMPY.items(), outs):
        got, want = np.asarray(got), ref(x)
        assert got.dtype == x.dtype and got.shape == x.shape, op
        # bitwise equality compares NaN with NaN and -0.0 with 0.0 as they must (the NaN's sign aside)
        nan = np.isnan(want)
        np.testing.assert_array_equal(np.isnan(got), nan, err_msg=op)
        np.testing.assert_array_equal(got[~nan].view(f"u{x.itemsize}"), want[~nan].view(f"u{x.itemsize}"),
                                      err_msg=f"{op} of {x[~nan]}")


@pytest.mark.parametrize("backend", ["native", "python"])
@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_floor_ceil_round_of_special_values_match_numpy_bit_for_bit(dtype, backend):
    with np.errstate(over="ignore"):
        x = np.array(SPECIAL, np.float64).astype(dtype)
    _check(x, backend)


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@EXAMPLES
@given(data=st.data())
def test_floor_ceil_round_of_any_float_match_numpy(dtype, data):
    n = data.draw(st.sampled_from([0, 1, 2, 3, 7, 13, 31, 257]))
    elements = st.floats(allow_nan=True, allow_infinity=True, width=np.dtype(dtype).itemsize * 8)
    _check(data.draw(hnp.arrays(dtype, n, elements=elements)))


def test_floor_ceil_of_huge_float32_are_not_clipped_to_int64():
    x = np.array([2.0**63, 2.0**64, 1e20, -1e20, 3.4e38], np.float32)
    floor, ceil, _ = nimble.VirtualMachine(_executable("float32")).run(x)
    np.testing.assert_array_equal(floor, x)
    np.testing.assert_array_equal(ceil, x)
