"""Nodes, unification, visitor/mutator, structural equality and hashing, the printer."""
import numpy as np
import pytest

import nimble
import nimble.ir as ir
from nimble import ops as nb
from nimble.ir import Any, SymDim, TensorType, prelude
from nimble.ir.unify import Unifier


def T(*shape, dtype="float32"):
    return TensorType(shape, dtype)


# ---- types and unification -----------------------------------------------------------------------------------
def test_tensor_type_normalises_dims():
    t = TensorType((None, "n", np.int64(3)), "float32")
    assert t.shape == (Any, SymDim("n"), 3)
    assert repr(t) == "Tensor[(?, n, 3), float32]"


def test_negative_dim_is_a_shape_error():
    with pytest.raises(nimble.ShapeError, match="dimension must be >= 0, got -2"):
        T(-2, 3)


def test_unknown_dtype_is_a_type_error():
    with pytest.raises(nimble.TypeError, match="dtype must be one of"):
        TensorType((2,), "complex64")


def test_unify_any_meets_static_and_yields_it():
    assert Unifier().unify(T(Any, 4), T(3, 4)) == T(3, 4)


def test_unify_static_mismatch_names_the_axis():
    with pytest.raises(nimble.ShapeError, match="expected dim 4 at axis 1, got 5"):
        Unifier().unify(T(3, 4), T(3, 5), "x")


def test_unify_binds_inference_variables():
    u = Unifier()
    var = ir.IncompleteType()
    u.unify(ir.TupleType((var, T(2))), ir.TupleType((T(Any, 3), T(2))))
    assert u.resolve(var) == T(Any, 3)


def test_unify_rejects_rank_mismatch():
    with pytest.raises(nimble.ShapeError, match="expected rank 2"):
        Unifier().unify(T(3, 4), T(3, 4, 1))


def test_join_turns_differing_dims_into_any():
    assert Unifier().join(T("n", 4), T(3, 4)) == T(Any, 4)


# ---- visitor / mutator ---------------------------------------------------------------------------------------
def _long_let_chain(length: int):
    x = ir.var("x", shape=(2,))
    b = ir.Builder()
    cur = x
    for i in range(length):
        cur = b.let(f"v{i}", nb.add(cur, cur))
    return x, b.ret(cur)


def test_visitor_walks_a_let_chain_deeper_than_the_recursion_limit():
    x, body = _long_let_chain(5000)
    assert ir.free_vars(body) == [x]


def test_free_vars_of_a_closure_exclude_its_params():
    x, y = ir.var("x", shape=(2,)), ir.var("y", shape=(2,))
    fn = ir.Function([y], nb.add(x, y))
    assert ir.free_vars(fn) == [x]


def test_mutator_reuses_unchanged_nodes():
    x = ir.var("x", shape=(2,))
    expr = nb.relu(nb.exp(x))
    assert ir.ExprMutator().visit(expr) is expr


def test_substitute_vars_replaces_free_occurrences():
    x, y = ir.var("x", shape=(2,)), ir.var("y", shape=(2,))
    out = ir.substitute_vars(nb.add(x, x), {x: y})
    assert out.args[0] is y and out.args[1] is y


def test_mutator_rebuilds_long_let_chains():
    class ExpToTanh(ir.ExprMutator):
        def visit_call(self, call):
            new = super().visit_call(call)
            return nb.tanh(*new.args) if new.op.name == "exp" else new

    x = ir.var("x", shape=(2,))
    b = ir.Builder()
    cur = x
    for i in range(3000):
        cur = b.let(f"v{i}", nb.exp(cur))
    out = ExpToTanh().visit(b.ret(cur))
    assert "exp(" not in ir.print_expr(out) and "tanh(%v2998)" in ir.print_expr(out)


# ---- structural equality and hash ----------------------------------------------------------------------------
def _function(name_x: str, scale: float):
    x = ir.var(name_x, shape=(Any, 4))
    b = ir.Builder()
    h = b.let("h", nb.multiply(x, ir.const(scale)))
    return ir.Function([x], b.ret(nb.relu(h)))


def test_structurally_equal_up_to_variable_names():
    a, b = _function("x", 2.0), _function("input", 2.0)
    assert ir.structural_equal(a, b)
    assert ir.structural_hash(a) == ir.structural_hash(b)


def test_different_constants_are_not_structurally_equal():
    a, b = _function("x", 2.0), _function("x", 3.0)
    assert not ir.structural_equal(a, b)
    assert ir.structural_hash(a) != ir.structural_hash(b)


def test_variable_correspondence_must_be_one_to_one():
    x, y = ir.var("x", shape=(2,)), ir.var("y", shape=(2,))
    same = ir.Function([x, y], nb.add(x, x))
    other = ir.Function([x, y], nb.add(x, y))
    assert not ir.structural_equal(same, other)


def test_structural_equality_of_long_chains():
    _, a = _long_let_chain(4000)
    _, b = _long_let_chain(4000)
    assert ir.structural_equal(a, b) and ir.structural_hash(a) == ir.structural_hash(b)


def test_attrs_take_part_in_equality():
    x = ir.var("x", shape=(2, 3))
    assert not ir.structural_equal(nb.sum(x, axis=0), nb.sum(x, axis=1))
    assert ir.structural_equal(nb.sum(x, axis=0), nb.sum(x, axis=0))


# ---- printer -------------------------------------------------------------------------------------------------
def test_printer_shows_lets_types_and_attrs():
    x, w = ir.var("x", shape=(Any, 768)), ir.const(np.zeros((3072, 768), np.float32), name="w1")
    b = ir.Builder()
    h = b.let("h", nb.dense(x, w))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], b.ret(nb.sum(h, axis=1)), ret_type=T(Any)))
    assert ir.print_module(mod) == (
        "def @main(%x: Tensor[(?, 768), float32]) -> Tensor[(?,), float32] {\n"
        "  let %h = dense(%x, meta.w1);\n"
        "  sum(%h, axis=1)\n"
        "}"
    )


def test_printer_names_shared_subexpressions_once():
    x = ir.var("x", shape=(2,))
    shared = nb.exp(x)
    text = ir.print_expr(nb.add(shared, shared))
    assert text == "%0 = exp(%x);\nadd(%0, %0)"


def test_printer_disambiguates_equal_names():
    a, b = ir.var("x", shape=(2,)), ir.var("x", shape=(2,))
    assert ir.print_expr(nb.add(a, b)) == "add(%x, %x_1)"


def test_printer_shows_adt_definitions_and_match():
    mod = prelude.add_prelude(ir.IRModule())
    text = ir.print_module(mod)
    assert "type List[a] {\n  Cons(a, List[a]),\n  Nil,\n}" in text
    assert "Cons(%head, %tail) => {" in text


def test_printer_with_types_shows_inferred_types_of_let_variables():
    x = ir.var("x", shape=(Any, 4))
    b = ir.Builder()
    h = b.let("h", nb.concatenate([x, x], axis=1))
    b.let("unused", nb.sum(h, axis=0))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], b.ret(nb.relu(h))))
    text = ir.print_module(mod, ir.infer_types(mod))
    assert "let %h: Tensor[(?, 8), float32] = concatenate((%x, %x), axis=1);" in text
    assert "let %unused: Tensor[(8,), float32] = sum(%h, axis=0);" in text


def test_modules_compare_function_by_function():
    def module(scale):
        mod = ir.IRModule()
        mod.define("main", _function("x", scale))
        return mod

    assert ir.structural_equal(module(2.0), module(2.0))
    assert ir.structural_hash(module(2.0)) == ir.structural_hash(module(2.0))
    assert not ir.structural_equal(module(2.0), module(3.0))
