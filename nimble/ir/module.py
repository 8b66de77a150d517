"""ADT definitions and `IRModule`: the named functions and data types of one program."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import NimbleError, TypeError
from .expr import Constructor, Function, GlobalVar
from .types import ADTType, Type, TypeVar


@dataclass(frozen=True)
class TypeData:
    """An algebraic data type: `name[type_params] = constructors...`."""

    name: str
    type_params: tuple
    constructors: tuple

    @property
    def type(self) -> ADTType:
        """The ADT applied to its own type parameters (the result type of every constructor)."""
        return ADTType(self.name, self.type_params)

    def constructor(self, name: str) -> Constructor:
        for c in self.constructors:
            if c.name == name:
                return c
        raise NimbleError(f"ADT {self.name} has no constructor {name!r}; it has {[c.name for c in self.constructors]}")


def define_adt(name: str, type_params: tuple | list, constructors: dict) -> TypeData:
    """Make an ADT from `{constructor name: [field types]}`; fields may mention `ADTType(name, type_params)`."""
    params = tuple(TypeVar(p) if isinstance(p, str) else p for p in type_params)
    ctors = tuple(
        Constructor(cname, name, tuple(fields), tag) for tag, (cname, fields) in enumerate(constructors.items())
    )
    return TypeData(name, params, ctors)


class IRModule:
    """Global functions by name and the ADTs they use.

    A module is built up with `define` / `add_type`; passes take a module and return a new one.
    """

    def __init__(self, functions: dict | None = None, type_defs: dict | None = None):
        self.functions: dict[str, Function] = dict(functions or {})
        self.type_defs: dict[str, TypeData] = dict(type_defs or {})

    def define(self, name: str | GlobalVar, function: Function) -> GlobalVar:
        """Add (or replace) global function `name`; returns its `GlobalVar` for calls, including recursive ones."""
        if not isinstance(function, Function):
            raise TypeError(f"define({name!r}): expected a Function, got {type(function).__name__}")
        gv = name if isinstance(name, GlobalVar) else GlobalVar(name)
        self.functions[gv.name] = function
        return gv

    def add_type(self, type_data: TypeData) -> TypeData:
        """Add an ADT definition (its constructors become usable in this module)."""
        self.type_defs[type_data.name] = type_data
        return type_data

    def __getitem__(self, name: str | GlobalVar) -> Function:
        key = name.name if isinstance(name, GlobalVar) else name
        if key not in self.functions:
            raise NimbleError(f"module has no function {key!r}; it has {sorted(self.functions)}")
        return self.functions[key]

    def __contains__(self, name) -> bool:
        return (name.name if isinstance(name, GlobalVar) else name) in self.functions

    def global_var(self, name: str) -> GlobalVar:
        self[name]  # raises when missing
        return GlobalVar(name)

    def type_data(self, name: str) -> TypeData:
        if name not in self.type_defs:
            raise NimbleError(f"module has no data type {name!r}; it has {sorted(self.type_defs)}")
        return self.type_defs[name]

    def constructor(self, adt: str, name: str) -> Constructor:
        return self.type_data(adt).constructor(name)

    def copy(self) -> IRModule:
        return IRModule(self.functions, self.type_defs)

    def with_function(self, name: str, function: Function) -> IRModule:
        """A new module with `name` bound to `function` (the pass-friendly form of `define`)."""
        new = self.copy()
        new.define(name, function)
        return new

    def __repr__(self) -> str:
        from .printer import print_module

        return print_module(self)


def constructor_type(type_data: TypeData, constructor: Constructor) -> Type:
    """The polymorphic function type of a constructor: fn[params](fields) -> ADT[params]."""
    from .types import FuncType

    return FuncType(constructor.inputs, type_data.type, type_data.type_params)
