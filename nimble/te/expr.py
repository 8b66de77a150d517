"""Scalar expressions: shape variables, constants, arithmetic, comparisons, casts and math calls.

Every node is a frozen dataclass, so structural equality and hashing come for free. Python
operators build nodes (``n * 8 + 1``); ``==`` stays structural equality, use ``eq``/``ne``
for the comparison nodes. Index arithmetic is int64 throughout.
"""
from __future__ import annotations

from dataclasses import dataclass
from ..errors import TypeError as NimbleTypeError

INDEX = "int64"
# the narrow ones are storage types (codegen): computed in float32 / int32 registers, converted on load and store
MINI_FLOATS = ("bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float4_e2m1fn",
               "float8_e8m0fnu")
FLOAT_DTYPES = ("float16", "float32", "float64") + MINI_FLOATS
INT_DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "int4", "uint4", "int2", "uint2")
DTYPES = FLOAT_DTYPES + INT_DTYPES + ("bool",)
# float functions (libm's; round is half to even; floor and ceil exact for every value), then integer bit operations
# (shifts by an amount outside 0..bits-1 give numpy's 0, or -1 for a negative value shifted right)
FLOAT_FUNCS = ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "round",
               "floor", "ceil")
BIT_FUNCS = ("bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "shift_left", "shift_right")
MATH_FUNCS = ("exp", "log", "sqrt", "tanh", "sigmoid", "erf", "pow", "abs", "fmod") + FLOAT_FUNCS + BIT_FUNCS
DOT4 = "dot4"  # the int32 sum of four products of 8-bit integers (``dot4``)


def is_float(dtype: str) -> bool:
    return dtype in FLOAT_DTYPES


def is_int(dtype: str) -> bool:
    return dtype in INT_DTYPES


def check_dtype(dtype: str, what: str = "dtype") -> str:
    if dtype not in DTYPES:
        raise NimbleTypeError(f"{what}: expected one of {DTYPES}, got {dtype!r}")
    return dtype


class Expr:
    """Base of scalar expressions; subclasses define ``dtype``."""

    __slots__ = ()
    dtype: str

    def __add__(self, o):
        return _binary(Add, self, o)

    def __radd__(self, o):
        return _binary(Add, o, self)

    def __sub__(self, o):
        return _binary(Sub, self, o)

    def __rsub__(self, o):
        return _binary(Sub, o, self)

    def __mul__(self, o):
        return _binary(Mul, self, o)

    def __rmul__(self, o):
        return _binary(Mul, o, self)

    def __truediv__(self, o):
        return _binary(Div, self, o)

    def __rtruediv__(self, o):
        return _binary(Div, o, self)

    def __floordiv__(self, o):
        return _binary(FloorDiv, self, o)

    def __rfloordiv__(self, o):
        return _binary(FloorDiv, o, self)

    def __mod__(self, o):
        return _binary(FloorMod, self, o)

    def __rmod__(self, o):
        return _binary(FloorMod, o, self)

    def __neg__(self):
        return _binary(Sub, const(0, self.dtype), self)

    def __lt__(self, o):
        return _binary(LT, self, o)

    def __le__(self, o):
        return _binary(LE, self, o)

    def __gt__(self, o):
        return _binary(LT, o, self)

    def __ge__(self, o):
        return _binary(LE, o, self)

    def __bool__(self):
        raise NimbleTypeError(
            f"a symbolic expression has no truth value: {self}; use te.select or the simplifier's prove()"
        )

    def __str__(self):
        from .printer import expr_str

        return expr_str(self)

    def __repr__(self):  # nodes are ``@dataclass(frozen=True, repr=False)``: they print as their expression
        return str(self)

    def astype(self, dtype: str) -> Expr:
        return cast(dtype, self)


@dataclass(frozen=True, repr=False)
class IntImm(Expr):
    value: int
    dtype: str = INDEX


@dataclass(frozen=True, repr=False)
class FloatImm(Expr):
    value: float
    dtype: str = "float32"


@dataclass(frozen=True, repr=False, eq=False)
class Var(Expr):
    """A named scalar variable: a shape variable, a loop variable or a let-bound value.

    Variables compare and hash by identity: two ``var("n")`` are different variables.
    """

    name: str
    dtype: str = INDEX


@dataclass(frozen=True, repr=False)
class BinaryOp(Expr):
    a: Expr
    b: Expr

    @property
    def dtype(self) -> str:
        return self.a.dtype


class Add(BinaryOp):
    symbol = "+"


class ReductionAdd(Add):
    """The update ``acc + x`` of a sum reduction: codegen lets LLVM reassociate it (vectorize)."""


class Sub(BinaryOp):
    symbol = "-"


class Mul(BinaryOp):
    symbol = "*"


class Div(BinaryOp):
    """True division of floats."""

    symbol = "/"


class FloorDiv(BinaryOp):
    symbol = "//"


class FloorMod(BinaryOp):
    symbol = "%"


class Min(BinaryOp):
    symbol = "min"


class Max(BinaryOp):
    symbol = "max"


class CmpOp(BinaryOp):
    @property
    def dtype(self) -> str:
        return "bool"


class LT(CmpOp):
    symbol = "<"


class LE(CmpOp):
    symbol = "<="


class EQ(CmpOp):
    symbol = "=="


class NE(CmpOp):
    symbol = "!="


class And(CmpOp):
    symbol = "&&"


class Or(CmpOp):
    symbol = "||"


@dataclass(frozen=True, repr=False)
class Not(Expr):
    a: Expr
    dtype: str = "bool"


@dataclass(frozen=True, repr=False)
class Select(Expr):
    cond: Expr
    true_value: Expr
    false_value: Expr

    @property
    def dtype(self) -> str:
        return self.true_value.dtype


@dataclass(frozen=True, repr=False)
class Cast(Expr):
    dtype: str
    value: Expr


@dataclass(frozen=True, repr=False)
class Call(Expr):
    """A math function applied elementwise: one of MATH_FUNCS."""

    func: str
    args: tuple
    dtype: str


# ---------------------------------------------------------------------------------- builders


def const(value, dtype: str | None = None) -> Expr:
    """A constant; ints default to int64 and floats to float32."""
    if isinstance(value, Expr):
        return value if dtype is None or value.dtype == dtype else cast(dtype, value)
    if isinstance(value, bool):
        return IntImm(int(value), dtype or "bool")
    if dtype is None:
        dtype = INDEX if isinstance(value, int) else "float32"
    check_dtype(dtype)
    if is_float(dtype):
        return FloatImm(float(value), dtype)
    if isinstance(value, float) and value != int(value):
        raise NimbleTypeError(f"const: {value!r} is not an integer but dtype is {dtype}")
    return IntImm(int(value), dtype)


def var(name: str, dtype: str = INDEX) -> Var:
    """A symbolic scalar, by default an int64 shape variable."""
    return Var(name, check_dtype(dtype))


def as_expr(value, like: str | None = None) -> Expr:
    if isinstance(value, Expr):
        return value
    if isinstance(value, (bool, int, float)):
        if like is not None and (isinstance(value, int) or is_float(like)):
            return const(value, like)
        return const(value)
    # numpy scalars
    if hasattr(value, "dtype") and hasattr(value, "item"):
        return const(value.item(), str(value.dtype))
    raise NimbleTypeError(f"expected an expression or a number, got {type(value).__name__}: {value!r}")


def _binary(cls, a, b) -> Expr:
    if not isinstance(a, Expr):
        a = as_expr(a, b.dtype if isinstance(b, Expr) else None)
    if not isinstance(b, Expr):
        b = as_expr(b, a.dtype)
    if a.dtype != b.dtype:
        a, b = _promote(a, b, cls.symbol)
    if cls is Div and not is_float(a.dtype):
        raise NimbleTypeError(f"'/' needs float operands, got {a.dtype}; use '//' for integer division")
    if cls in (And, Or) and a.dtype != "bool":
        raise NimbleTypeError(f"'{cls.symbol}' needs bool operands, got {a.dtype}")
    return cls(a, b)


_RANK = {"bool": 0, "int2": 0.2, "uint2": 0.4, "int4": 0.6, "uint4": 0.8, "float4_e2m1fn": 6.6, "float8_e4m3fn": 6.7,
         "float8_e4m3fnuz": 6.7, "float8_e5m2": 6.7, "float8_e5m2fnuz": 6.7, "float8_e8m0fnu": 6.8, "bfloat16": 6.9, "int8": 1, "uint8": 2, "int16": 3, "uint16": 4, "int32": 5, "uint32": 5.5, "int64": 6, "uint64": 6.5,
         "float16": 7,
         "float32": 8, "float64": 9}


def _promote(a: Expr, b: Expr, symbol: str):
    target = a.dtype if _RANK[a.dtype] >= _RANK[b.dtype] else b.dtype
    # A float constant meeting a float32 value stays float32 (like numpy's weak scalars).
    if isinstance(a, FloatImm) and is_float(b.dtype):
        target = b.dtype
    if isinstance(b, FloatImm) and is_float(a.dtype):
        target = a.dtype
    return cast(target, a), cast(target, b)


def cast(dtype: str, value) -> Expr:
    check_dtype(dtype)
    value = as_expr(value)
    if value.dtype == dtype:
        return value
    if isinstance(value, IntImm) and is_int(dtype):
        return IntImm(value.value, dtype)
    if isinstance(value, (IntImm, FloatImm)) and is_float(dtype):
        return FloatImm(float(value.value), dtype)
    return Cast(dtype, value)


def min_(a, b) -> Expr:
    return _binary(Min, a, b)


def max_(a, b) -> Expr:
    return _binary(Max, a, b)


def eq(a, b) -> Expr:
    return _binary(EQ, a, b)


def ne(a, b) -> Expr:
    return _binary(NE, a, b)


def all_(*conds) -> Expr:
    out = None
    for c in conds:
        out = c if out is None else _binary(And, out, c)
    return out if out is not None else IntImm(1, "bool")


def any_(*conds) -> Expr:
    out = None
    for c in conds:
        out = c if out is None else _binary(Or, out, c)
    return out if out is not None else IntImm(0, "bool")


def not_(a) -> Expr:
    return Not(as_expr(a))


def select(cond, true_value, false_value) -> Expr:
    cond = as_expr(cond)
    if cond.dtype != "bool":
        raise NimbleTypeError(f"select: cond must be bool, got {cond.dtype}")
    t = as_expr(true_value, false_value.dtype if isinstance(false_value, Expr) else None)
    f = as_expr(false_value, t.dtype)
    if t.dtype != f.dtype:
        t, f = _promote(t, f, "select")
    return Select(cond, t, f)


def _math(func: str, *args) -> Expr:
    args = tuple(as_expr(a) for a in args)
    if func in ("pow", "fmod") and args[0].dtype != args[1].dtype:
        args = _promote(args[0], args[1], func)
    dtype = args[0].dtype
    if func in BIT_FUNCS:
        if any(not is_int(a.dtype) or a.dtype != dtype for a in args):
            raise NimbleTypeError(f"{func}: expected integer arguments of one dtype, got {[a.dtype for a in args]}")
    elif func != "abs" and not is_float(dtype):
        raise NimbleTypeError(f"{func}: expected a float argument, got {dtype}")
    return Call(func, args, dtype)


def math_call(func: str, *args) -> Expr:
    """``func(*args)`` for any of FLOAT_FUNCS (one float argument) or BIT_FUNCS (integers of one dtype)."""
    if func not in FLOAT_FUNCS + BIT_FUNCS:
        raise NimbleTypeError(f"math_call: expected one of {FLOAT_FUNCS + BIT_FUNCS}, got {func!r}")
    return _math(func, *args)


def exp(x):
    return _math("exp", x)


def log(x):
    return _math("log", x)


def sqrt(x):
    return _math("sqrt", x)


def tanh(x):
    return _math("tanh", x)


def sigmoid(x):
    return _math("sigmoid", x)


def erf(x):
    return _math("erf", x)


def power(x, y):
    return _math("pow", x, y)


def fmod(x, y):
    """C's fmod: x - trunc(x / y) * y computed exactly, with x's sign (floats)."""
    return _math("fmod", x, y)


def abs_(x):
    return _math("abs", x)


def dot4(a, b) -> Expr:
    """``sum(int32(a[t]) * int32(b[t]) for t in 0..3)`` of two sequences of four 8-bit integer expressions.

    Code generation turns it, when ``a`` and ``b`` each load four consecutive bytes (one uint8 side, one int8
    side) into a VNNI dot product (``vpdpbusd``) where the CPU has one; it is exact integer arithmetic either way
    (each product fits 16 bits, the sum 18)."""
    a, b = tuple(as_expr(v) for v in a), tuple(as_expr(v) for v in b)
    if len(a) != 4 or len(b) != 4:
        raise NimbleTypeError(f"dot4: expected two sequences of 4 expressions, got {len(a)} and {len(b)}")
    for side in (a, b):
        if len({v.dtype for v in side}) != 1 or side[0].dtype not in ("int8", "uint8"):
            raise NimbleTypeError(f"dot4: each side must be 4 int8 or 4 uint8 expressions, got {[v.dtype for v in side]}")
    return Call(DOT4, a + b, "int32")


def ceildiv(a, b) -> Expr:
    """(a + b - 1) // b for non-negative a and positive b."""
    return (as_expr(a) + b - 1) // b


def min_value(dtype: str) -> Expr:
    import numpy as np

    if is_float(dtype):
        return FloatImm(float("-inf"), dtype)
    return IntImm(int(np.iinfo(dtype).min), dtype)


def max_value(dtype: str) -> Expr:
    import numpy as np

    if is_float(dtype):
        return FloatImm(float("inf"), dtype)
    return IntImm(int(np.iinfo(dtype).max), dtype)

