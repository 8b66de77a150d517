"""The arithmetic simplifier and prover for index expressions: rule tables and their driver.

Integer ``+ - *`` are brought to a canonical linear form ``c0 + sum(ci * atom_i)`` (atoms: variables
and the non-linear nodes ``//``, ``%``, min, max, products of symbols), printed back in one order.
Every other node is rewritten by the rules of ``RULES`` (see ``rewrite.py`` for the pattern
language), applied bottom-up and at each node until none fires. On top of it:

* ``bound``: interval bounds from the ranges of the variables (index variables are non-negative
  unless ``ranges`` says otherwise), one rule per kind of atom in ``BOUNDS``;
* ``prove_nonneg``: a symbolic prover that replaces atoms by the symbolic lower bounds of ``LOWER``
  (``c*(x//c) >= x - c + 1``, a loop variable by its extent - 1, ...) until a constant bound
  decides. It is what drops guards: ``io*8 + ii < n`` holds for ``io < n//8, ii < 8``.

``ranges`` maps a Var to inclusive ``(lo, hi)`` bounds, each an int, an Expr or None. One public
call simplifies each distinct node once (results are memoised by node for that call).
"""
from __future__ import annotations

import math

import numpy as np

from ..dtypes import numpy_dtype
from .expr import (
    EQ, LE, LT, NE, Add, And, Cast, Div, Expr, FloatImm, FloorDiv, FloorMod, IntImm, Max, Min, Mul,
    Not, Or, ReductionAdd, Select, Sub, Var, is_float, is_int,
)
from .rewrite import Any, Float, Int, Node, Rules
from .visit import children, rebuild

INF = math.inf
_MAX_REWRITES = 8  # rewrites of one node before the driver gives up looking for a fixpoint


# ------------------------------------------------------------------------------ linear forms


class Linear:
    """``const + sum(coef * atom)`` over int64; treated as immutable."""

    __slots__ = ("const", "terms")

    def __init__(self, const: int = 0, terms: dict | None = None):
        self.const = const
        self.terms = terms or {}

    def add(self, other: "Linear", scale: int = 1) -> "Linear":
        terms = dict(self.terms)
        for atom, c in other.terms.items():
            v = terms.get(atom, 0) + scale * c
            if v:
                terms[atom] = v
            else:
                terms.pop(atom, None)
        return Linear(self.const + scale * other.const, terms)

    def scale(self, k: int) -> "Linear":
        if k == 0:
            return Linear()
        return Linear(self.const * k, {a: c * k for a, c in self.terms.items()})

    def is_const(self) -> bool:
        return not self.terms

    def is_zero(self) -> bool:
        return not self.terms and self.const == 0


class _Ctx:
    """One public call: its ranges and memo tables keyed by node id (the value keeps the node alive)."""

    __slots__ = ("ranges", "simp", "lin")

    def __init__(self, ranges):
        self.ranges = ranges
        self.simp: dict = {}
        self.lin: dict = {}

    def final(self, e: Expr) -> Expr:
        """Mark ``e`` as simplified (the driver stops at it); returns it."""
        self.simp[id(e)] = (e, e)
        return e


def _order(atom: Expr) -> str:
    """The sort key of an atom in a canonical sum (its text), cached on the immutable node."""
    key = atom.__dict__.get("_order") if hasattr(atom, "__dict__") else None
    if key is None:
        key = str(atom)
        if hasattr(atom, "__dict__"):
            object.__setattr__(atom, "_order", key)
    return key


def linear(e: Expr, ranges=None) -> Linear:
    """The canonical linear form of an integer expression (its atoms simplified)."""
    return _linear(e, _Ctx(ranges))


_LINEAR_KIND = {IntImm: IntImm, Add: Add, ReductionAdd: Add, Sub: Sub, Mul: Mul, Var: Var}


def _linear(e: Expr, ctx: _Ctx) -> Linear:
    hit = ctx.lin.get(id(e))
    if hit is not None:
        return hit[1]
    kind = _LINEAR_KIND.get(type(e))
    if kind is IntImm:
        lin = Linear(e.value)
    elif kind is Add:
        lin = _merge_divmod(_linear(e.a, ctx).add(_linear(e.b, ctx)), ctx)
    elif kind is Sub:
        lin = _merge_divmod(_linear(e.a, ctx).add(_linear(e.b, ctx), -1), ctx)
    elif kind is Mul:
        la, lb = _linear(e.a, ctx), _linear(e.b, ctx)
        if la.is_const():
            lin = lb.scale(la.const)
        elif lb.is_const():
            lin = la.scale(lb.const)
        else:
            a, b = from_linear(la, e.dtype), from_linear(lb, e.dtype)
            if _order(b) < _order(a):
                a, b = b, a
            lin = Linear(0, {Mul(a, b): 1})
    elif kind is Var:
        lin = Linear(0, {e: 1})
    else:
        s = _simp(e, ctx)
        if type(s) in _LINEAR_KIND and (s is not e or type(s) is not Var):
            lin = _linear(s, ctx)
        else:
            lin = Linear(0, {s: 1})
    ctx.lin[id(e)] = (e, lin)
    return lin


def _merge_divmod(lin: Linear, ctx: _Ctx) -> Linear:
    """``k*(c*(x//c)) + k*(x%c) -> k*x`` (what fusing and splitting loops leaves behind)."""
    for atom, k in list(lin.terms.items()):
        if type(atom) is not FloorMod or atom not in lin.terms:
            continue
        x, c = atom.a, atom.b
        q = FloorDiv(x, c)
        if isinstance(c, IntImm):
            partner, want = q, k * c.value
        else:
            partner = Mul(q, c) if Mul(q, c) in lin.terms else Mul(c, q)
            want = k
        if lin.terms.get(partner) == want:
            rest = Linear(lin.const, {a: v for a, v in lin.terms.items() if a is not atom and a != partner})
            lin = rest.add(_linear(x, ctx), k)
    return lin


def from_linear(lin: Linear, dtype: str = "int64") -> Expr:
    """The expression of a linear form: positive terms, then negative ones, then the constant."""
    pos = sorted(((_order(a), a, c) for a, c in lin.terms.items() if c > 0), key=lambda t: t[0])
    neg = sorted(((_order(a), a, -c) for a, c in lin.terms.items() if c < 0), key=lambda t: t[0])

    def term(atom, c):
        return atom if c == 1 else Mul(atom, IntImm(c, dtype))

    out = None
    for _, atom, c in pos:
        out = term(atom, c) if out is None else Add(out, term(atom, c))
    const_done = out is None
    if out is None:
        out = IntImm(lin.const, dtype)
    for _, atom, c in neg:
        out = Sub(out, term(atom, c))
    if not const_done and lin.const > 0:
        out = Add(out, IntImm(lin.const, dtype))
    elif not const_done and lin.const < 0:
        out = Sub(out, IntImm(-lin.const, dtype))
    return out


# ----------------------------------------------------------------------------- the driver


def simplify(e: Expr, ranges=None) -> Expr:
    """Canonical, folded form of ``e``; comparisons decided by the prover become constants."""
    return _simp(e, _Ctx(ranges))


def _simp(e: Expr, ctx: _Ctx) -> Expr:
    hit = ctx.simp.get(id(e))
    if hit is not None:
        return hit[1]
    if type(e) in _LINEAR_KIND and is_int(e.dtype):
        out = from_linear(_linear(e, ctx), e.dtype)
    else:
        kids = children(e)
        out = _rewrite(rebuild(e, tuple(_simp(k, ctx) for k in kids)), ctx) if kids else e
    ctx.simp[id(e)] = (e, out)
    ctx.simp.setdefault(id(out), (out, out))
    return out


def _rewrite(e: Expr, ctx: _Ctx) -> Expr:
    """Apply ``RULES`` at the root until none fires (or a rule marks its result final)."""
    for _ in range(_MAX_REWRITES):
        out = RULES.rewrite(e, ctx)
        if out is None or out is e:
            return e
        e = out
        if id(e) in ctx.simp:
            return e
    return e


# ------------------------------------------------------------------------ pattern variables


X, Y = Any("x"), Any("y")
C1, C2 = Int("c1"), Int("c2")
F1, F2 = Float("f1"), Float("f2")
NONZERO = Int("c2", where=lambda v: v != 0)
K = Int("k", where=lambda v: v > 0)
K1, K2 = Int("k1", where=lambda v: v > 0), Int("k2", where=lambda v: v > 0)
NUM_A, NUM_B = Any("a", where=lambda e: type(e) in (IntImm, FloatImm)), Any("b", where=lambda e: type(e) in (IntImm, FloatImm))
NOT_IMM = Any("x", where=lambda e: type(e) is not IntImm)


def _int_node(e) -> bool:
    return not is_float(e.dtype)


def _int_args(e) -> bool:
    return is_int(e.a.dtype)


def IntNode(types, *kids) -> Node:
    """A node pattern on integer (non-float) nodes only."""
    return Node(types, *kids, where=_int_node)


def _imm(e: Expr, v: int) -> IntImm:
    return IntImm(v, e.dtype)


_TRUE, _FALSE = IntImm(1, "bool"), IntImm(0, "bool")


# ---------------------------------------------------------------------------- the rules


def _fold_float(e, ctx, f1, f2):
    np_t = np.float32 if e.dtype == "float32" else np.float64
    x, y = np_t(f1), np_t(f2)
    with np.errstate(all="ignore"):
        v = {Add: lambda: x + y, Sub: lambda: x - y, Mul: lambda: x * y,
             Div: lambda: x / y if y != 0 else np_t(np.nan), Min: lambda: min(x, y), Max: lambda: max(x, y)}[type(e)]()
    return FloatImm(float(v), e.dtype)


def _div_linear(e, ctx, x, k):
    """floor((k*Q + R) / k) == Q + floor(R / k); R // k vanishes when 0 <= R < k."""
    lin = _linear(x, ctx)
    q = Linear(lin.const // k, {t: c // k for t, c in lin.terms.items() if c % k == 0})
    r = Linear(lin.const % k, {t: c for t, c in lin.terms.items() if c % k})
    lo, hi = _bound_linear(r, ctx, 0)
    if r.is_const() or (0 <= lo and hi < k):
        return ctx.final(from_linear(q, e.dtype))
    if q.is_zero():
        return None
    return ctx.final(from_linear(q.add(Linear(0, {FloorDiv(from_linear(r, e.dtype), e.b): 1})), e.dtype))


def _mod_linear(e, ctx, x, k):
    """(k*Q + R) % k == R % k, and R when 0 <= R < k."""
    lin = _linear(x, ctx)
    r = Linear(lin.const % k, {t: c % k for t, c in lin.terms.items() if c % k})
    if r.is_const():
        return _imm(e, r.const)
    lo, hi = _bound_linear(r, ctx, 0)
    if 0 <= lo and hi < k:
        return ctx.final(from_linear(r, e.dtype))
    if r.const == lin.const and len(r.terms) == len(lin.terms) and all(0 < c < k for c in lin.terms.values()):
        return None
    return ctx.final(FloorMod(from_linear(r, e.dtype), e.b))


def _mod_below(e, ctx, x, y):
    """x % y == x when 0 <= x < y."""
    if _bound(x, ctx, 0)[0] >= 0 and _bound(y, ctx, 0)[0] >= 1 and _decide_lt(x, y, ctx):
        return x
    return None


def _min_proven(e, ctx, x, y):
    if _prove_nonneg(Sub(y, x), ctx):
        return x
    return y if _prove_nonneg(Sub(x, y), ctx) else None


def _max_proven(e, ctx, x, y):
    if _prove_nonneg(Sub(y, x), ctx):
        return y
    return x if _prove_nonneg(Sub(x, y), ctx) else None


_CMP = {LT: lambda a, b: a < b, LE: lambda a, b: a <= b, EQ: lambda a, b: a == b, NE: lambda a, b: a != b}


def _compare_lt(e, ctx, x, y):
    """Decide ``x < y`` / ``x <= y`` by the prover, else move terms so that both sides are sums of positives."""
    rhs = y if type(e) is LT else Add(y, IntImm(1, y.dtype))
    d = _decide_lt(x, rhs, ctx)
    if d is not None:
        return IntImm(int(d), "bool")
    lin = _linear(y, ctx).add(_linear(x, ctx), -1)  # y - x > 0 (LT) / >= 0 (LE)
    k = lin.const
    pos = Linear(0, {t: c for t, c in lin.terms.items() if c > 0})
    neg = Linear(0, {t: -c for t, c in lin.terms.items() if c < 0})
    lhs = neg.add(Linear(-k)) if k < 0 else neg
    rhs2 = pos if k < 0 else pos.add(Linear(k))
    out = type(e)(from_linear(lhs, x.dtype), from_linear(rhs2, x.dtype))
    return None if out == e else ctx.final(out)


def _compare_eq(e, ctx, x, y):
    """Decide ``x == y`` / ``x != y`` when ``x - y`` is constant or its bounds exclude 0."""
    lin = _linear(x, ctx).add(_linear(y, ctx), -1)
    if lin.is_const():
        return IntImm(int((lin.const == 0) == (type(e) is EQ)), "bool")
    lo, hi = _bound_linear(lin, ctx, 0)
    if lo > 0 or hi < 0:
        return IntImm(int(type(e) is NE), "bool")
    return None


def _cast_const(e, ctx, v):
    if is_float(e.dtype):
        return FloatImm(float(numpy_dtype(e.dtype).type(v.value)), e.dtype)
    if e.dtype == "bool":
        return IntImm(int(bool(v.value)), "bool")
    if is_float(v.dtype) and not math.isfinite(v.value):
        return None
    return IntImm(int(np.array(v.value).astype(numpy_dtype(e.dtype))), e.dtype)


# Each rule: (name, pattern, fn(node, ctx, **bindings) -> replacement or None). Order matters
# within a root type: the first rule that returns a replacement wins.
RULES = Rules([
    # float arithmetic: fold constants (in the node's precision), drop identities
    ("fold-float", Node((Add, Sub, Mul, Div, Min, Max), F1, F2), _fold_float),
    ("x+0.0", X + 0.0, lambda e, ctx, x: x),
    ("0.0+x", 0.0 + X, lambda e, ctx, x: x),
    ("x-0.0", X - 0.0, lambda e, ctx, x: x),
    ("x*1.0", X * 1.0, lambda e, ctx, x: x),
    ("1.0*x", 1.0 * X, lambda e, ctx, x: x),
    ("x/1.0", X / 1.0, lambda e, ctx, x: x),
    # integer floor division
    ("x//1", IntNode(FloorDiv, X, 1), lambda e, ctx, x: x),
    ("c1//c2", IntNode(FloorDiv, C1, NONZERO), lambda e, ctx, c1, c2: _imm(e, c1 // c2)),
    ("x//k1//k2", IntNode(FloorDiv, Node(FloorDiv, X, K1), K2), lambda e, ctx, x, k1, k2: FloorDiv(x, _imm(e, k1 * k2))),
    ("(k*q+r)//k", IntNode(FloorDiv, X, K), _div_linear),
    ("0//x", IntNode(FloorDiv, 0, NOT_IMM), lambda e, ctx, x: e.a),
    ("x//x", IntNode(FloorDiv, NOT_IMM, NOT_IMM), lambda e, ctx, x: _imm(e, 1)),
    # integer floor modulo
    ("x%1", IntNode(FloorMod, X, 1), lambda e, ctx, x: _imm(e, 0)),
    ("(k*q+r)%k", IntNode(FloorMod, X, K), _mod_linear),
    ("c1%c2", IntNode(FloorMod, C1, NONZERO), lambda e, ctx, c1, c2: _imm(e, c1 % c2)),
    ("x%x", IntNode(FloorMod, X, X), lambda e, ctx, x: _imm(e, 0)),
    ("x%y->x", IntNode(FloorMod, X, Y), _mod_below),
    # min / max of integers
    ("fold-min", Node(Min, C1, C2), lambda e, ctx, c1, c2: _imm(e, min(c1, c2))),
    ("fold-max", Node(Max, C1, C2), lambda e, ctx, c1, c2: _imm(e, max(c1, c2))),
    ("min(x,x)", IntNode((Min, Max), X, X), lambda e, ctx, x: x),
    ("min-proven", IntNode(Min, X, Y), _min_proven),
    ("max-proven", IntNode(Max, X, Y), _max_proven),
    # comparisons
    ("fold-cmp", Node((LT, LE, EQ, NE), NUM_A, NUM_B), lambda e, ctx, a, b: IntImm(int(_CMP[type(e)](a.value, b.value)), "bool")),
    ("x<y", Node((LT, LE), X, Y, where=_int_args), _compare_lt),
    ("x==y", Node((EQ, NE), X, Y, where=_int_args), _compare_eq),
    # logic
    ("c&&x", Node(And, C1, X), lambda e, ctx, c1, x: x if c1 else _FALSE),
    ("x&&c", Node(And, X, C1), lambda e, ctx, x, c1: x if c1 else _FALSE),
    ("c||x", Node(Or, C1, X), lambda e, ctx, c1, x: _TRUE if c1 else x),
    ("x||c", Node(Or, X, C1), lambda e, ctx, x, c1: _TRUE if c1 else x),
    ("!c", Node(Not, C1), lambda e, ctx, c1: IntImm(int(not c1), "bool")),
    ("select(c,x,y)", Node(Select, C1, X, Y), lambda e, ctx, c1, x, y: x if c1 else y),
    ("select(_,x,x)", Node(Select, Any(), X, X), lambda e, ctx, x: x),
    # casts of constants
    ("cast-const", Node(Cast, Any("v", where=lambda e: type(e) in (IntImm, FloatImm))), _cast_const),
])


# ---------------------------------------------------------------------------------- bounds


def _range_of(v: Var, ctx: _Ctx):
    ranges = ctx.ranges
    if ranges and v in ranges:
        return ranges[v]
    return (0, None) if is_int(v.dtype) else (None, None)


def bound(e: Expr, ranges=None, depth: int = 0) -> tuple:
    """Inclusive numeric bounds (lo, hi) of an integer expression; +-inf when unknown."""
    return _bound(e, _Ctx(ranges), depth)


def _bound(e: Expr, ctx: _Ctx, depth: int) -> tuple:
    if not is_int(e.dtype) or depth > 8:
        return (-INF, INF)
    return _bound_linear(_linear(e, ctx), ctx, depth)


def _bound_linear(lin: Linear, ctx: _Ctx, depth: int) -> tuple:
    lo = hi = lin.const
    for atom, c in lin.terms.items():
        alo, ahi = BOUNDS.rewrite(atom, ctx, depth + 1) or (-INF, INF)
        if c > 0:
            lo, hi = lo + c * alo, hi + c * ahi
        else:
            lo, hi = lo + c * ahi, hi + c * alo
        if lo == -INF and hi == INF:
            break
    return (lo, hi)


def _num(x, ctx, depth, side):
    if x is None:
        return -INF if side == 0 else INF
    if isinstance(x, int):
        return x
    return _bound(x, ctx, depth)[side]


def _mul(x, y):
    return 0 if x == 0 or y == 0 else x * y


def _var_bounds(e, ctx, depth):
    lo, hi = _range_of(e, ctx)
    return (_num(lo, ctx, depth, 0), _num(hi, ctx, depth, 1))


def _div_const_bounds(e, ctx, depth, x, k):
    lo, hi = _bound(x, ctx, depth)
    return (lo if lo == -INF else lo // k, hi if hi == INF else hi // k)


def _mod_const_bounds(e, ctx, depth, x, k):
    lo, hi = _bound(x, ctx, depth)
    return (lo, hi) if lo >= 0 and hi < k else (0, k - 1)


def _div_bounds(e, ctx, depth, x, y):
    lo, hi = _bound(x, ctx, depth)
    return (0, hi) if lo >= 0 and _bound(y, ctx, depth)[0] >= 1 else None


def _mod_bounds(e, ctx, depth, x, y):
    blo, bhi = _bound(y, ctx, depth)
    return (0, bhi - 1) if _bound(x, ctx, depth)[0] >= 0 and blo >= 1 else None


def _mul_bounds(e, ctx, depth, x, y):
    (alo, ahi), (blo, bhi) = _bound(x, ctx, depth), _bound(y, ctx, depth)
    prods = [_mul(p, q) for p in (alo, ahi) for q in (blo, bhi)]
    return (min(prods), max(prods))


def _either_bounds(e, ctx, depth, x, y, pick=None):
    (alo, ahi), (blo, bhi) = _bound(x, ctx, depth), _bound(y, ctx, depth)
    if pick is Min:
        return (min(alo, blo), min(ahi, bhi))
    if pick is Max:
        return (max(alo, blo), max(ahi, bhi))
    return (min(alo, blo), max(ahi, bhi))


# (lo, hi) of an atom of a linear form: fn(atom, ctx, depth, **bindings); no rule: unbounded.
BOUNDS = Rules([
    ("var", Node(Var), _var_bounds),
    ("x//k", X // K, _div_const_bounds),
    ("x%k", X % K, _mod_const_bounds),
    ("x//y", X // Y, _div_bounds),
    ("x%y", X % Y, _mod_bounds),
    ("min", Node(Min, X, Y), lambda e, ctx, d, x, y: _either_bounds(e, ctx, d, x, y, Min)),
    ("max", Node(Max, X, Y), lambda e, ctx, d, x, y: _either_bounds(e, ctx, d, x, y, Max)),
    ("x*y", X * Y, _mul_bounds),
    ("select", Node(Select, Any(), X, Y), _either_bounds),
    ("cast", Node(Cast, Any("x", where=lambda e: is_int(e.dtype))), lambda e, ctx, d, x: _bound(x, ctx, d)),
])


# ---------------------------------------------------------------------------------- prover


def prove_nonneg(e: Expr, ranges=None) -> bool:
    """True when ``e >= 0`` is proven for all variable values within ``ranges``."""
    return _prove_nonneg(e, _Ctx(ranges))


_DIV_BY_K = X // K


def _prove_nonneg(e: Expr, ctx: _Ctx) -> bool:
    lin = _linear(e, ctx)
    scale = 1
    for atom, c in lin.terms.items():
        b = _DIV_BY_K.bind(atom)
        if b is not None and c % b["k"]:
            scale = math.lcm(scale, b["k"])
    lin = lin.scale(scale)  # c*(x//k) with k | c linearises; positive scaling keeps the sign
    for _ in range(6):
        if _bound_linear(lin, ctx, 0)[0] >= 0:
            return True
        nxt = _relax(lin, ctx)
        if nxt is None:
            return False
        lin = nxt
    return _bound_linear(lin, ctx, 0)[0] >= 0


def _relax(lin: Linear, ctx: _Ctx) -> Linear | None:
    """Replace atoms by symbolic lower bounds of ``coef * atom``; None if nothing changed.

    Non-variable atoms go first (``x - 8*(x//8)`` needs ``x`` kept while ``x//8`` is
    replaced); variables are replaced only by symbolic bounds (numeric ones are already
    used by the interval check).
    """
    for pick_vars in (False, True):
        out = Linear(lin.const)
        changed = False
        for atom, c in lin.terms.items():
            repl = LOWER.rewrite(atom, ctx, c) if (type(atom) is Var) == pick_vars else None
            if repl is None:
                out = out.add(Linear(0, {atom: c}))
            else:
                changed = True
                out = out.add(repl)
        if changed:
            return out
    return None


def _var_lower(e, ctx, c):
    lo, hi = _range_of(e, ctx)
    b = lo if c > 0 else hi
    return _linear(b, ctx).scale(c) if isinstance(b, Expr) else None


def _div_lower(e, ctx, c, x, k):
    if c % k:
        return None
    lin = _linear(x, ctx)
    if c > 0:  # k*(x//k) >= x - (k-1)
        return lin.add(Linear(-(k - 1))).scale(c // k)
    return lin.scale(c // k)  # k*(x//k) <= x


# A linear form L with coef * atom >= L: fn(atom, ctx, coef, **bindings); None: no symbolic bound.
LOWER = Rules([
    ("var", Node(Var), _var_lower),
    ("x//k", X // K, _div_lower),
    ("x%k", X % K, lambda e, ctx, c, x, k: Linear(0) if c > 0 else Linear(c * (k - 1))),
    ("min(x,_)", Node(Min, X, Any()), lambda e, ctx, c, x: _linear(x, ctx).scale(c) if c < 0 else None),
    ("max(x,_)", Node(Max, X, Any()), lambda e, ctx, c, x: _linear(x, ctx).scale(c) if c > 0 else None),
])


def prove(cond: Expr, ranges=None) -> bool | None:
    """True or False when ``cond`` is decided for every value within ``ranges``, else None."""
    s = simplify(cond, ranges)
    if isinstance(s, IntImm):
        return bool(s.value)
    return None


def _decide_lt(a: Expr, b: Expr, ctx: _Ctx) -> bool | None:
    """a < b ?"""
    if _prove_nonneg(Sub(Sub(b, a), IntImm(1, a.dtype)), ctx):
        return True
    if _prove_nonneg(Sub(a, b), ctx):
        return False
    return None


__all__ = ["Linear", "linear", "from_linear", "simplify", "bound", "prove", "prove_nonneg", "RULES", "BOUNDS", "LOWER"]
