"""Binary operators with numpy broadcasting (arithmetic, comparisons, logic) and `where`."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError

from ..ir.types import TensorType
from .registry import OpPattern, register
from .relations import INT_DTYPES, broadcast_shapes, same_dtype, tensor_arg


def _divide(lhs, rhs):
    """True division for floats; integer division truncates toward zero (C semantics)."""
    if lhs.dtype.kind == "f":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.divide(lhs, rhs)
    quotient = np.abs(lhs) // np.abs(rhs)
    return (np.sign(lhs) * np.sign(rhs) * quotient).astype(lhs.dtype)


def _mod(lhs, rhs):
    """numpy's mod: the remainder of floor division, with the divisor's sign (0 for an integer divisor 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.mod(lhs, rhs)


def _fmod(lhs, rhs):
    """C's fmod: the remainder of truncated division, with the dividend's sign (0 for an integer divisor 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.fmod(lhs, rhs)
    return out if lhs.dtype.kind == "f" else np.where(rhs == 0, 0, out).astype(lhs.dtype)


def _power(lhs, rhs):
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.power(lhs, rhs)


# name -> (reference, result dtype: None = the inputs' dtype, input dtypes allowed: None = any)
BINARY = {
    "add": (np.add, None, None),
    "subtract": (np.subtract, None, None),
    "multiply": (np.multiply, None, None),
    "divide": (_divide, None, None),
    "power": (_power, None, None),
    "mod": (_mod, None, None),
    "fmod": (_fmod, None, None),
    "maximum": (np.maximum, None, None),
    "minimum": (np.minimum, None, None),
    "equal": (np.equal, "bool", None),
    "not_equal": (np.not_equal, "bool", None),
    "less": (np.less, "bool", None),
    "less_equal": (np.less_equal, "bool", None),
    "greater": (np.greater, "bool", None),
    "greater_equal": (np.greater_equal, "bool", None),
    "logical_and": (np.logical_and, "bool", ("bool",)),
    "logical_or": (np.logical_or, "bool", ("bool",)),
    "bitwise_and": (np.bitwise_and, None, INT_DTYPES),
    "bitwise_or": (np.bitwise_or, None, INT_DTYPES),
    "bitwise_xor": (np.bitwise_xor, None, INT_DTYPES),
    "left_shift": (np.left_shift, None, INT_DTYPES),  # an amount outside 0..bits-1 gives 0
    "right_shift": (np.right_shift, None, INT_DTYPES),  # ... 0, or -1 for a negative value
}


def _binary_rel(name: str, out_dtype, dtypes):
    def rel(lhs, rhs):
        lhs = tensor_arg(name, "lhs", lhs, dtypes)
        rhs = tensor_arg(name, "rhs", rhs, dtypes)
        dtype = same_dtype(name, ("lhs", lhs), ("rhs", rhs))
        return TensorType(broadcast_shapes(name, ("lhs", lhs), ("rhs", rhs)), out_dtype or dtype)

    return rel


def _binary_reference(fn, out_dtype):
    def run(lhs, rhs):
        lhs, rhs = np.asarray(lhs), np.asarray(rhs)
        return np.asarray(fn(lhs, rhs)).astype(out_dtype or lhs.dtype, copy=False)

    return run


def _broadcast_shape_func(*shapes, **_attrs):
    shapes = [tuple(int(d) for d in s) for s in shapes]
    try:
        return [np.array(np.broadcast_shapes(*shapes), dtype=np.int64)]
    except ValueError:
        raise ShapeError(f"the shapes {', '.join(map(str, shapes))} do not broadcast together (each dim must "
                         f"be equal or 1)") from None


_builders = {
    name: register(
        name, args=("lhs", "rhs"), type_rel=_binary_rel(name, out_dtype, dtypes),
        shape_func=_broadcast_shape_func, reference=_binary_reference(fn, out_dtype),
        pattern=OpPattern.BROADCAST, doc=f"Elementwise {name} with numpy broadcasting.",
    )
    for name, (fn, out_dtype, dtypes) in BINARY.items()
}
add = _builders["add"]
subtract = _builders["subtract"]
multiply = _builders["multiply"]
divide = _builders["divide"]
power = _builders["power"]
mod = _builders["mod"]
fmod = _builders["fmod"]
maximum = _builders["maximum"]
minimum = _builders["minimum"]
equal = _builders["equal"]
not_equal = _builders["not_equal"]
less = _builders["less"]
less_equal = _builders["less_equal"]
greater = _builders["greater"]
greater_equal = _builders["greater_equal"]
logical_and = _builders["logical_and"]
logical_or = _builders["logical_or"]
bitwise_and, bitwise_or, bitwise_xor = _builders["bitwise_and"], _builders["bitwise_or"], _builders["bitwise_xor"]
left_shift, right_shift = _builders["left_shift"], _builders["right_shift"]


def _where_rel(cond, x, y):
    cond = tensor_arg("where", "cond", cond, ("bool",))
    x, y = tensor_arg("where", "x", x), tensor_arg("where", "y", y)
    dtype = same_dtype("where", ("x", x), ("y", y))
    return TensorType(broadcast_shapes("where", ("cond", cond), ("x", x), ("y", y)), dtype)


where = register(
    "where", args=("cond", "x", "y"), type_rel=_where_rel, shape_func=_broadcast_shape_func,
    reference=lambda cond, x, y: np.where(cond, x, y), pattern=OpPattern.BROADCAST,
    doc="x where cond is true, else y; all three broadcast.",
)
