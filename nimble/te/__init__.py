"""Tensor expressions with symbolic shapes, the simplifier, and schedules."""
from .expr import (  # noqa: F401
    Expr, FloatImm, IntImm, Var, abs_, all_, any_, cast, ceildiv, const, dot4, eq, erf, exp, fmod, log, math_call, max_,
    min_, ne, not_, power, select, sigmoid, sqrt, tanh, var,
)
from .schedule import Schedule, Stage, create_schedule  # noqa: F401
from .simplify import bound, prove, prove_nonneg, simplify  # noqa: F401
from .tensor import IterVar, Tensor, compute, placeholder, reduce_axis  # noqa: F401
from .tensor import max, min, prod, sum  # noqa: F401,A004
