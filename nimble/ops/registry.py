"""The operator registry: each operator is registered once with everything later stages need.

An `OpDef` holds the operator's argument names, attribute defaults, type relation, shape function (and its kind),
numpy reference implementation and fusion pattern. `register` returns a builder: calling it with expressions
(or numbers / numpy arrays, which become constants) and attributes makes a `Call` of the operator.

Conventions (every stage relies on them):
- type relation: `type_rel(*arg_types, **attrs) -> Type`; raises `ShapeError` / `TypeError` naming the argument.
- shape function: `shape_func(*inputs, **attrs) -> list[np.ndarray]`, one int64 shape per output tensor (a tuple
  output is flattened). Input i is its shape as an int64 array, or its value when `i in value_inputs`
  (data-dependent ops); a tuple-typed input is a list of those.
- upper-bound ops (`nonzero`): `shape_func` gives the exact shape from values; `upper_bound(*shapes, **attrs)`, from
  input shapes, an allocation shape each output's real one fits in (its kernel writes the real shape).
- reference: `reference(*values, **attrs) -> np.ndarray | tuple`, on numpy arrays.
"""
from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import NimbleError, TypeError
from ..ir.expr import Attrs, Call, Op, as_expr
from ..ir.op_table import OPERATORS, get_op, list_ops  # noqa: F401  (re-exported)


class OpPattern(enum.IntEnum):
    """How an operator fuses (TVM's values): lower patterns fuse into higher ones."""

    ELEMWISE = 0
    BROADCAST = 1
    INJECTIVE = 2
    COMM_REDUCE = 3
    OUT_ELEMWISE_FUSABLE = 4
    OPAQUE = 8


class ShapeFuncKind(enum.Enum):
    """What an operator's shape function reads."""

    DATA_INDEPENDENT = "data_independent"
    DATA_DEPENDENT = "data_dependent"
    UPPER_BOUND = "upper_bound"  # the exact shape is data (``shape_func``); ``upper_bound`` sizes the allocation


REQUIRED = object()


@dataclass(frozen=True)
class OpDef:
    """Everything known about one operator."""

    name: str
    arg_names: tuple
    attr_defaults: tuple  # (name, default or REQUIRED) pairs
    type_rel: Callable
    shape_func: Callable
    shape_kind: ShapeFuncKind
    reference: Callable
    pattern: OpPattern
    value_inputs: tuple = ()
    doc: str = ""
    upper_bound: Callable | None = None  # UPPER_BOUND ops: shape_func's signature on input shapes -> allocation bounds

    def full_attrs(self, attrs: Attrs | dict) -> dict:
        """The call's attributes with defaults filled in."""
        given = attrs.as_dict() if isinstance(attrs, Attrs) else dict(attrs)
        out = {}
        for name, default in self.attr_defaults:
            if name in given:
                out[name] = given[name]
            elif default is REQUIRED:
                raise TypeError(f"{self.name}: attribute {name!r} is required")
            else:
                out[name] = default
        return out

    def infer(self, arg_types: list, attrs: Attrs | dict):
        """The output type for these argument types (the op's type relation)."""
        return self.type_rel(*arg_types, **self.full_attrs(attrs))

    def evaluate(self, values: list, attrs: Attrs | dict):
        """Run the numpy reference."""
        return self.reference(*values, **self.full_attrs(attrs))

    def output_shapes(self, inputs: list, attrs: Attrs | dict) -> list[np.ndarray]:
        """Run the shape function (see the module docstring for what `inputs` holds)."""
        return [np.asarray(s, dtype=np.int64) for s in self.shape_func(*inputs, **self.full_attrs(attrs))]

    def output_bounds(self, shapes: list, attrs: Attrs | dict) -> list[np.ndarray]:
        """An upper-bound op's allocation shapes from its input shapes (each output's real shape fits in them)."""
        if self.upper_bound is None:
            raise NimbleError(f"operator {self.name!r} has no upper-bound shape function ({self.shape_kind.value})")
        return [np.asarray(s, dtype=np.int64) for s in self.upper_bound(*shapes, **self.full_attrs(attrs))]


_REGISTRY: dict[str, OpDef] = OPERATORS  # the model IR's table (nimble.ir.op_table), filled here


def register(
    name: str,
    *,
    args: tuple,
    type_rel: Callable,
    shape_func: Callable,
    reference: Callable,
    pattern: OpPattern,
    shape_kind: ShapeFuncKind = ShapeFuncKind.DATA_INDEPENDENT,
    attrs: dict | None = None,
    value_inputs: tuple = (),
    doc: str = "",
    upper_bound: Callable | None = None,
) -> Callable[..., Call]:
    """Register operator `name` and return its builder `f(*args, **attrs) -> Call`."""
    if name in _REGISTRY:
        raise NimbleError(f"operator {name!r} is already registered")
    opdef = OpDef(
        name, tuple(args), tuple((attrs or {}).items()), type_rel, shape_func, shape_kind, reference, pattern,
        tuple(value_inputs), doc, upper_bound,
    )
    if (shape_kind is ShapeFuncKind.UPPER_BOUND) != (upper_bound is not None):
        raise NimbleError(f"operator {name!r}: an upper_bound function goes with shape_kind UPPER_BOUND, and only there")
    _REGISTRY[name] = opdef
    attr_names = {a for a, _ in opdef.attr_defaults}

    def build(*call_args, **call_attrs) -> Call:
        if len(call_args) != len(opdef.arg_names):
            raise TypeError(
                f"{name} takes {len(opdef.arg_names)} arguments {opdef.arg_names}, got {len(call_args)}"
            )
        unknown = set(call_attrs) - attr_names
        if unknown:
            raise TypeError(f"{name} got unknown attributes {sorted(unknown)}; it takes {sorted(attr_names)}")
        opdef.full_attrs(call_attrs)  # raises early on a missing required attribute
        return Call(Op(name), tuple(as_expr(a) for a in call_args), Attrs.of(call_attrs))

    build.__name__ = name.replace(".", "_")
    build.__qualname__ = build.__name__
    build.__doc__ = doc or f"Call operator {name}{tuple(opdef.arg_names)}."
    build.op = opdef
    return build
