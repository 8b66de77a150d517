"""Run-time values of the reference interpreter besides numpy arrays (tensors) and Python tuples (tuples)."""
from __future__ import annotations

from dataclasses import dataclass

from .expr import Constructor, Function


@dataclass(frozen=True, eq=False)
class ConstructorValue:
    """A value of an ADT: the constructor that built it and its fields."""

    constructor: Constructor
    fields: tuple = ()

    def __repr__(self) -> str:
        if not self.fields:
            return self.constructor.name
        return f"{self.constructor.name}({', '.join(_short(f) for f in self.fields)})"


@dataclass(frozen=True, eq=False)
class Closure:
    """A function value: the function and the values of its free variables (by var id)."""

    function: Function
    env: dict

    def __repr__(self) -> str:
        return f"<closure of {len(self.function.params)} params>"


def _short(value) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"tensor{tuple(shape)}"
    return repr(value)
