import pytest

import nimble
from nimble import te
from nimble.te.expr import Add, Cast, FloorDiv, IntImm


def test_python_operators_build_nodes_with_index_dtype():
    n = te.var("n")
    e = n * 8 + 1
    assert isinstance(e, Add)
    assert e.dtype == "int64"
    assert isinstance(n // 2, FloorDiv)


def test_vars_are_distinct_by_identity():
    a, b = te.var("n"), te.var("n")
    assert a is not b and a != b
    assert (a + 1) == (a + 1)
    assert (a + 1) != (b + 1)


def test_int_meets_float_constant_promotes_to_float32():
    x = te.var("x", "float32")
    e = x * 2
    assert e.dtype == "float32"
    assert te.cast("float64", x).dtype == "float64"
    assert isinstance(te.cast("float32", te.var("n")), Cast)


def test_true_division_of_ints_is_rejected_with_a_hint():
    with pytest.raises(nimble.TypeError, match="//"):
        te.var("n") / 2


def test_symbolic_comparison_has_no_truth_value():
    with pytest.raises(nimble.TypeError, match="truth value"):
        bool(te.var("n") < 3)


def test_math_functions_need_floats():
    with pytest.raises(nimble.TypeError, match="exp"):
        te.exp(te.var("n"))
    assert te.exp(te.var("x", "float32")).dtype == "float32"


def test_unknown_dtype_is_named():
    with pytest.raises(nimble.TypeError, match="float6_e2m3fn"):
        te.var("x", "float6_e2m3fn")


def test_const_folds_to_immediates():
    assert te.const(3) == IntImm(3)
    assert te.const(2.5).dtype == "float32"


def test_tensor_indexing_checks_rank():
    n = te.var("n")
    A = te.placeholder((n, 4), name="A")
    with pytest.raises(nimble.ShapeError, match="rank 2"):
        A[1]
    assert str(A[n - 1, 0]) == "A[(n - 1), 0]"


def test_compute_checks_arity_and_negative_dims():
    with pytest.raises(nimble.ShapeError):
        te.compute((3, 4), lambda i: i)
    with pytest.raises(nimble.ShapeError, match=">= 0"):
        te.placeholder((-1,))


def test_nested_reduction_is_rejected():
    A = te.placeholder((4, 4), name="A")
    k = te.reduce_axis(4, "k")
    with pytest.raises(nimble.TypeError, match="outermost"):
        te.compute((4,), lambda i: te.sum(A[i, k], axis=k) + 1.0)
