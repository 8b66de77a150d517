"""Every entry of the simplifier's rule tables, exercised: input -> expected output, and the rule fired.

Plus a property test: simplify keeps the value of random integer expressions under random bindings
(0, 1, negatives, primes; floor division and modulo by positive and negative divisors), checked
against a plain Python evaluator.
"""
import contextlib
import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nimble import te
from nimble.te.expr import (
    EQ, LE, LT, NE, Add, And, Cast, Div, FloatImm, FloorDiv, FloorMod, IntImm, Max, Min, Mul, Not, Or,
    Select, Sub, Var,
)
from nimble.te.simplify import BOUNDS, LOWER, RULES, bound, prove_nonneg, simplify

n, m, i, j = te.var("n"), te.var("m"), te.var("i"), te.var("j")
f = te.var("f", "float32")
T, F = IntImm(1, "bool"), IntImm(0, "bool")
FL = lambda v: FloatImm(v, "float32")  # noqa: E731


@contextlib.contextmanager
def traced(table):
    table.trace = []
    try:
        yield table.trace
    finally:
        table.trace = None


# rule name -> (input, ranges, expected)
SIMPLIFY_CASES = {
    "fold-float": (Add(FL(0.1), FL(0.2)), None, FL(float(np.float32(0.1) + np.float32(0.2)))),
    "x+0.0": (Add(f, FL(0.0)), None, f),
    "0.0+x": (Add(FL(0.0), f), None, f),
    "x-0.0": (Sub(f, FL(0.0)), None, f),
    "x*1.0": (Mul(f, FL(1.0)), None, f),
    "1.0*x": (Mul(FL(1.0), f), None, f),
    "x/1.0": (Div(f, FL(1.0)), None, f),
    "x//1": (FloorDiv(n, IntImm(1)), None, n),
    "c1//c2": (FloorDiv(IntImm(-7), IntImm(2)), None, IntImm(-4)),
    "x//k1//k2": (FloorDiv(FloorDiv(n, IntImm(4)), IntImm(2)), None, FloorDiv(n, IntImm(8))),
    "(k*q+r)//k": ((n * 8 + m) // 8, None, n + m // 8),
    "0//x": (FloorDiv(IntImm(0), n), None, IntImm(0)),
    "x//x": (FloorDiv(n + m, m + n), None, IntImm(1)),
    "x%1": (FloorMod(n, IntImm(1)), None, IntImm(0)),
    "(k*q+r)%k": ((n * 8 + m + 11) % 8, None, (m + 3) % 8),
    "c1%c2": (FloorMod(IntImm(7), IntImm(-2)), None, IntImm(-1)),
    "x%x": (FloorMod(n * m, m * n), None, IntImm(0)),
    "x%y->x": (i % n, {i: (0, n - 1), n: (1, None)}, i),
    "fold-min": (Min(IntImm(3), IntImm(-2)), None, IntImm(-2)),
    "fold-max": (Max(IntImm(3), IntImm(-2)), None, IntImm(3)),
    "min(x,x)": (Max(n * 2, n + n), None, n * 2),
    "min-proven": (te.min_(n + 1, n), None, n),
    "max-proven": (te.max_(n // 8 * 8, n), None, n),
    "fold-cmp": (LT(FL(1.5), FL(0.5)), None, F),
    "x<y": (n + 3 < m + 1, None, LT(n + 2, m)),
    "x==y": (te.eq(i, 8), {i: (0, 7)}, F),
    "c&&x": (And(T, n < m), None, n < m),
    "x&&c": (And(n < m, F), None, F),
    "c||x": (Or(T, n < m), None, T),
    "x||c": (Or(n < m, F), None, n < m),
    "!c": (Not(F), None, T),
    "select(c,x,y)": (Select(F, n, m), None, m),
    "select(_,x,x)": (Select(n < m, n + 1, 1 + n), None, n + 1),
    "cast-const": (Cast("int32", FL(2.7)), None, IntImm(2, "int32")),
}


def test_every_simplify_rule_has_a_case():
    assert sorted(SIMPLIFY_CASES) == sorted(RULES.names())


@pytest.mark.parametrize("name", list(SIMPLIFY_CASES))
def test_simplify_rule(name):
    expr, ranges, expected = SIMPLIFY_CASES[name]
    with traced(RULES) as fired:
        out = simplify(expr, ranges)
    assert name in fired, fired
    assert out == simplify(expected, ranges), f"{expr} -> {out}, expected {expected}"


def test_more_folding_and_the_cases_rules_leave_alone():
    assert simplify((n * 8 + 3) // 8) is n
    assert simplify((i * 8 + j) // 8, {j: (0, 7)}) is i
    assert simplify((i * 8 + j) % 8, {j: (0, 7)}) is j
    assert simplify(n <= n - 1) == F and simplify(n < n + 1) == T
    assert simplify(te.ne(n + 1, n)) == T
    assert simplify(Cast("float32", IntImm(3))) == FL(3.0)
    assert simplify(Cast("bool", IntImm(5))) == T
    inf_to_int = Cast("int64", FL(math.inf))
    assert simplify(inf_to_int) == inf_to_int  # no integer value: left alone
    assert simplify(FloorDiv(IntImm(0), IntImm(0))) == FloorDiv(IntImm(0), IntImm(0))  # undefined: kept
    assert simplify(FloorDiv(n, IntImm(-2))) == FloorDiv(n, IntImm(-2))
    assert simplify(i % n) == i % n  # i < n is not known without ranges
    fdiv = te.var("g", "float32") // FL(1.0)
    assert simplify(fdiv) == fdiv  # integer rules do not touch floats
    assert simplify(te.min_(f, f)) == te.min_(f, f)


# rule name -> (expression, ranges, expected (lo, hi))
BOUND_CASES = {
    "var": (i, {i: (2, 5)}, (2, 5)),
    "x//k": (i // 4, {i: (0, 15)}, (0, 3)),
    "x%k": (n % 8, None, (0, 7)),
    "x//y": (i // n, {i: (0, 10), n: (1, None)}, (0, 10)),
    "x%y": (i % n, {n: (1, 6)}, (0, 5)),
    "min": (te.min_(i, j), {i: (0, 3), j: (2, 9)}, (0, 3)),
    "max": (te.max_(i, j), {i: (0, 3), j: (2, 9)}, (2, 9)),
    "x*y": (i * j, {i: (-2, 3), j: (1, 4)}, (-8, 12)),
    "select": (te.select(n < m, i, j), {i: (0, 3), j: (2, 9)}, (0, 9)),
    "cast": (te.var("k32", "int32").astype("int64"), None, (0, math.inf)),
}


def test_every_bound_rule_has_a_case():
    assert sorted(BOUND_CASES) == sorted(BOUNDS.names())


@pytest.mark.parametrize("name", list(BOUND_CASES))
def test_bound_rule(name):
    expr, ranges, expected = BOUND_CASES[name]
    with traced(BOUNDS) as fired:
        assert bound(expr, ranges) == expected
    assert name in fired


def test_unknown_atoms_are_unbounded():
    assert bound(n % m, {m: (None, None)}) == (-math.inf, math.inf)
    assert bound(n // -2) == (-math.inf, math.inf)
    assert bound(te.var("neg"), {}) == (0, math.inf)


# rule name -> (expression proven >= 0, ranges)
LOWER_CASES = {
    "var": (n - i - 1, {i: (0, n - 1)}),
    "x//k": ((n + 7) // 8 * 8 - n, None),
    "x%k": ((n + 7) // 8 * 8 - n + n % 8, None),
    "min(x,_)": (n - te.min_(n, m), None),
    "max(x,_)": (te.max_(n, m) - n, None),
}


def test_every_lower_rule_has_a_case():
    assert sorted(LOWER_CASES) == sorted(LOWER.names())


@pytest.mark.parametrize("name", list(LOWER_CASES))
def test_lower_rule(name):
    expr, ranges = LOWER_CASES[name]
    with traced(LOWER) as fired:
        assert prove_nonneg(expr, ranges)
    assert name in fired


def test_prover_does_not_prove_false_things():
    assert not prove_nonneg(n // 8 * 8 - n + 1 - 1 - 1)
    assert not prove_nonneg(te.min_(n, m) - n)
    assert not prove_nonneg(n - i - 1, {i: (0, n)})


# --- property: the value is kept under any binding ----------------------------------------

def evaluate(e, env):
    """A plain Python evaluator (floor semantics), independent of the simplifier and codegen."""
    t = type(e)
    if t is IntImm:
        return e.value
    if t is Var:
        return env[e]
    if t is Select:
        return evaluate(e.true_value if evaluate(e.cond, env) else e.false_value, env)
    a, b = evaluate(e.a, env), evaluate(e.b, env)
    ops = {Add: lambda: a + b, Sub: lambda: a - b, Mul: lambda: a * b, FloorDiv: lambda: a // b,
           FloorMod: lambda: a % b, Min: lambda: min(a, b), Max: lambda: max(a, b), LT: lambda: int(a < b),
           LE: lambda: int(a <= b), EQ: lambda: int(a == b), NE: lambda: int(a != b)}
    return ops[t]()


VALUES = [0, 1, -1, 2, 3, -3, 7, -7, 8, 13, 31, 97, -97, 1000003]
leaf = st.one_of(st.sampled_from(["n", "m"]), st.sampled_from(VALUES))
OPS = ["+", "-", "*", "//", "%", "min", "max", "//v", "%v"]


def build(tree):
    if isinstance(tree, str):
        return {"n": n, "m": m}[tree]
    if isinstance(tree, int):
        return te.const(tree)
    op, a, b = tree
    a, b = build(a), build(b)
    if op in ("//v", "%v"):  # by an expression (maybe zero for some bindings: those are skipped)
        return FloorDiv(a, b) if op == "//v" else FloorMod(a, b)
    if op in ("//", "%"):  # by a non-zero constant, positive or negative
        c = b.value if isinstance(b, IntImm) and b.value else 4
        return FloorDiv(a, IntImm(c)) if op == "//" else FloorMod(a, IntImm(c))
    return {"+": Add, "-": Sub, "*": Mul, "min": Min, "max": Max}[op](a, b)


trees = st.recursive(leaf, lambda kids: st.tuples(st.sampled_from(OPS), kids, kids), max_leaves=8)


def ranges_for(data, values):
    """Per variable: unbounded, or a random interval around its value."""
    out = {}
    for v, x in values.items():
        if data.draw(st.booleans()):
            out[v] = (None, None)
        else:
            out[v] = (x - data.draw(st.integers(0, 20)), x + data.draw(st.integers(0, 20)))
    return out


@settings(max_examples=200, deadline=None)
@given(trees, st.sampled_from(VALUES), st.sampled_from(VALUES), st.sampled_from(["value", "lt", "le", "eq"]), st.data())
def test_simplify_keeps_the_value(tree, nv, mv, form, data):
    e = build(tree)
    if form != "value":
        e = {"lt": LT, "le": LE, "eq": EQ}[form](e, build(data.draw(trees)))
    env = {n: nv, m: mv}
    try:
        want = evaluate(e, env)
    except ZeroDivisionError:
        assume(False)
    ranges = ranges_for(data, env)
    s = simplify(e, ranges)
    assert evaluate(s, env) == want, f"{e} -> {s} under {env}, ranges {ranges}"
    assert simplify(s, ranges) == s, f"not a fixpoint: {e} -> {s} -> {simplify(s, ranges)}"


@settings(max_examples=200, deadline=None)
@given(trees)
def test_prover_is_sound(tree):
    e = build(tree)
    if prove_nonneg(e):  # index variables are >= 0 unless ranges say otherwise
        for nv, mv in itertools.product([0, 1, 2, 3, 7, 8, 9, 31, 64, 97], repeat=2):
            with contextlib.suppress(ZeroDivisionError):
                assert evaluate(e, {n: nv, m: mv}) >= 0, str(e)
