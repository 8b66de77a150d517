"""te computes of the elementwise and broadcasting operators: unary math, cast, binary arithmetic, comparisons,
logic and where."""
from __future__ import annotations

import math

import numpy as np

from .. import te
from ..te.expr import FLOAT_FUNCS, Expr, is_float
from .compute import broadcast_dims, broadcast_index, checker, register_compute, stage_name


def _relu(x: Expr) -> Expr:
    return te.max_(x, te.const(0, x.dtype))


# name -> scalar function of one te expression
UNARY = {
    "tanh": te.tanh,
    "sigmoid": te.sigmoid,
    "exp": te.exp,
    "log": te.log,
    "sqrt": te.sqrt,
    "erf": te.erf,
    "gelu": lambda x: x * 0.5 * (1.0 + te.erf(x * (1.0 / math.sqrt(2.0)))),
    "relu": _relu,
    "negative": lambda x: x * te.const(-1, x.dtype),  # x * -1 keeps numpy's -0.0
    "abs": lambda x: te.abs_(x) if is_float(x.dtype) else te.select(x < te.const(0, x.dtype), -x, x),
    **{f: (lambda x, f=f: te.math_call(f, x)) for f in FLOAT_FUNCS + ("bitwise_not",)},
}


def _unary_compute(name: str, fn):
    def compute(inputs, attrs, out_shapes):
        (x,) = inputs
        return te.compute(x.shape, lambda *i: fn(x[i]), name=stage_name(name))

    return compute


for _name, _fn in UNARY.items():
    register_compute(_name)(_unary_compute(_name, _fn))


def cast_value(x: Expr, dtype: str) -> Expr:
    """numpy's astype of one value: to bool is x != 0; float to int truncates."""
    if dtype == "bool":
        return te.ne(x, te.const(0, x.dtype)) if x.dtype != "bool" else x
    return te.cast(dtype, x)


@register_compute("cast")
def _cast(inputs, attrs, out_shapes):
    (x,) = inputs
    return te.compute(x.shape, lambda *i: cast_value(x[i], attrs["dtype"]), name="cast")


def _safe_divisor(b: Expr) -> Expr:
    """b, with 1 for 0 and, for signed ints, for -1 (the callers give those their results: the hardware traps on
    a divisor 0 and on the lowest value divided by -1)."""
    one = te.const(1, b.dtype)
    bad = te.eq(b, te.const(0, b.dtype))
    if np.dtype(b.dtype).kind == "i":
        bad = te.any_(bad, te.eq(b, te.const(-1, b.dtype)))
    return te.select(bad, one, b)


def _int_divide(a: Expr, b: Expr) -> Expr:
    """a / b truncated toward zero; 0 where b == 0 and -a (wrapping) where b == -1, numpy's results, without the
    traps."""
    zero = te.const(0, a.dtype)
    safe = _safe_divisor(b)
    floor = a // safe
    inexact = te.all_(te.ne(a % safe, zero), te.ne(a < zero, safe < zero))
    out = te.select(inexact, floor + 1, floor)
    if np.dtype(b.dtype).kind == "i":
        out = te.select(te.eq(b, te.const(-1, b.dtype)), zero - a, out)
    return te.select(te.eq(b, zero), zero, out)


def _divide(a: Expr, b: Expr) -> Expr:
    return a / b if is_float(a.dtype) else _int_divide(a, b)


def _int_remainder(a: Expr, b: Expr, floor: bool) -> Expr:
    """a mod b (floor: the divisor's sign) or C's a % b (the dividend's sign) for ints; 0 where b == 0."""
    zero = te.const(0, a.dtype)
    safe = _safe_divisor(b)  # (b == -1 leaves no remainder: a % 1 is 0 too)
    r = a % safe  # (floor mod)
    if not floor:  # a non-zero floor remainder whose sign differs from a's: shift it by the divisor
        r = te.select(te.all_(te.ne(r, zero), te.ne(r < zero, a < zero)), r - safe, r)
    return te.select(te.eq(b, zero), zero, r)


def _mod(a: Expr, b: Expr) -> Expr:
    return a % b if is_float(a.dtype) else _int_remainder(a, b, True)


def _fmod(a: Expr, b: Expr) -> Expr:
    return te.fmod(a, b) if is_float(a.dtype) else _int_remainder(a, b, False)


def _power(a: Expr, b: Expr) -> Expr:
    if is_float(a.dtype):
        return te.power(a, b)
    return te.cast(a.dtype, te.power(te.cast("float64", a), te.cast("float64", b)))


# name -> scalar function of two te expressions of one dtype
BINARY = {
    "add": lambda a, b: a + b,
    "subtract": lambda a, b: a - b,
    "multiply": lambda a, b: a * b,
    "divide": _divide,
    "power": _power,
    "mod": _mod,
    "fmod": _fmod,
    "maximum": te.max_,
    "minimum": te.min_,
    "equal": te.eq,
    "not_equal": te.ne,
    "less": lambda a, b: a < b,
    "less_equal": lambda a, b: a <= b,
    "greater": lambda a, b: a > b,
    "greater_equal": lambda a, b: a >= b,
    "logical_and": lambda a, b: te.all_(a, b),
    "logical_or": lambda a, b: te.any_(a, b),
    **{f: (lambda a, b, f=f: te.math_call(f, a, b)) for f in ("bitwise_and", "bitwise_or", "bitwise_xor")},
    "left_shift": lambda a, b: te.math_call("shift_left", a, b),
    "right_shift": lambda a, b: te.math_call("shift_right", a, b),
}


def broadcast_compute(op: str, tensors: list, names: list, fn) -> te.Tensor:
    """out[i] = fn(t0[i'], t1[i''], ...) with numpy broadcasting over `tensors`."""
    shape, checks = broadcast_dims(op, [t.shape for t in tensors], names)

    def body(*i):
        return fn(*(t[broadcast_index(t.shape, shape, i)] for t in tensors))

    return te.compute(shape, body, name=stage_name(op), checks=checker(checks))


def _binary_compute(name: str, fn):
    def compute(inputs, attrs, out_shapes):
        return broadcast_compute(name, list(inputs), ["lhs", "rhs"], fn)

    return compute


for _name, _fn in BINARY.items():
    register_compute(_name)(_binary_compute(_name, _fn))


@register_compute("where")
def _where(inputs, attrs, out_shapes):
    return broadcast_compute("where", list(inputs), ["cond", "x", "y"], te.select)
