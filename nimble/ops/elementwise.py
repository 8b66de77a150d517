"""Unary elementwise operators (one table row each) and `cast`."""
from __future__ import annotations

import math

import numpy as np

from ..ir.types import TensorType
from .registry import REQUIRED, OpPattern, register
from .relations import FLOAT_DTYPES, INT_DTYPES, tensor_arg

_erf_scalar = np.frompyfunc(math.erf, 1, 1)


def _erf64(x: np.ndarray) -> np.ndarray:
    """erf of a float64 array, elementwise, to double precision (numpy has no erf of its own)."""
    return np.asarray(_erf_scalar(x), dtype=np.float64)


def _in_float64(fn):
    """Compute in float64 and cast back: the reference is exact to the input dtype's precision."""

    def run(x):
        x = np.asarray(x)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return np.asarray(fn(x.astype(np.float64))).astype(x.dtype)

    return run


def _gelu(x):
    return 0.5 * x * (1.0 + _erf64(x / math.sqrt(2.0)))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# name -> (reference on a float64 array, doc); every row is a float-only elementwise op.
FLOAT_UNARY = {
    "tanh": (np.tanh, "tanh(x)"),
    "sigmoid": (_sigmoid, "1 / (1 + exp(-x))"),
    "exp": (np.exp, "e ** x"),
    "log": (np.log, "natural logarithm"),
    "sqrt": (np.sqrt, "square root"),
    "erf": (_erf64, "the error function"),
    "gelu": (_gelu, "x * (1 + erf(x / sqrt(2))) / 2 (the exact, erf form)"),
    **{name: (getattr(np, np_name), f"{name}(x)") for name, np_name in (
        ("sin", "sin"), ("cos", "cos"), ("tan", "tan"), ("asin", "arcsin"), ("acos", "arccos"), ("atan", "arctan"),
        ("sinh", "sinh"), ("cosh", "cosh"), ("asinh", "arcsinh"), ("acosh", "arccosh"), ("atanh", "arctanh"))},
    "round": (np.rint, "x rounded to the nearest integer, halfway cases to the even one"),
    "floor": (np.floor, "the largest integer <= x (inf, NaN and -0.0 kept)"),
    "ceil": (np.ceil, "the smallest integer >= x (inf, NaN and -0.0 kept)"),
}

# name -> (reference, doc); any numeric dtype.
NUMERIC_UNARY = {
    "relu": (lambda x: np.maximum(x, x.dtype.type(0)), "max(x, 0)"),
    "negative": (np.negative, "-x"),
    "abs": (np.abs, "|x|"),
}


def _unary_rel(name: str, dtypes):
    def rel(x):
        return tensor_arg(name, "x", x, dtypes)

    return rel


def _same_shape(x):
    return [x]


_builders = {}
for _name, (_fn, _doc) in FLOAT_UNARY.items():
    _builders[_name] = register(
        _name, args=("x",), type_rel=_unary_rel(_name, FLOAT_DTYPES), shape_func=_same_shape,
        reference=_in_float64(_fn), pattern=OpPattern.ELEMWISE, doc=f"Elementwise {_doc}.",
    )
for _name, (_fn, _doc) in NUMERIC_UNARY.items():
    _builders[_name] = register(
        _name, args=("x",), type_rel=_unary_rel(_name, None), shape_func=_same_shape,
        reference=_fn, pattern=OpPattern.ELEMWISE, doc=f"Elementwise {_doc}.",
    )
_builders["bitwise_not"] = register(
    "bitwise_not", args=("x",), type_rel=_unary_rel("bitwise_not", INT_DTYPES), shape_func=_same_shape,
    reference=np.invert, pattern=OpPattern.ELEMWISE, doc="Elementwise ~x (integers).",
)

tanh = _builders["tanh"]
sigmoid = _builders["sigmoid"]
exp = _builders["exp"]
log = _builders["log"]
sqrt = _builders["sqrt"]
erf = _builders["erf"]
gelu = _builders["gelu"]
relu = _builders["relu"]
negative = _builders["negative"]
abs = _builders["abs"]  # noqa: A001
sin, cos, tan = _builders["sin"], _builders["cos"], _builders["tan"]
asin, acos, atan = _builders["asin"], _builders["acos"], _builders["atan"]
sinh, cosh, asinh, acosh, atanh = (_builders[n] for n in ("sinh", "cosh", "asinh", "acosh", "atanh"))
round = _builders["round"]  # noqa: A001
floor, ceil = _builders["floor"], _builders["ceil"]
bitwise_not = _builders["bitwise_not"]


def _cast_rel(x, dtype):
    x = tensor_arg("cast", "x", x)
    return TensorType(x.shape, dtype)


cast = register(
    "cast", args=("x",), attrs={"dtype": REQUIRED}, type_rel=_cast_rel,
    shape_func=lambda x, dtype: [x], reference=lambda x, dtype: np.asarray(x).astype(dtype),
    pattern=OpPattern.ELEMWISE, doc="Convert x to `dtype`.",
)
