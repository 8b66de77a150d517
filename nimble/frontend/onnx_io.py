"""Python values in and out of a model converted by `from_onnx`, sequences included.

A sequence input is given as a Python list (or tuple) of numpy arrays and becomes the prelude's `List` value; a
sequence output comes back from the VM as nested `Cons` / `Nil` constructor values and is turned into a Python list
of arrays. The VM checks tensors against the declared types but not the elements of a `List`, so `vm_inputs`
checks each element's dtype and rank here.

    mod = from_onnx(model)
    vm = nimble.VirtualMachine(nimble.compile(mod))
    outputs = python_outputs(vm.run(*vm_inputs(mod, [xs, y])))
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..errors import TypeError as NimbleTypeError
from ..ir.prelude import Cons, Nil
from ..ir.types import ADTType, TensorType
from ..vm.values import ADT


def sequence_value(items, dtype: str, rank: int, name: str = "sequence"):
    """`items` (a list or tuple of arrays of `dtype` and `rank`) as a `List` value for the VM."""
    if not isinstance(items, (list, tuple)):
        raise NimbleTypeError(f"{name}: expected a sequence (a list of {dtype} arrays of rank {rank}), "
                              f"got {type(items).__name__}")
    arrays = []
    for k, item in enumerate(items):
        arr = np.asarray(item)
        if arr.dtype != np.dtype(dtype):
            if arr.dtype == object or not np.can_cast(arr.dtype, dtype, "same_kind") or isinstance(item, np.ndarray):
                raise NimbleTypeError(f"{name}[{k}]: expected dtype {dtype}, got {arr.dtype}")
            arr = arr.astype(dtype)
        if arr.ndim != rank:
            raise ShapeError(f"{name}[{k}]: expected rank {rank}, got shape {arr.shape}")
        arrays.append(np.ascontiguousarray(arr))
    value = ADT(Nil.tag, ())  # the VM's own values, built without recursion (a long list is a deep tree)
    for arr in reversed(arrays):
        value = ADT(Cons.tag, (arr, value))
    return value


def vm_inputs(mod, inputs) -> list:
    """`inputs` of `mod`'s `main` (in parameter order) with each sequence given as a Python list converted."""
    params = mod["main"].params
    if len(inputs) != len(params):
        raise NimbleTypeError(f"main: expected {len(params)} inputs ({', '.join(p.name for p in params)}), "
                              f"got {len(inputs)}")
    out = []
    for p, value in zip(params, inputs):
        t = p.type_annotation
        if isinstance(t, ADTType) and t.name == "List" and isinstance(t.args[0], TensorType):
            elem = t.args[0]
            out.append(sequence_value(value, elem.dtype, elem.ndim, f"main: input {p.name!r}"))
        else:
            out.append(value)
    return out


def python_outputs(result):
    """A VM result with every `List` value (nested `Cons` / `Nil`) as a Python list; tuples stay tuples."""
    if isinstance(result, tuple):
        return tuple(python_outputs(r) for r in result)
    tag = getattr(result, "tag", None)
    if tag is None or not hasattr(result, "fields"):
        return result
    items = []
    while tag == Cons.tag and len(result.fields) == 2:
        items.append(python_outputs(result.fields[0]))
        result = result.fields[1]
        tag = getattr(result, "tag", None)
    if tag != Nil.tag or result.fields:
        raise NimbleTypeError(f"a VM result holds a constructor value that is not a List (tag {tag})")
    return items
