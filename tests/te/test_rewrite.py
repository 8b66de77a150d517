"""The pattern language of te/rewrite.py."""
import pytest

from nimble import te
from nimble.te.expr import Add, FloatImm, FloorDiv, IntImm, Max, Min, Mul, Select, Var
from nimble.te.rewrite import Any, Float, Int, Node, Rules, lit

n, m = te.var("n"), te.var("m")
X, Y = Any("x"), Any("y")


def test_operators_build_node_patterns_and_bind_values():
    b = (X * Int("c") + 1).bind(n * 8 + 1)
    assert b == {"x": n, "c": 8}
    assert (X * Int("c") + 1).bind(n * 8 + 2) is None  # the literal 1 matches the constant 1 only
    assert (X + 0.0).bind(te.var("f", "float32") + 0.0) is not None
    assert (X + 0.0).bind(n + 0) is None  # an int 0 is not the float 0.0
    assert Float("f").bind(FloatImm(2.5)) == {"f": 2.5}


def test_a_name_used_twice_matches_equal_nodes_only():
    both = Node((Min, Max), X, X)
    assert both.bind(te.min_(n + 1, n + 1)) == {"x": n + 1}
    assert both.bind(te.max_(n, m)) is None
    assert (Int("c") + Int("c")).bind(IntImm(3) + IntImm(3)) == {"c": 3}
    assert (Int("c") + Int("c")).bind(IntImm(3) + IntImm(4)) is None


def test_types_are_exact_and_predicates_filter():
    assert (X // Int("k", where=lambda v: v > 0)).bind(n // 4) == {"x": n, "k": 4}
    assert (X // Int("k", where=lambda v: v > 0)).bind(n // -4) is None
    assert Node(Var).bind(n) == {}
    assert Node(Var).bind(IntImm(1)) is None
    assert Node(Mul, X, Y, where=lambda e: e.dtype == "int32").bind(n * m) is None
    assert Node(Select, Any(), X, X, name="s").bind(te.select(n < m, n, n))["x"] is n
    assert Any("x", where=lambda e: isinstance(e, Var)).bind(n + 1) is None


def test_rules_fire_in_order_and_skip_none_results():
    seen = []
    rules = Rules([
        ("never", X // Y, lambda e, x, y: None),
        ("div", X // Int("k"), lambda e, x, k: ("div", k)),
        ("mul", X * Y, lambda e, x, y: "mul"),
    ])
    rules.trace = seen
    assert rules.rewrite(n // 3) == ("div", 3)
    assert rules.rewrite(n * m) == "mul"
    assert rules.rewrite(n + m) is None
    assert rules.rewrite(n // m) is None
    assert seen == ["div", "mul"]
    assert rules.names() == ["never", "div", "mul"]


def test_bad_patterns_are_refused():
    with pytest.raises(TypeError, match="root of a pattern"):
        Rules([("bad", X, lambda e: e)])
    with pytest.raises(TypeError, match="children do not fit"):
        Node(Add, X)
    with pytest.raises(TypeError, match="children do not fit"):
        Node((Add, Select), X, Y)
    with pytest.raises(TypeError, match="expected a pattern"):
        lit("n")
    with pytest.raises(TypeError, match="expected a pattern"):
        lit(True)
    with pytest.raises(TypeError, match="truth value"):
        bool(X < Y)
    assert isinstance(X // 2, Node) and (X // 2).types == {FloorDiv}
