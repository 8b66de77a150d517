"""Values held in VM registers besides tensors, their conversion for users, and input checking.

Registers hold numpy arrays (tensors; 0-d int64 arrays for scalars), ``Storage`` blocks, ``ADT``
values (tuples are tag 0) and ``Closure`` values.

Declared input types (``metadata["inputs"][function name]``, one entry per parameter) in JSON:
- a tensor: ``{"shape": [3, null], "dtype": "float32"}`` (``null`` is ``Any``);
- a tuple: ``{"kind": "tuple", "fields": [type, ...]}`` (a Python tuple or a tag-0 ``ADT``);
- a constructor value: ``{"kind": "adt"}`` (optionally ``"name"``, for messages; a list-shaped ADT adds
  ``"list": {"cons": tag, "nil": tag, "elem": type}``, and a Python list is taken for it);
- anything: ``{"kind": "any"}``.
"""
from __future__ import annotations

import numpy as np

from ..dtypes import numpy_dtype
from ..errors import ShapeError
from ..errors import TypeError as NimbleTypeError


class ADT:
    """A constructor value: ``tag`` and a tuple of ``fields`` (tuples are tag 0)."""

    __slots__ = ("tag", "fields")

    def __init__(self, tag: int, fields: tuple):
        self.tag = tag
        self.fields = fields

    def __eq__(self, other):
        if not isinstance(other, ADT) or self.tag != other.tag or len(self.fields) != len(other.fields):
            return NotImplemented if not isinstance(other, ADT) else False
        return all(_values_equal(a, b) for a, b in zip(self.fields, other.fields))

    __hash__ = None

    def __repr__(self):
        return f"ADT(tag={self.tag}, fields={self.fields!r})"


class Closure:
    """A VM function ``func_index`` with ``captured`` values (passed before the call's arguments)."""

    __slots__ = ("func_index", "captured")

    def __init__(self, func_index: int, captured: tuple):
        self.func_index = func_index
        self.captured = captured

    def __repr__(self):
        return f"Closure(func_index={self.func_index}, captured={len(self.captured)} values)"


def _values_equal(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape and bool(np.all(a == b))
    return a == b


def to_python(value, ty: dict | None = None):
    """A VM value for users. Tensors stay numpy arrays; a value declared a tuple (``{"kind":
    "tuple"}``) becomes a Python tuple, one declared ``adt`` stays an ``ADT`` as it is; without a
    declared type, tag-0 ADTs are taken for tuples and other ADTs are left as they are."""
    if value.__class__ is not ADT:
        return value
    kind = (ty or {}).get("kind")
    if kind == "tuple" or (kind is None and value.tag == 0):
        field_types = (ty or {}).get("fields") or [None] * len(value.fields)
        return tuple(to_python(v, t) for v, t in zip(value.fields, field_types))
    return value


def _tensor_from(value, name: str, dtype: np.dtype | None) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value if value.flags.c_contiguous and type(value) is np.ndarray else np.asarray(value, order="C")
    if isinstance(value, (ADT, Closure, tuple)):
        raise NimbleTypeError(f"{name}: expected a tensor, got {type(value).__name__}")
    arr = np.asarray(value)
    if arr.dtype == object:
        raise NimbleTypeError(f"{name}: expected a tensor, got {type(value).__name__}")
    if dtype is not None and arr.dtype != dtype and np.can_cast(arr.dtype, dtype, "same_kind"):
        arr = arr.astype(dtype)  # a Python number or list takes the declared dtype
    return np.asarray(arr, order="C")


def _list_input(values: list, spec: dict, name: str) -> ADT:
    """A Python list as the VM's list ADT (``spec``: the cons and nil tags, the element type), each element checked."""
    out = ADT(int(spec["nil"]), ())
    cons = int(spec["cons"])
    for i in range(len(values) - 1, -1, -1):
        out = ADT(cons, (check_input(values[i], spec.get("elem"), f"{name}[{i}]"), out))
    return out


def check_input(value, ty: dict | None, name: str):
    """The register value for one input: checked against its declared type (when given)."""
    if ty is None or ty.get("kind") == "any":
        if isinstance(value, tuple):
            return ADT(0, tuple(check_input(v, None, f"{name}[{i}]") for i, v in enumerate(value)))
        if isinstance(value, (ADT, Closure)):
            return value
        return _tensor_from(value, name, None)
    kind = ty.get("kind", "tensor")
    if kind == "tuple":
        fields = value.fields if isinstance(value, ADT) and value.tag == 0 else value
        if not isinstance(fields, tuple):
            raise NimbleTypeError(f"{name}: expected a tuple, got {type(value).__name__}")
        want = ty.get("fields")
        if want is not None and len(want) != len(fields):
            raise NimbleTypeError(f"{name}: expected a tuple of {len(want)} fields, got {len(fields)}")
        want = want or [None] * len(fields)
        return ADT(0, tuple(check_input(v, t, f"{name}[{i}]") for i, (v, t) in enumerate(zip(fields, want))))
    if kind == "adt":
        if isinstance(value, list) and "list" in ty:
            return _list_input(value, ty["list"], name)
        value = from_constructor_value(value)
        if not isinstance(value, ADT):
            what = ty.get("name", "a constructor value")
            raise NimbleTypeError(f"{name}: expected {what} (a nimble.vm.ADT), got {type(value).__name__}")
        return value
    if kind != "tensor":
        raise NimbleTypeError(f"{name}: unknown declared input kind {kind!r}")
    dtype = numpy_dtype(ty["dtype"])
    arr = _tensor_from(value, name, dtype)
    if arr.dtype != dtype:
        raise NimbleTypeError(f"{name}: expected dtype {dtype}, got {arr.dtype}")
    shape = ty["shape"]
    if arr.ndim != len(shape):
        raise ShapeError(f"{name}: expected rank {len(shape)} (shape {_shape_text(shape)}), "
                         f"got rank {arr.ndim} (shape {arr.shape})")
    for k, (want, got) in enumerate(zip(shape, arr.shape)):
        if want is not None and want != got:
            raise ShapeError(f"{name}: dimension {k} must be {want} (shape {_shape_text(shape)}), "
                             f"got {got} (shape {arr.shape})")
    return arr


def _shape_text(shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def check_inputs(func_name: str, params: tuple, inputs: tuple, types: list | None) -> list:
    """Register values for a call of ``func_name``: count, dtype, rank and static dims checked."""
    if len(inputs) != len(params):
        if len(inputs) < len(params):
            missing = ", ".join(repr(p) for p in params[len(inputs):])
            raise NimbleTypeError(f"{func_name}: missing input {missing}; expected {len(params)} inputs "
                                  f"({', '.join(params)}), got {len(inputs)}")
        raise NimbleTypeError(f"{func_name}: expected {len(params)} inputs ({', '.join(params)}), got {len(inputs)}")
    types = types if types is not None else [None] * len(params)
    return [check_input(v, t, f"{func_name}: input {p!r} (#{i})")
            for i, (v, t, p) in enumerate(zip(inputs, types, params))]


def from_constructor_value(value):
    """The reference interpreter's ADT values (``nimble.ir.ConstructorValue``) as VM ``ADT``s."""
    from ..ir.values import ConstructorValue

    compound = (ConstructorValue, tuple)
    if not isinstance(value, compound):
        return value
    done: dict = {}  # id -> ADT; iterative, so a list of any length converts (no recursion limit)
    stack = [(value, False)]
    while stack:
        v, fields_done = stack.pop()
        if id(v) in done:
            continue
        fields = v.fields if isinstance(v, ConstructorValue) else v
        if not fields_done:
            stack.append((v, True))
            stack.extend((f, False) for f in fields if isinstance(f, compound) and id(f) not in done)
            continue
        tag = v.constructor.tag if isinstance(v, ConstructorValue) else 0
        done[id(v)] = ADT(tag, tuple(done[id(f)] if isinstance(f, compound) else f for f in fields))
    return done[id(value)]
