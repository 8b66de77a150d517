"""Every registered operator: its shape function and its type relation agree with the shape numpy really produces."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_cases import CASES

import nimble
from nimble.ir import Any, TensorType, TupleType
from nimble.ops import OpPattern, ShapeFuncKind, get_op, list_ops

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def flat_outputs(value) -> list:
    return list(value) if isinstance(value, tuple) else [value]


def type_of(arg, any_dims: bool = False):
    if isinstance(arg, tuple):
        return TupleType(tuple(type_of(a, any_dims) for a in arg))
    shape = (Any,) * arg.ndim if any_dims else arg.shape
    return TensorType(shape, arg.dtype.name)


def shape_func_inputs(opdef, args) -> list:
    out = []
    for i, arg in enumerate(args):
        if i in opdef.value_inputs:
            out.append(arg)
        elif isinstance(arg, tuple):
            out.append([np.array(a.shape, dtype=np.int64) for a in arg])
        else:
            out.append(np.array(arg.shape, dtype=np.int64))
    return out


def assert_fits(t: TensorType, actual: np.ndarray, exact: bool):
    assert t.dtype == actual.dtype.name, (t, actual.dtype)
    assert t.ndim == actual.ndim, (t, actual.shape)
    for dim, size in zip(t.shape, actual.shape):
        if exact:
            assert dim == size, (t, actual.shape)
        else:
            assert dim == Any or dim == size, (t, actual.shape)


def test_every_registered_operator_has_cases():
    assert sorted(CASES) == list_ops()


@pytest.mark.parametrize("name", list_ops())
@SETTINGS
@given(data=st.data())
def test_shape_function_matches_the_reference_output(name, data):
    opdef = get_op(name)
    case = data.draw(CASES[name])
    outputs = flat_outputs(opdef.evaluate(case.args, case.attrs))
    shapes = opdef.output_shapes(shape_func_inputs(opdef, case.args), case.attrs)
    assert len(shapes) == len(outputs)
    for shape, out in zip(shapes, outputs):
        assert shape.dtype == np.int64
        assert tuple(shape) == out.shape


@pytest.mark.parametrize("name", list_ops())
@SETTINGS
@given(data=st.data())
def test_type_relation_matches_the_reference_output(name, data):
    opdef = get_op(name)
    case = data.draw(CASES[name])
    outputs = flat_outputs(opdef.evaluate(case.args, case.attrs))
    out_type = opdef.infer([type_of(a) for a in case.args], case.attrs)
    out_types = list(out_type.fields) if isinstance(out_type, TupleType) else [out_type]
    exact = opdef.shape_kind is ShapeFuncKind.DATA_INDEPENDENT
    for t, out in zip(out_types, outputs, strict=True):
        assert_fits(t, out, exact)
    if case.any_ok and case.args:
        any_types = [type_of(case.args[0], any_dims=True)] + [type_of(a) for a in case.args[1:]]
        any_out = opdef.infer(any_types, case.attrs)
        for t, out in zip(list(any_out.fields) if isinstance(any_out, TupleType) else [any_out], outputs, strict=True):
            assert_fits(t, out, exact=False)


def test_every_operator_declares_pattern_kind_and_docs():
    for name in list_ops():
        opdef = get_op(name)
        assert isinstance(opdef.pattern, OpPattern)
        assert isinstance(opdef.shape_kind, ShapeFuncKind)
        assert opdef.doc
        if opdef.shape_kind is not ShapeFuncKind.DATA_INDEPENDENT:
            assert opdef.value_inputs, name
        assert (opdef.upper_bound is not None) == (opdef.shape_kind is ShapeFuncKind.UPPER_BOUND), name


def test_data_dependent_kinds():
    assert get_op("arange").shape_kind is ShapeFuncKind.DATA_DEPENDENT
    assert get_op("dyn.reshape").shape_kind is ShapeFuncKind.DATA_DEPENDENT
    assert get_op("dyn.reshape").value_inputs == (1,)
    assert get_op("dense").shape_kind is ShapeFuncKind.DATA_INDEPENDENT
    with pytest.raises(nimble.NimbleError, match="no upper-bound"):
        get_op("dense").output_bounds([np.array([2, 3]), np.array([4, 3])], {})


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.sampled_from([0, 1, 2, 3, 7, 13]), min_size=1, max_size=3), seed=st.integers(0, 999))
def test_nonzero_is_upper_bound_and_its_bound_holds_the_exact_shape(shape, seed):
    op = get_op("nonzero")
    assert op.shape_kind is ShapeFuncKind.UPPER_BOUND
    x = (np.random.default_rng(seed).random(shape) < 0.5).astype(np.float32)
    exact = op.output_shapes([x], {})[0]
    bound = op.output_bounds([np.array(x.shape, np.int64)], {})[0]
    np.testing.assert_array_equal(exact, np.array(np.nonzero(x)).shape)
    assert bound.tolist() == [x.ndim, x.size] and exact[0] == bound[0] and exact[1] <= bound[1]


def test_an_upper_bound_function_needs_the_upper_bound_kind():
    from nimble.ops.registry import register

    with pytest.raises(nimble.NimbleError, match="UPPER_BOUND"):
        register("test.bad_bound", args=("x",), type_rel=lambda x: x, shape_func=lambda x: [x],
                 reference=lambda x: x, pattern=OpPattern.OPAQUE, upper_bound=lambda x: [x])


def test_fusion_patterns_follow_tvm():
    assert get_op("add").pattern is OpPattern.BROADCAST
    assert get_op("relu").pattern is OpPattern.ELEMWISE
    assert get_op("reshape").pattern is OpPattern.INJECTIVE
    assert get_op("sum").pattern is OpPattern.COMM_REDUCE
    assert get_op("dense").pattern is OpPattern.OUT_ELEMWISE_FUSABLE
    assert get_op("softmax").pattern is OpPattern.OPAQUE


def test_builder_rejects_unknown_attributes_and_wrong_arity():
    from nimble import ops as nb
    from nimble.ir import var

    x = var("x", shape=(2, 3))
    with pytest.raises(nimble.TypeError, match=r"sum got unknown attributes \['axes'\]"):
        nb.sum(x, axes=1)
    with pytest.raises(nimble.TypeError, match=r"dense takes 2 arguments \('x', 'weight'\), got 1"):
        nb.dense(x)
    with pytest.raises(nimble.TypeError, match="max_pool2d: attribute 'pool_size' is required"):
        nb.max_pool2d(x)


@pytest.mark.parametrize(
    "name, arg_types, attrs, message",
    [
        ("matmul", [TensorType((2, 3)), TensorType((4, 5))], {}, "matmul: a has 3 columns, b has 4 rows"),
        ("batch_matmul", [TensorType((2, 3, 4)), TensorType((2, 5, 6))], {}, "batch_matmul: x has 4 columns, y expects 6"),
        ("reshape", [TensorType((2, 3))], {"newshape": (4, -1)}, r"cannot reshape 6 elements of shape \(2, 3\) to \(4, -1\)"),
        ("squeeze", [TensorType((2, 3))], {"axis": 0}, "axis 0 must have length 1, but has length 2"),
        ("transpose", [TensorType((2, 3))], {"axes": (0, 0)}, "not a permutation"),
        ("softmax", [TensorType((2, 3))], {"axis": 2}, "softmax: axis 2 is out of range for rank 2"),
        ("layer_norm", [TensorType((2, 8)), TensorType((4,)), TensorType((8,))], {}, "x's axis -1 has length 8, but gamma has length 4"),
        ("conv2d", [TensorType((1, 3, 8, 8)), TensorType((4, 2, 3, 3))], {}, "conv2d: data has 3 channels, weight expects 2"),
        ("take", [TensorType((4,)), TensorType((2,))], {}, "take: indices must have dtype in"),
        ("where", [TensorType((2,)), TensorType((2,)), TensorType((2,))], {}, "where: cond must have dtype in"),
        ("lstm_cell", [TensorType((3, 16)), TensorType((), "int64"), TensorType((2, 1, 4)), TensorType((20, 5))], {},
         "lstm_cell: weight has 20 rows, 4 \\* hidden is 16"),
        ("lstm_cell", [TensorType((3, 16)), TensorType((), "int64"), TensorType((2, 1, 4)), TensorType((16, 4))],
         {"gate_order": (0, 1, 1, 3)}, r"lstm_cell: gate_order must be a permutation of \(0, 1, 2, 3\)"),
        ("gru_cell", [TensorType((3, 12)), TensorType((), "int64"), TensorType((1, 1, 4)), TensorType((12, 4)),
                      TensorType((5,))], {}, "gru_cell: bias_n has 5 elements, the hidden size is 4"),
        ("gru_cell", [TensorType((3, 12)), TensorType((), "int64"), TensorType((2, 1, 4)), TensorType((12, 4)),
                      TensorType((4,))], {}, r"gru_cell: state must have 1 row \(h\)"),
    ],
)
def test_type_relation_errors_name_argument_expected_and_actual(name, arg_types, attrs, message):
    with pytest.raises((nimble.ShapeError, nimble.TypeError), match=message):
        get_op(name).infer(arg_types, attrs)
