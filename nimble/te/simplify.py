"""The arithmetic simplifier and prover for index expressions.

Integer expressions are brought to a canonical linear form ``c0 + sum(ci * atom_i)`` where the
atoms are variables and the non-linear nodes (``//``, ``%``, min, max, products of symbols).
On top of it:

* constant folding, ``(8*n)//8 -> n``, ``(8*n + r) % 8 -> r % 8``, ``x//a//b -> x//(a*b)``;
* interval bounds of an expression from the ranges of its variables (index variables are
  non-negative unless ``ranges`` says otherwise);
* ``prove_nonneg``: a symbolic prover that replaces atoms by their symbolic bounds
  (``c*(x//c) >= x - c + 1``, ``c*(x//c) <= x``, a loop variable by its extent - 1, ...) until a
  constant bound decides. It is what drops guards: ``io*8 + ii < n`` holds for
  ``io < n//8, ii < 8``.

``ranges`` maps a Var to inclusive ``(lo, hi)`` bounds, each an int, an Expr or None.
"""
from __future__ import annotations

import math
import numpy as np

from .expr import (
    LE, LT, NE, EQ, Add, And, BinaryOp, Call, Cast, CmpOp, Div, Expr, FloatImm, FloorDiv, FloorMod,
    IntImm, Max, Min, Mul, Not, Or, Select, Sub, Var, is_float, is_int,
)
from .visit import children, rebuild

INF = math.inf


# ------------------------------------------------------------------------------ linear forms


class Linear:
    """``const + sum(coef * atom)`` over int64."""

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


def _is_index(e: Expr) -> bool:
    return is_int(e.dtype)


def linear(e: Expr, ranges=None) -> Linear:
    """The canonical linear form of an integer expression (its atoms simplified)."""
    if isinstance(e, IntImm):
        return Linear(e.value)
    if isinstance(e, Add):
        return _merge_divmod(linear(e.a, ranges).add(linear(e.b, ranges)), ranges)
    if isinstance(e, Sub):
        return _merge_divmod(linear(e.a, ranges).add(linear(e.b, ranges), -1), ranges)
    if isinstance(e, Mul):
        la, lb = linear(e.a, ranges), linear(e.b, ranges)
        if la.is_const():
            return lb.scale(la.const)
        if lb.is_const():
            return la.scale(lb.const)
        a, b = from_linear(la, e.dtype), from_linear(lb, e.dtype)
        if str(b) < str(a):
            a, b = b, a
        return Linear(0, {Mul(a, b): 1})
    if isinstance(e, Var):
        return Linear(0, {e: 1})
    s = _simplify_node(e, ranges)
    if isinstance(s, (IntImm, Add, Sub, Mul)) or (s is not e and isinstance(s, Var)):
        return linear(s, ranges)
    return Linear(0, {s: 1})


def _merge_divmod(lin: Linear, ranges) -> Linear:
    """``k*(c*(x//c)) + k*(x%c) -> k*x`` (what fusing and splitting loops leaves behind)."""
    for atom, k in list(lin.terms.items()):
        if not isinstance(atom, FloorMod) or atom not in lin.terms:
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
            lin = rest.add(linear(x, ranges), k)
    return lin


def from_linear(lin: Linear, dtype: str = "int64") -> Expr:
    """The expression of a linear form: positive terms, then negative ones, then the constant."""
    pos = sorted(((a, c) for a, c in lin.terms.items() if c > 0), key=lambda t: str(t[0]))
    neg = sorted(((a, -c) for a, c in lin.terms.items() if c < 0), key=lambda t: str(t[0]))

    def term(atom, c):
        return atom if c == 1 else Mul(atom, IntImm(c, dtype))

    out = None
    for atom, c in pos:
        out = term(atom, c) if out is None else Add(out, term(atom, c))
    const_done = out is None
    if out is None:
        out = IntImm(lin.const, dtype)
    for atom, c in neg:
        out = Sub(out, term(atom, c))
    if not const_done and lin.const > 0:
        out = Add(out, IntImm(lin.const, dtype))
    elif not const_done and lin.const < 0:
        out = Sub(out, IntImm(-lin.const, dtype))
    return out


# ---------------------------------------------------------------------------------- bounds


def _range_of(v: Var, ranges):
    if ranges and v in ranges:
        return ranges[v]
    return (0, None) if _is_index(v) else (None, None)


def bound(e: Expr, ranges=None, depth: int = 0) -> tuple:
    """Inclusive numeric bounds (lo, hi) of an integer expression; +-inf when unknown."""
    if not _is_index(e) or depth > 8:
        return (-INF, INF)
    return _bound_linear(linear(e, ranges), ranges, depth)


def _bound_linear(lin: Linear, ranges, depth: int) -> tuple:
    lo = hi = lin.const
    for atom, c in lin.terms.items():
        alo, ahi = _bound_atom(atom, ranges, depth + 1)
        if c > 0:
            lo, hi = lo + c * alo, hi + c * ahi
        else:
            lo, hi = lo + c * ahi, hi + c * alo
        if lo == -INF and hi == INF:
            break
    return (lo, hi)


def _num(x, ranges, depth, side):
    if x is None:
        return -INF if side == 0 else INF
    if isinstance(x, int):
        return x
    return bound(x, ranges, depth)[side]


def _bound_atom(a: Expr, ranges, depth: int) -> tuple:
    if isinstance(a, Var):
        lo, hi = _range_of(a, ranges)
        return (_num(lo, ranges, depth, 0), _num(hi, ranges, depth, 1))
    if isinstance(a, FloorDiv) and isinstance(a.b, IntImm) and a.b.value > 0:
        lo, hi = bound(a.a, ranges, depth)
        c = a.b.value
        return (lo if lo == -INF else lo // c, hi if hi == INF else hi // c)
    if isinstance(a, FloorMod) and isinstance(a.b, IntImm) and a.b.value > 0:
        lo, hi = bound(a.a, ranges, depth)
        if lo >= 0 and hi < a.b.value:
            return (lo, hi)
        return (0, a.b.value - 1)
    if isinstance(a, FloorDiv):
        lo, hi = bound(a.a, ranges, depth)
        blo, _ = bound(a.b, ranges, depth)
        if lo >= 0 and blo >= 1:
            return (0, hi)
    if isinstance(a, FloorMod):
        lo, _ = bound(a.a, ranges, depth)
        blo, bhi = bound(a.b, ranges, depth)
        if lo >= 0 and blo >= 1:
            return (0, bhi - 1)
    if isinstance(a, (Min, Max)):
        (alo, ahi), (blo, bhi) = bound(a.a, ranges, depth), bound(a.b, ranges, depth)
        return (min(alo, blo), min(ahi, bhi)) if isinstance(a, Min) else (max(alo, blo), max(ahi, bhi))
    if isinstance(a, Mul):
        (alo, ahi), (blo, bhi) = bound(a.a, ranges, depth), bound(a.b, ranges, depth)
        prods = [_mul(x, y) for x in (alo, ahi) for y in (blo, bhi)]
        return (min(prods), max(prods))
    if isinstance(a, Select):
        (alo, ahi), (blo, bhi) = bound(a.true_value, ranges, depth), bound(a.false_value, ranges, depth)
        return (min(alo, blo), max(ahi, bhi))
    if isinstance(a, Cast) and _is_index(a.value):
        return bound(a.value, ranges, depth)
    return (-INF, INF)


def _mul(x, y):
    if x == 0 or y == 0:
        return 0
    return x * y


# ---------------------------------------------------------------------------------- prover


def prove_nonneg(e: Expr, ranges=None) -> bool:
    """True when ``e >= 0`` is proven for all variable values within ``ranges``."""
    lin = linear(e, ranges)
    scale = 1
    for atom, c in lin.terms.items():
        if isinstance(atom, FloorDiv) and isinstance(atom.b, IntImm) and atom.b.value > 0 and c % atom.b.value:
            scale = math.lcm(scale, atom.b.value)
    lin = lin.scale(scale)  # c*(x//k) with k | c linearises; positive scaling keeps the sign
    for _ in range(6):
        if _bound_linear(lin, ranges, 0)[0] >= 0:
            return True
        nxt = _relax(lin, ranges)
        if nxt is None:
            return False
        lin = nxt
    return _bound_linear(lin, ranges, 0)[0] >= 0


def _relax(lin: Linear, ranges) -> Linear | None:
    """Replace atoms by symbolic lower bounds of ``coef * atom``; None if nothing changed.

    Non-variable atoms go first (``x - 8*(x//8)`` needs ``x`` kept while ``x//8`` is
    replaced); variables are replaced only by symbolic bounds (numeric ones are already
    used by the interval check).
    """
    for pick_vars in (False, True):
        out = Linear(lin.const)
        changed = False
        for atom, c in lin.terms.items():
            repl = None
            if isinstance(atom, Var) == pick_vars:
                repl = _symbolic_lower(atom, c, ranges)
            if repl is None:
                out = out.add(Linear(0, {atom: c}))
            else:
                changed = True
                out = out.add(repl)
        if changed:
            return out
    return None


def _symbolic_lower(atom: Expr, c: int, ranges) -> Linear | None:
    """A linear form L with ``c * atom >= L`` for all values, or None."""
    if isinstance(atom, Var):
        lo, hi = _range_of(atom, ranges)
        b = lo if c > 0 else hi
        return linear(b, ranges).scale(c) if isinstance(b, Expr) else None
    if isinstance(atom, FloorDiv) and isinstance(atom.b, IntImm) and atom.b.value > 0:
        k = atom.b.value
        if c % k:
            return None
        x = linear(atom.a, ranges)
        if c > 0:  # k*(x//k) >= x - (k-1)
            return x.add(Linear(-(k - 1))).scale(c // k)
        return x.scale(c // k)  # k*(x//k) <= x
    if isinstance(atom, FloorMod) and isinstance(atom.b, IntImm) and atom.b.value > 0:
        return Linear(0) if c > 0 else Linear(c * (atom.b.value - 1))
    if isinstance(atom, Min) and c < 0:
        return linear(atom.a, ranges).scale(c)  # min(a, b) <= a
    if isinstance(atom, Max) and c > 0:
        return linear(atom.a, ranges).scale(c)  # max(a, b) >= a
    return None


def prove(cond: Expr, ranges=None) -> bool | None:
    """True or False when ``cond`` is decided for every value within ``ranges``, else None."""
    s = simplify(cond, ranges)
    if isinstance(s, IntImm):
        return bool(s.value)
    return None


def _decide_lt(a: Expr, b: Expr, ranges) -> bool | None:
    """a < b ?"""
    if prove_nonneg(Sub(Sub(b, a), IntImm(1, a.dtype)), ranges):
        return True
    if prove_nonneg(Sub(a, b), ranges):
        return False
    return None


# ------------------------------------------------------------------------------- simplifier


def simplify(e: Expr, ranges=None) -> Expr:
    """Canonical, folded form of ``e``; comparisons decided by the prover become constants."""
    if _is_index(e) and isinstance(e, (Add, Sub, Mul, IntImm, Var)):
        return from_linear(linear(e, ranges), e.dtype)
    return _simplify_node(e, ranges)


def _simplify_node(e: Expr, ranges) -> Expr:
    kids = children(e)
    if not kids:
        return e
    if _is_index(e) and isinstance(e, (Add, Sub, Mul)):
        return from_linear(linear(e, ranges), e.dtype)
    e = rebuild(e, tuple(simplify(k, ranges) for k in kids))
    rule = _RULES.get(type(e))
    return rule(e, ranges) if rule else e


def _fold_float(e: BinaryOp, ranges):
    a, b = e.a, e.b
    if isinstance(a, FloatImm) and isinstance(b, FloatImm):
        np_t = np.float32 if e.dtype == "float32" else np.float64
        x, y = np_t(a.value), np_t(b.value)
        with np.errstate(all="ignore"):
            v = {Add: x + y, Sub: x - y, Mul: x * y, Div: x / y if y != 0 else np_t(np.nan),
                 Min: min(x, y), Max: max(x, y)}[type(e)]
        return FloatImm(float(v), e.dtype)
    if isinstance(e, (Add, Sub)) and isinstance(b, FloatImm) and b.value == 0.0:
        return a
    if isinstance(e, Add) and isinstance(a, FloatImm) and a.value == 0.0:
        return b
    if isinstance(e, (Mul, Div)) and isinstance(b, FloatImm) and b.value == 1.0:
        return a
    if isinstance(e, Mul) and isinstance(a, FloatImm) and a.value == 1.0:
        return b
    return e


def _floordiv(e: FloorDiv, ranges):
    if is_float(e.dtype):
        return e
    a, b = e.a, e.b
    if isinstance(b, IntImm):
        c = b.value
        if c == 1:
            return a
        if c <= 0:
            return e if not isinstance(a, IntImm) or c == 0 else IntImm(a.value // c, e.dtype)
        if isinstance(a, FloorDiv) and isinstance(a.b, IntImm) and a.b.value > 0:
            return _floordiv(FloorDiv(a.a, IntImm(a.b.value * c, e.dtype)), ranges)
        # floor((c*Q + R) / c) == Q + floor(R / c)
        lin = linear(a, ranges)
        q = Linear(lin.const // c, {t: k // c for t, k in lin.terms.items() if k % c == 0})
        r = Linear(lin.const % c, {t: k for t, k in lin.terms.items() if k % c})
        lo, hi = _bound_linear(r, ranges, 0)
        if r.is_const() or (0 <= lo and hi < c):
            return from_linear(q, e.dtype)
        return from_linear(q.add(Linear(0, {FloorDiv(from_linear(r, e.dtype), b): 1})), e.dtype)
    if isinstance(a, IntImm) and a.value == 0:
        return a
    if a == b:
        return IntImm(1, e.dtype)
    return e


def _floormod(e: FloorMod, ranges):
    if is_float(e.dtype):
        return e
    a, b = e.a, e.b
    if isinstance(b, IntImm) and b.value > 0:
        c = b.value
        if c == 1:
            return IntImm(0, e.dtype)
        lin = linear(a, ranges)
        r = Linear(lin.const % c, {t: k % c for t, k in lin.terms.items() if k % c})
        if r.is_const():
            return IntImm(r.const, e.dtype)
        lo, hi = _bound_linear(r, ranges, 0)
        if 0 <= lo and hi < c:
            return from_linear(r, e.dtype)
        return FloorMod(from_linear(r, e.dtype), b)
    if isinstance(a, IntImm) and isinstance(b, IntImm) and b.value != 0:
        return IntImm(a.value % b.value, e.dtype)
    if a == b:
        return IntImm(0, e.dtype)
    lo, _ = bound(a, ranges)
    blo, _ = bound(b, ranges)
    if lo >= 0 and blo >= 1 and _decide_lt(a, b, ranges):
        return a
    return e


def _minmax(e: BinaryOp, ranges):
    if is_float(e.dtype):
        return _fold_float(e, ranges)
    a, b = e.a, e.b
    if isinstance(a, IntImm) and isinstance(b, IntImm):
        return IntImm((min if isinstance(e, Min) else max)(a.value, b.value), e.dtype)
    if a == b:
        return a
    a_le_b = prove_nonneg(Sub(b, a), ranges)
    b_le_a = not a_le_b and prove_nonneg(Sub(a, b), ranges)
    if isinstance(e, Min):
        return a if a_le_b else b if b_le_a else e
    return b if a_le_b else a if b_le_a else e


def _compare(e: CmpOp, ranges):
    a, b = e.a, e.b
    if isinstance(a, (IntImm, FloatImm)) and isinstance(b, (IntImm, FloatImm)):
        v = {LT: a.value < b.value, LE: a.value <= b.value, EQ: a.value == b.value, NE: a.value != b.value}[type(e)]
        return IntImm(int(v), "bool")
    if is_float(a.dtype) or a.dtype == "bool":
        return e
    if isinstance(e, (LT, LE)):
        rhs = b if isinstance(e, LT) else Add(b, IntImm(1, b.dtype))
        d = _decide_lt(a, rhs, ranges)
        if d is not None:
            return IntImm(int(d), "bool")
        lin = linear(b, ranges).add(linear(a, ranges), -1)  # b - a > 0 (LT) / >= 0 (LE)
        # canonical: move constants right, keep it readable: a' < b'
        k = lin.const
        lin.const = 0
        pos = Linear(0, {t: c for t, c in lin.terms.items() if c > 0})
        neg = Linear(0, {t: -c for t, c in lin.terms.items() if c < 0})
        lhs = neg.add(Linear(-k)) if k < 0 else neg
        rhs2 = pos if k < 0 else pos.add(Linear(k))
        return type(e)(from_linear(lhs, a.dtype), from_linear(rhs2, a.dtype))
    if isinstance(e, (EQ, NE)):
        lin = linear(a, ranges).add(linear(b, ranges), -1)
        if lin.is_const():
            return IntImm(int((lin.const == 0) == isinstance(e, EQ)), "bool")
        lo, hi = _bound_linear(lin, ranges, 0)
        if lo > 0 or hi < 0:
            return IntImm(int(isinstance(e, NE)), "bool")
    return e


def _logic(e: BinaryOp, ranges):
    a, b = e.a, e.b
    for x, y in ((a, b), (b, a)):
        if isinstance(x, IntImm):
            if isinstance(e, And):
                return y if x.value else IntImm(0, "bool")
            return IntImm(1, "bool") if x.value else y
    return e


def _not(e: Not, ranges):
    if isinstance(e.a, IntImm):
        return IntImm(int(not e.a.value), "bool")
    return e


def _select(e: Select, ranges):
    if isinstance(e.cond, IntImm):
        return e.true_value if e.cond.value else e.false_value
    if e.true_value == e.false_value:
        return e.true_value
    return e


def _cast(e: Cast, ranges):
    v = e.value
    if isinstance(v, (IntImm, FloatImm)):
        if is_float(e.dtype):
            return FloatImm(float(np.dtype(e.dtype).type(v.value)), e.dtype)
        if e.dtype == "bool":
            return IntImm(int(bool(v.value)), "bool")
        if is_float(v.dtype) and not math.isfinite(v.value):
            return e
        return IntImm(int(np.array(v.value).astype(e.dtype)), e.dtype)
    return e


def _call(e: Call, ranges):
    return e


_RULES = {
    Add: _fold_float, Sub: _fold_float, Mul: _fold_float, Div: _fold_float,
    FloorDiv: _floordiv, FloorMod: _floormod, Min: _minmax, Max: _minmax,
    LT: _compare, LE: _compare, EQ: _compare, NE: _compare, And: _logic, Or: _logic,
    Not: _not, Select: _select, Cast: _cast, Call: _call,
}
