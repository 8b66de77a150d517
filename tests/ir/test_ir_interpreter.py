"""The reference interpreter: operators, control flow, closures, recursion, ADTs, argument checks."""
import numpy as np
import pytest

import nimble
import nimble.ir as ir
from nimble import ops as nb
from nimble.ir import Any, TensorType, prelude


def T(*shape, dtype="float32"):
    return TensorType(shape, dtype)


def test_evaluates_a_dense_layer():
    rng = np.random.default_rng(0)
    x, w = ir.var("x", shape=(Any, 4)), ir.var("w", shape=(3, 4))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x, w], nb.relu(nb.dense(x, w))))
    xv, wv = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(ir.evaluate(mod, xv, wv), np.maximum(xv @ wv.T, 0), rtol=1e-6)


def _counting_loop_module():
    mod = ir.IRModule()
    i, n = ir.var("i", shape=(), dtype="int64"), ir.var("n", shape=(), dtype="int64")
    acc = ir.var("acc", shape=(Any, 2))
    loop = ir.GlobalVar("loop")
    row = nb.expand_dims(nb.full(nb.cast(i, dtype="float32"), (2,)), axis=0)
    step = loop(nb.add(i, ir.const(1, "int64")), n, nb.concatenate([acc, row]))
    mod.define(loop, ir.Function([i, n, acc], ir.if_(nb.less(i, n), step, acc), T(Any, 2)))
    x = ir.var("x", shape=(Any, 2))
    n_rows = nb.take(nb.shape_of(x), ir.const(0, "int64"), axis=0)
    mod.define("main", ir.Function([x], loop(ir.const(0, "int64"), n_rows, nb.zeros((0, 2)))))
    return mod


def test_recursion_over_a_long_sequence_does_not_hit_the_recursion_limit():
    mod = _counting_loop_module()
    ir.infer_types(mod)
    out = ir.evaluate(mod, np.zeros((1500, 2), np.float32))
    assert out.shape == (1500, 2)
    np.testing.assert_array_equal(out[:, 0], np.arange(1500, dtype=np.float32))


def test_closure_captures_its_free_variables():
    x, y = ir.var("x", shape=(2,)), ir.var("y", shape=(2,))
    b = ir.Builder()
    fv = b.let("f", ir.Function([y], nb.multiply(x, y)))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], b.ret(fv(ir.const(np.array([3.0, 4.0], np.float32))))))
    np.testing.assert_array_equal(ir.evaluate(mod, np.array([2.0, 5.0], np.float32)), [6.0, 20.0])


def test_map_and_foldl_over_a_list():
    mod = prelude.add_prelude(ir.IRModule())
    xs = ir.var("xs", type=prelude.list_type(T(2)))
    e = ir.var("e", shape=(2,))
    acc, item = ir.var("acc", shape=(2,)), ir.var("item", shape=(2,))
    doubled = ir.GlobalVar("map")(ir.Function([e], nb.add(e, e)), xs)
    total = ir.GlobalVar("foldl")(ir.Function([acc, item], nb.add(acc, item)), nb.zeros((2,)), doubled)
    mod.define("main", ir.Function([xs], total))
    ir.infer_types(mod)
    values = [np.array([1.0, 2.0], np.float32), np.array([3.0, 4.0], np.float32), np.array([5.0, 6.0], np.float32)]
    np.testing.assert_array_equal(ir.evaluate(mod, prelude.from_python_list(values)), [18.0, 24.0])


def test_tree_fold_sums_the_leaves():
    mod = prelude.add_prelude(ir.IRModule())
    t = ir.var("t", type=prelude.tree_type(T(3)))
    leaf, l, r = ir.var("leaf", shape=(3,)), ir.var("l", shape=(3,)), ir.var("r", shape=(3,))
    fold = ir.GlobalVar("tree_fold")(ir.Function([leaf], leaf), ir.Function([l, r], nb.add(l, r)), t)
    mod.define("main", ir.Function([t], fold))
    ir.infer_types(mod)
    one = np.ones(3, np.float32)
    Leaf, Node = prelude.Leaf, prelude.Node
    tree = ir.ConstructorValue(Node, (ir.ConstructorValue(Leaf, (one,)), ir.ConstructorValue(
        Node, (ir.ConstructorValue(Leaf, (2 * one,)), ir.ConstructorValue(Leaf, (3 * one,))))))
    np.testing.assert_array_equal(ir.evaluate(mod, tree), 6 * one)


def test_match_picks_the_first_matching_clause():
    mod = prelude.add_prelude(ir.IRModule())
    opt = ir.var("opt", type=ir.ADTType("Option", (T(2),)))
    v = ir.var("v")
    body = ir.match(opt, [(ir.pctor(prelude.Some, v), v), ("_", nb.ones((2,)))])
    mod.define("main", ir.Function([opt], body))
    some = ir.ConstructorValue(prelude.Some, (np.array([7.0, 8.0], np.float32),))
    np.testing.assert_array_equal(ir.evaluate(mod, some), [7.0, 8.0])
    np.testing.assert_array_equal(ir.evaluate(mod, ir.ConstructorValue(prelude.Nothing)), [1.0, 1.0])


def test_tuples_and_split():
    x = ir.var("x", shape=(Any, 6))
    parts = nb.split(x, indices_or_sections=(2,), axis=1)
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], ir.tuple_(ir.get(parts, 1), ir.get(parts, 0))))
    xv = np.arange(12, dtype=np.float32).reshape(2, 6)
    right, left = ir.evaluate(mod, xv)
    np.testing.assert_array_equal(left, xv[:, :2])
    np.testing.assert_array_equal(right, xv[:, 2:])


def test_argument_dtype_is_checked():
    x = ir.var("x", shape=(2,))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], x))
    with pytest.raises(nimble.TypeError, match="@main argument %x: expected dtype float32, got float64"):
        ir.evaluate(mod, np.zeros(2))


def test_symbolic_dims_of_arguments_must_agree():
    a, b = ir.var("a", shape=("n",)), ir.var("b", shape=("n",))
    mod = ir.IRModule()
    mod.define("main", ir.Function([a, b], nb.add(a, b)))
    with pytest.raises(nimble.ShapeError, match="symbolic dim n is 3, but axis 0 is 4"):
        ir.evaluate(mod, np.zeros(3, np.float32), np.zeros(4, np.float32))


def test_runtime_shape_reshape_and_arange():
    x = ir.var("x", shape=(Any,))
    n = nb.take(nb.shape_of(x), ir.const(0, "int64"), axis=0)
    idx = nb.arange(ir.const(0, "int64"), n, ir.const(1, "int64"), dtype="float32")
    shape = nb.concatenate([nb.reshape(n, (1,)), ir.const(np.array([1], np.int64))])
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], nb.reshape(nb.add(x, idx), shape)))
    out = ir.evaluate(mod, np.ones(4, np.float32))
    np.testing.assert_array_equal(out, [[1.0], [2.0], [3.0], [4.0]])
    assert ir.infer_types(mod).function("main").ret_type == T(Any, Any)


def test_constructor_passed_as_a_function_value():
    mod = prelude.add_prelude(ir.IRModule())
    xs = ir.var("xs", type=prelude.list_type(T(2)))
    mod.define("main", ir.Function([xs], ir.GlobalVar("map")(prelude.Some, xs)))
    assert ir.infer_types(mod).function("main").ret_type == prelude.list_type(ir.ADTType("Option", (T(2),)))
    out = prelude.to_python_list(ir.evaluate(mod, prelude.from_python_list([np.ones(2, np.float32)])))
    assert out[0].constructor == prelude.Some
    np.testing.assert_array_equal(out[0].fields[0], [1.0, 1.0])


def test_check_types_catches_a_result_its_type_relation_does_not_describe():
    from nimble.ir.interpreter import _check_op_result
    from nimble.ops import get_op

    x = np.ones((2, 3), np.float32)
    _check_op_result(get_op("relu"), [x], {}, x)
    with pytest.raises(nimble.ShapeError, match="type relation and reference of relu disagree"):
        _check_op_result(get_op("relu"), [x], {}, np.ones((3, 2), np.float32))


def test_check_types_on_a_recursive_program():
    mod = _counting_loop_module()
    out = ir.evaluate(mod, np.zeros((5, 2), np.float32), check_types=True)
    assert out.shape == (5, 2)
