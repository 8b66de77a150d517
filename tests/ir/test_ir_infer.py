"""Type inference: Any propagation, operator relations, errors that point at the expression, recursion, ADTs."""
import numpy as np
import pytest

import nimble
import nimble.ir as ir
from nimble import ops as nb
from nimble.ir import Any, TensorType, prelude


def T(*shape, dtype="float32"):
    return TensorType(shape, dtype)


def module_of(params, body, ret_type=None):
    mod = ir.IRModule()
    mod.define("main", ir.Function(params, body, ret_type))
    return mod


def test_dense_with_any_rows_gives_any_rows():
    x, w = ir.var("x", shape=(Any, 768)), ir.var("w", shape=(3072, 768))
    assert ir.infer_type(nb.dense(x, w)) == T(Any, 3072)


def test_concatenate_along_dynamic_axis_gives_any():
    a, b = ir.var("a", shape=(Any, 4)), ir.var("b", shape=(3, 4))
    assert ir.infer_type(nb.concatenate([a, b], axis=0)) == T(Any, 4)


def test_concatenate_of_static_parts_adds_up():
    a, b = ir.var("a", shape=(2, 4)), ir.var("b", shape=(3, 4))
    assert ir.infer_type(nb.concatenate([a, b], axis=0)) == T(5, 4)


def test_concatenate_refines_other_axes_from_any():
    a, b = ir.var("a", shape=(2, Any)), ir.var("b", shape=(3, 4))
    assert ir.infer_type(nb.concatenate([a, b], axis=0)) == T(5, 4)


def test_arange_gives_any_length():
    start, stop, step = (ir.var(n, shape=(), dtype="int64") for n in ("start", "stop", "step"))
    assert ir.infer_type(nb.arange(start, stop, step, dtype="int64")) == T(Any, dtype="int64")


def test_nonzero_gives_any_count():
    x = ir.var("x", shape=(3, 5))
    assert ir.infer_type(nb.nonzero(x)) == T(2, Any, dtype="int64")


def test_runtime_shape_reshape_gives_any_dims():
    x, shape = ir.var("x", shape=(6, 4)), ir.var("shape", shape=(3,), dtype="int64")
    assert ir.infer_type(nb.reshape(x, shape)) == T(Any, Any, Any)


def test_static_reshape_of_any_rows_infers_minus_one_as_any():
    x = ir.var("x", shape=(Any, 768))
    assert ir.infer_type(nb.reshape(x, (-1, 12, 64))) == T(Any, 12, 64)


def test_broadcast_of_any_with_static_dim_takes_the_static_dim():
    a, b = ir.var("a", shape=(Any, 1)), ir.var("b", shape=(5,))
    assert ir.infer_type(nb.add(a, b)) == T(Any, 5)


def test_symbolic_dims_flow_through_ops():
    x = ir.var("x", shape=("n", 8))
    assert ir.infer_type(nb.relu(nb.add(x, x))) == T("n", 8)


def test_dense_mismatch_names_argument_and_dims():
    x, w = ir.var("x", shape=(Any, 512)), ir.var("w", shape=(768, 768))
    with pytest.raises(nimble.ShapeError, match="dense: x has 512 columns, weight expects 768"):
        ir.infer_type(nb.dense(x, w))


def test_error_shows_the_function_with_the_line_marked():
    x, w = ir.var("x", shape=(Any, 512)), ir.var("w", shape=(768, 768))
    b = ir.Builder()
    h = b.let("h", nb.relu(x))
    y = b.let("y", nb.dense(h, w))
    mod = module_of([x, w], b.ret(nb.tanh(y)))
    with pytest.raises(nimble.ShapeError) as info:
        ir.infer_types(mod)
    text = str(info.value)
    assert "in @main" in text
    marked = [line for line in text.splitlines() if line.startswith(">>")]
    assert marked == [">>   let %y = dense(%h, %w);"]


def test_dtype_mismatch_is_a_nimble_type_error_and_a_builtin_one():
    a, b = ir.var("a", shape=(3,)), ir.var("b", shape=(3,), dtype="int64")
    with pytest.raises(nimble.TypeError, match="add: lhs is float32, rhs is int64"):
        ir.infer_type(nb.add(a, b))
    with pytest.raises(TypeError):
        ir.infer_type(nb.add(a, b))


def test_broadcast_mismatch_names_both_shapes():
    a, b = ir.var("a", shape=(2, 3)), ir.var("b", shape=(4, 3))
    with pytest.raises(nimble.ShapeError, match=r"cannot broadcast lhs \(2, 3\) with rhs \(4, 3\)"):
        ir.infer_type(nb.multiply(a, b))


def test_concatenate_mismatch_on_other_axis_is_an_error():
    a, b = ir.var("a", shape=(Any, 4)), ir.var("b", shape=(3, 5))
    with pytest.raises(nimble.ShapeError, match="field 0 has dim 4 at axis 1, field 1 has 5"):
        ir.infer_type(nb.concatenate([a, b], axis=0))


def test_symbolic_dim_binds_once_per_call():
    mod = ir.IRModule()
    p, q = ir.var("p", shape=("n", 4)), ir.var("q", shape=("n", 4))
    f = mod.define("f", ir.Function([p, q], nb.add(p, q)))
    a, b = ir.var("a", shape=(3, 4)), ir.var("b", shape=(5, 4))
    mod.define("main", ir.Function([a, b], f(a, b)))
    with pytest.raises(nimble.ShapeError, match="symbolic dim n at axis 0 is already bound to 3, got 5"):
        ir.infer_types(mod)


def test_symbolic_dim_binding_gives_the_result_shape():
    mod = ir.IRModule()
    p = ir.var("p", shape=("n", 4))
    f = mod.define("f", ir.Function([p], nb.relu(p)))
    a = ir.var("a", shape=(3, 4))
    mod.define("main", ir.Function([a], f(a)))
    assert ir.infer_types(mod).function("main").ret_type == T(3, 4)


def test_if_branches_join_to_any():
    c = ir.var("c", shape=(), dtype="bool")
    a, b = ir.var("a", shape=(Any, 4)), ir.var("b", shape=(1, 4))
    assert ir.infer_type(ir.if_(c, a, b)) == T(Any, 4)


def test_if_with_static_mismatch_is_an_error():
    c = ir.var("c", shape=(), dtype="bool")
    a, b = ir.var("a", shape=(2, 4)), ir.var("b", shape=(3, 4))
    with pytest.raises(nimble.ShapeError, match="one branch has dim 2 at axis 0, the other 3"):
        ir.infer_type(ir.if_(c, a, b))


def test_if_condition_must_be_a_bool_scalar():
    c, a = ir.var("c", shape=(1,), dtype="bool"), ir.var("a", shape=(2,))
    with pytest.raises(nimble.TypeError, match="condition must be a scalar bool tensor"):
        ir.infer_type(ir.if_(c, a, a))


def test_recursive_loop_type_checks():
    mod = ir.IRModule()
    i, n = ir.var("i", shape=(), dtype="int64"), ir.var("n", shape=(), dtype="int64")
    acc = ir.var("acc", shape=(Any, 3))
    loop = ir.GlobalVar("loop")
    step = loop(nb.add(i, ir.const(1, "int64")), n, nb.concatenate([acc, nb.ones((1, 3))]))
    mod.define(loop, ir.Function([i, n, acc], ir.if_(nb.less(i, n), step, acc), T(Any, 3)))
    types = ir.infer_types(mod)
    assert types.function("loop").ret_type == T(Any, 3)


def test_recursive_function_without_result_annotation_is_inferred():
    mod = ir.IRModule()
    i = ir.var("i", shape=(), dtype="int64")
    count = ir.GlobalVar("count")
    body = ir.if_(nb.greater(i, ir.const(0, "int64")), count(nb.subtract(i, ir.const(1, "int64"))), i)
    mod.define(count, ir.Function([i], body))
    assert ir.infer_types(mod).function("count").ret_type == T(dtype="int64")


def test_map_over_a_list_type_checks():
    mod = prelude.add_prelude(ir.IRModule())
    xs = ir.var("xs", type=prelude.list_type(T(Any, 4)))
    e = ir.var("e", shape=(Any, 4))
    w = ir.var("w", shape=(8, 4))
    mod.define("main", ir.Function([xs, w], ir.GlobalVar("map")(ir.Function([e], nb.dense(e, w)), xs)))
    types = ir.infer_types(mod)
    assert types.function("main").ret_type == prelude.list_type(T(Any, 8))
    assert repr(types.function("map")) == "fn[a, b](fn(a) -> b, List[a]) -> List[b]"


def test_tree_fold_type_checks():
    mod = prelude.add_prelude(ir.IRModule())
    t = ir.var("t", type=prelude.tree_type(T(1, 4)))
    leaf_x = ir.var("x", shape=(1, 4))
    l, r = ir.var("l", shape=(1, 4)), ir.var("r", shape=(1, 4))
    fold = ir.GlobalVar("tree_fold")(ir.Function([leaf_x], nb.tanh(leaf_x)), ir.Function([l, r], nb.add(l, r)), t)
    mod.define("main", ir.Function([t], fold))
    assert ir.infer_types(mod).function("main").ret_type == T(1, 4)


def test_map_with_wrong_function_type_is_an_error():
    mod = prelude.add_prelude(ir.IRModule())
    xs = ir.var("xs", type=prelude.list_type(T(Any, 4)))
    e = ir.var("e", shape=(Any, 4), dtype="int64")
    mod.define("main", ir.Function([xs], ir.GlobalVar("map")(ir.Function([e], e), xs)))
    with pytest.raises(nimble.TypeError, match="expected dtype int64, got float32"):
        ir.infer_types(mod)


def test_match_binds_constructor_fields():
    mod = prelude.add_prelude(ir.IRModule())
    opt = ir.var("opt", type=ir.ADTType("Option", (T(2, 2),)))
    v = ir.var("v")
    body = ir.match(opt, [(ir.pctor(prelude.Some, v), nb.exp(v)), (ir.pctor(prelude.Nothing), nb.zeros((2, 2)))])
    mod.define("main", ir.Function([opt], body))
    assert ir.infer_types(mod).function("main").ret_type == T(2, 2)


def test_constructor_of_an_undefined_adt_is_an_error():
    x = ir.var("x", shape=(2,))
    with pytest.raises(nimble.TypeError, match="belongs to List, which the module does not define"):
        ir.infer_type(prelude.Cons(x, prelude.Nil()))


def test_let_annotation_widens_the_type():
    x = ir.var("x", shape=(3, 4))
    b = ir.Builder()
    y = b.let("y", nb.relu(x), type=T(Any, 4))
    expr = b.ret(nb.exp(y))
    assert ir.infer_type(expr) == T(Any, 4)


def test_module_types_give_every_subexpression_a_type():
    x, w = ir.var("x", shape=(Any, 4)), ir.var("w", shape=(6, 4))
    inner = nb.dense(x, w)
    mod = module_of([x, w], nb.relu(inner))
    types = ir.infer_types(mod)
    assert types[inner] == T(Any, 6)
    assert types[x] == T(Any, 4)


def test_tuple_get_item_and_split():
    x = ir.var("x", shape=(Any, 12))
    parts = nb.split(x, indices_or_sections=3, axis=1)
    assert ir.infer_type(ir.get(parts, 2)) == T(Any, 4)


def test_unannotated_free_variable_is_an_error():
    x = ir.var("x")
    with pytest.raises(nimble.TypeError, match="free variable %x has no type annotation"):
        ir.infer_type(nb.relu(x))


def test_global_call_with_wrong_arity_is_an_error():
    mod = ir.IRModule()
    p = ir.var("p", shape=(2,))
    f = mod.define("f", ir.Function([p], p))
    mod.define("main", ir.Function([p], f(p, p)))
    with pytest.raises(nimble.TypeError, match="@f takes 1 arguments, got 2"):
        ir.infer_types(mod)


def test_constant_types_come_from_the_array():
    assert ir.infer_type(ir.const(np.zeros((2, 3), np.int32))) == T(2, 3, dtype="int32")


def test_error_inside_a_closure_marks_the_line_in_the_enclosing_function():
    x = ir.var("x", shape=(Any, 4))
    y = ir.var("y", shape=(Any, 5))
    b = ir.Builder()
    f = b.let("f", ir.Function([y], nb.add(y, x)))
    mod = module_of([x], b.ret(f(nb.zeros((2, 5)))))
    with pytest.raises(nimble.ShapeError) as info:
        ir.infer_types(mod)
    lines = str(info.value).splitlines()
    assert lines[0] == "add: cannot broadcast lhs (?, 5) with rhs (?, 4): dim 5 vs 4 at axis 1"
    assert [line for line in lines if line.startswith(">>")] == [">>     add(%y, %x)"]


def test_error_in_a_recursive_call_names_the_callee_argument():
    mod = ir.IRModule()
    i, acc = ir.var("i", shape=(), dtype="int64"), ir.var("acc", shape=(Any, 3))
    loop = ir.GlobalVar("loop")
    step = loop(nb.add(i, ir.const(1, "int64")), nb.concatenate([acc, acc], axis=1))
    mod.define(loop, ir.Function([i, acc], ir.if_(nb.less(i, ir.const(3, "int64")), step, acc), T(Any, 3)))
    with pytest.raises(nimble.ShapeError, match=r"@loop argument %acc: expected dim 3 at axis 1, got 6\n  in @loop:"):
        ir.infer_types(mod)
