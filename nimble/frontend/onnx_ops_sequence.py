"""Converters of ONNX's sequence operators. A sequence is the prelude's `List` of tensors, typed
`List[Tensor[(?, ..., ?), dtype]]`: ONNX lets the elements of one sequence differ in every dim, so each dim is `Any`;
rank and dtype are shared.

A sequence built at conversion time (SequenceEmpty, SequenceConstruct, and inserts / erases at constant positions
into one) keeps its elements (`SeqValue.items`), so SequenceAt at a constant index and SequenceLength of it need no
run-time walk. Otherwise the converters call small recursive global functions added to the module once
(`onnx_sequence_functions`): length, nth, insert and erase, polymorphic in the element type, and concatenation and
splitting, one per dtype / rank / axis. SequenceMap, a body run per element, is in `onnx_control`. Run-time
positions are checked and normalized by `take(arange(n), pos, mode="raise")`: a position out of range raises
`nimble.OutOfRangeError` when the model runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.builder import if_
from ..ir.expr import Call, GlobalVar
from ..ir.prelude import LIST, Cons, Nil, list_type
from ..ir.types import ADTType, AnyDim, TensorType, Type
from .onnx_graph import ConversionError, MalformedNodeError, converter
from .onnx_values import Value, const_value
from . import onnx_sequence_functions as functions

_I64 = np.int64


@dataclass(frozen=True)
class Unranked(Type):
    """The element type of an empty sequence whose elements' rank is not known yet (SequenceEmpty); frontend only."""

    dtype: str


@dataclass(frozen=True)
class SeqValue(Value):
    """A sequence; `items` holds its elements when they are known at conversion time."""

    items: tuple | None = None


def known_items(v: Value):
    """The elements of sequence `v` when known at conversion time, else None."""
    return getattr(v, "items", None)


def sequence_type(rank: int, dtype: str) -> ADTType:
    """The IR type of a sequence of rank-`rank` tensors of `dtype`, every dim `Any`."""
    return list_type(TensorType((AnyDim(),) * rank, dtype))


def is_sequence(v) -> bool:
    return isinstance(v, Value) and isinstance(v.type, ADTType) and v.type.name == "List"


def element_type(v: Value):
    """The element type of sequence `v` (a `TensorType` with `Any` dims, or `Unranked`)."""
    if not is_sequence(v):
        raise ConversionError(f"expected a sequence, got {v.type!r}")
    return v.type.args[0]


def join_sequence_types(a: ADTType, b: ADTType) -> ADTType:
    """The type of a value that is `a` or `b` (the branches of an If, a Loop's carried sequence)."""
    ea, eb = a.args[0], b.args[0]
    if isinstance(ea, Unranked) or isinstance(eb, Unranked):
        known = eb if isinstance(ea, Unranked) else ea
        if known.dtype != (ea if known is eb else eb).dtype:
            raise ConversionError(f"sequences of {ea.dtype} and {eb.dtype}")
        return list_type(known)
    if ea.dtype != eb.dtype or ea.ndim != eb.ndim:
        raise ConversionError(f"sequences of {ea!r} and {eb!r}")
    return a


def typed_sequence(ctx, v: Value, elem: TensorType) -> Value:
    """`v` as an IR value of type `List[elem]` (an empty sequence of unknown rank takes `elem`)."""
    if isinstance(element_type(v), Unranked):
        return _bind(ctx, Call(Nil, ()), list_type(elem), "seq_empty", items=())
    return v


def _bind(ctx, expr, type_: ADTType, hint: str, items: tuple | None = None) -> SeqValue:
    """`expr` bound to a fresh variable of sequence type `type_`."""
    return SeqValue(ctx.bind(expr, type_, hint).expr, type_, items=items)


def graph_output(ctx, v: Value) -> Value:
    """`v` ready to leave a graph: an empty sequence of unknown rank typed (as rank 0: it has no elements)."""
    if is_sequence(v) and isinstance(element_type(v), Unranked):
        return typed_sequence(ctx, v, TensorType((), element_type(v).dtype))
    return v


def static_sequence(ctx, items: list, elem) -> SeqValue:
    """A sequence of the Values `items`, bound once."""
    ctx.module.add_type(LIST)
    if not items:
        if isinstance(elem, Unranked):
            return SeqValue(Call(Nil, ()), list_type(elem), items=())
        return _bind(ctx, Call(Nil, ()), list_type(elem), "seq_empty", items=())
    expr = Call(Nil, ())
    for item in reversed(items):  # each element typed with `Any` dims (they may differ from element to element)
        expr = Call(Cons, (item.expr if item.type == elem else ctx.bind(item.expr, elem, "elem").expr, expr))
    return _bind(ctx, expr, list_type(elem), "seq", items=tuple(items))


def sequence_element(ctx, v: Value, elem=None) -> tuple:
    """(`v` unboxed, the sequence's element type: `v`'s rank and dtype, every dim `Any`)."""
    if v is None or is_sequence(v) or not isinstance(v.type, TensorType):
        raise ConversionError(f"a sequence element must be a tensor, got {None if v is None else v.type!r}")
    loose = TensorType((AnyDim(),) * v.ndim, v.dtype)
    if elem is not None and (elem.dtype != v.dtype or (isinstance(elem, TensorType) and elem.ndim != v.ndim)):
        raise ConversionError(f"a tensor {v.type!r} cannot join a sequence of {elem!r}")
    return ctx.plain(v), loose


def _helper(ctx, name: str, make) -> GlobalVar:
    """The global function `name`, defined by `make(ctx.module)` the first time it is needed."""
    if name not in ctx.module:
        ctx.module.add_type(LIST)
        ctx.module.define(name, make(ctx.module, ctx.opset))
    return GlobalVar(name)


def _scalar(ctx, v: Value, what: str) -> Value:
    if v.ndim > 1 or int(np.prod([d for d in v.shape if isinstance(d, int)])) != 1 or v.dtype not in ("int32", "int64"):
        raise MalformedNodeError(f"{what} must be a 1-element int32 / int64 tensor, got {v.type!r}")
    if v.is_const:
        return const_value(np.asarray(v.const, _I64).reshape(()))
    v = ctx.emit("reshape", v, newshape=()) if v.ndim else v
    return ctx.emit("cast", v, dtype="int64") if v.dtype != "int64" else v


def _const_position(pos: Value | None, n: int, last: int, what: str) -> int | None:
    """A constant position in [-n, n + last) normalized to [0, n + last); None when `pos` is not constant."""
    if pos is None or not pos.is_const:
        return None
    p = int(np.asarray(pos.const).reshape(-1)[0])
    if not -n <= p < n + last:
        raise MalformedNodeError(f"{what} {p} is out of range for a sequence of {n} elements")
    return p + n if p < 0 else p


def length(ctx, seq: Value) -> Value:
    """The number of elements of `seq` as a rank-0 int64 value (a constant when its elements are known)."""
    if isinstance(seq, SeqValue) and known_items(seq) is not None:
        return const_value(np.array(len(seq.items), _I64))
    gv = _helper(ctx, functions.LENGTH, functions.length_fn)
    return ctx.bind(gv(seq.expr), TensorType((), "int64"), "seq_len")


def checked_position(ctx, pos: Value, count: Value) -> Value:
    """`pos` in [-count, count) normalized to [0, count); else `OutOfRangeError` at run time."""
    positions = ctx.emit("arange", np.array(0, _I64), count, np.array(1, _I64), dtype="int64")
    return ctx.emit("take", positions, pos, axis=0, mode="raise")


# ---- construction ------------------------------------------------------------------------------------------
def constant_sequence(ctx, items, name: str) -> SeqValue:
    """A graph input bound to a constant list of arrays (`from_onnx(constants=...)`): its elements known."""
    if not isinstance(items, (list, tuple)):
        raise ConversionError(f"constants[{name!r}]: the input is a sequence; expected a list of arrays, "
                              f"got {type(items).__name__}")
    values = [const_value(np.asarray(a)) for a in items]
    if not values:
        raise ConversionError(f"constants[{name!r}]: an empty list has no element type; leave the input unbound")
    elem = sequence_element(ctx, values[0])[1]
    return static_sequence(ctx, [sequence_element(ctx, v, elem)[0] for v in values], elem)

@converter("SequenceEmpty")
def sequence_empty(ctx, node, inputs, attrs):
    from onnx import helper

    dtype = helper.tensor_dtype_to_np_dtype(int(attrs.get("dtype", 1))).name
    return [static_sequence(ctx, [], Unranked(dtype))]


@converter("SequenceConstruct")
def sequence_construct(ctx, node, inputs, attrs):
    first, elem = sequence_element(ctx, inputs[0])
    items = [first] + [sequence_element(ctx, v, elem)[0] for v in inputs[1:]]
    return [static_sequence(ctx, items, elem)]


@converter("SequenceInsert")
def sequence_insert(ctx, node, inputs, attrs):
    seq, tensor = inputs[0], inputs[1]
    pos = inputs[2] if len(inputs) > 2 else None
    elem = element_type(seq)
    value, loose = sequence_element(ctx, tensor, elem)
    seq = typed_sequence(ctx, seq, loose)
    if known_items(seq) is not None and (pos is None or pos.is_const):
        n = len(seq.items)
        at = n if pos is None else _const_position(pos, n, 1, "SequenceInsert position")
        return [static_sequence(ctx, [*seq.items[:at], value, *seq.items[at:]], loose)]
    insert = _helper(ctx, functions.INSERT, functions.insert_fn)
    value = value if value.type == loose else ctx.bind(value.expr, loose, "elem")
    if pos is None:  # a position that never counts down to 0 inserts at the end
        at = const_value(np.array(-1, _I64))
    else:
        count = ctx.emit("add", length(ctx, seq), np.array(1, _I64))
        pos = _scalar(ctx, pos, "SequenceInsert position")  # -k is before the k-th last element: n + 1 - (k + 1)
        before = ctx.emit("subtract", pos, np.array(1, _I64))
        pos = ctx.emit("where", ctx.emit("less", pos, np.array(0, _I64)), before, pos)
        at = checked_position(ctx, pos, count)
    return [_bind(ctx, insert(seq.expr, at.expr, value.expr), seq.type, "seq_insert")]


@converter("SequenceErase")
def sequence_erase(ctx, node, inputs, attrs):
    seq = inputs[0]
    pos = inputs[1] if len(inputs) > 1 else const_value(np.array(-1, _I64))
    if isinstance(element_type(seq), Unranked):
        raise MalformedNodeError("SequenceErase of an empty sequence")
    if known_items(seq) is not None and pos.is_const:
        at = _const_position(pos, len(seq.items), 0, "SequenceErase position")
        return [static_sequence(ctx, [*seq.items[:at], *seq.items[at + 1:]], element_type(seq))]
    at = checked_position(ctx, _scalar(ctx, pos, "SequenceErase position"), length(ctx, seq))
    erase = _helper(ctx, functions.ERASE, functions.erase_fn)
    return [_bind(ctx, erase(seq.expr, at.expr), seq.type, "seq_erase")]


# ---- reading -----------------------------------------------------------------------------------------------
@converter("SequenceAt")
def sequence_at(ctx, node, inputs, attrs):
    seq, pos = inputs
    elem = element_type(seq)
    if isinstance(elem, Unranked):
        raise MalformedNodeError("SequenceAt of an empty sequence")
    if known_items(seq) is not None and pos.is_const:
        item = seq.items[_const_position(pos, len(seq.items), 0, "SequenceAt position")]
        return [item]
    at = checked_position(ctx, _scalar(ctx, pos, "SequenceAt position"), length(ctx, seq))
    nth = _helper(ctx, functions.NTH, functions.nth_fn)
    return [ctx.bind(nth(seq.expr, at.expr), elem, "seq_at")]


@converter("SequenceLength")
def sequence_length(ctx, node, inputs, attrs):
    return [length(ctx, inputs[0])]


@converter("ConcatFromSequence")
def concat_from_sequence(ctx, node, inputs, attrs):
    seq = inputs[0]
    elem = element_type(seq)
    if isinstance(elem, Unranked):
        raise MalformedNodeError("ConcatFromSequence of an empty sequence")
    new_axis = int(attrs.get("new_axis", 0))
    rank = elem.ndim + (1 if new_axis else 0)
    if "axis" not in attrs:
        raise MalformedNodeError("ConcatFromSequence needs the attribute 'axis'")
    axis = int(attrs["axis"])
    if not -rank <= axis < rank:
        raise MalformedNodeError(f"axis {axis} is out of range for rank {rank}")
    axis %= rank
    out = TensorType((AnyDim(),) * rank, elem.dtype)
    if known_items(seq) is not None:
        parts = [ctx.emit("expand_dims", v, axis=axis) if new_axis else v for v in seq.items]
        return [ctx.concat(parts, axis)]
    name = f"onnx_seq_concat_{elem.dtype}_r{elem.ndim}_a{axis}{'_new' if new_axis else ''}"
    gv = _helper(ctx, name, lambda mod, opset: functions.concat_fn(mod, opset, name, elem, axis, bool(new_axis)))
    return [ctx.bind(gv(seq.expr, _nonempty(ctx, seq).expr), out, "concat")]


def _nonempty(ctx, seq: Value) -> Value:
    """0, after a run-time check that `seq` has elements (an index 1 into a 1-element table when it has none); the
    concatenation takes it as an argument, so the check runs first."""
    empty = ctx.emit("cast", ctx.emit("equal", length(ctx, seq), np.array(0, _I64)), dtype="int64")
    return ctx.plain(ctx.emit("take", np.zeros(1, _I64), empty, axis=0, mode="raise"))


@converter("SplitToSequence")
def split_to_sequence(ctx, node, inputs, attrs):
    x = inputs[0]
    split = inputs[1] if len(inputs) > 1 and inputs[1] is not None else None
    if is_sequence(x) or x.ndim == 0:
        raise MalformedNodeError(f"the input must be a tensor of rank >= 1, got {x.type!r}")
    axis = int(attrs.get("axis", 0))
    if not -x.ndim <= axis < x.ndim:
        raise MalformedNodeError(f"axis {axis} is out of range for rank {x.ndim}")
    axis %= x.ndim
    keep = split is not None or bool(attrs.get("keepdims", 1))
    dim = x.shape[axis]
    dim = (const_value(np.array(dim, _I64)) if isinstance(dim, int)
           else ctx.emit("take", ctx.emit("shape_of", x), np.array(axis, _I64), axis=0))
    x = ctx.plain(x)
    if split is None:
        return [_split_walk(ctx, x, axis, keep, dim)]
    if split.ndim == 0:
        return [_split_evenly(ctx, x, axis, dim, split)]
    if split.ndim != 1:
        raise MalformedNodeError(f"split must be a scalar or a 1-D tensor, got {split.type!r}")
    sizes = ctx.emit("cast", split, dtype="int64") if split.dtype != "int64" else split
    total = ctx.emit("sum", sizes, axis=None, keepdims=False)
    bad = ctx.emit("cast", ctx.emit("not_equal", total, dim), dtype="int64")
    sizes = ctx.emit("add", sizes, ctx.emit("take", np.zeros(1, _I64), bad, axis=0, mode="raise"))
    count = ctx.emit("take", ctx.emit("shape_of", sizes), np.array(0, _I64), axis=0)
    return [_split_walk(ctx, x, axis, True, count, sizes)]


def _split_walk(ctx, x: Value, axis: int, keep: bool, count: Value, sizes: Value | None = None) -> SeqValue:
    """The `count` pieces of `x` along `axis`: of `sizes` (a run-time `arange` a piece), or of size 1 (one scalar
    `take` a piece; `keep` False: without the axis)."""
    loose = TensorType((AnyDim(),) * x.ndim, x.dtype)
    unit = sizes is None
    name = f"onnx_seq_split_{x.dtype}_r{x.ndim}_a{axis}{'_unit' if unit else ''}{'' if keep else '_squeeze'}"
    gv = _helper(ctx, name, lambda mod, opset: functions.split_fn(mod, opset, name, loose, axis, keep, unit))
    elem = loose if keep else TensorType((AnyDim(),) * (x.ndim - 1), x.dtype)
    args = [x if x.type == loose else ctx.bind(x.expr, loose, "split_in"), ctx.plain(count),
            const_value(np.array(0, _I64))]
    if not unit:
        sizes = ctx.plain(sizes)
        args += [const_value(np.array(0, _I64)),
                 sizes if sizes.shape == (AnyDim(),) else ctx.bind(sizes.expr, TensorType((AnyDim(),), "int64"))]
    return _bind(ctx, gv(*[a.expr for a in args]), list_type(elem), "split")


def _split_evenly(ctx, x: Value, axis: int, dim: Value, split: Value) -> SeqValue:
    """Pieces of `split` along `axis` (the last one shorter when `split` does not divide the dim): the whole pieces
    as blocks of a reshape, walked one scalar `take` a block, then the rest appended when there is one."""
    step = ctx.emit("cast", split, dtype="int64") if split.dtype != "int64" else split
    whole = ctx.emit("divide", dim, step)
    cut = ctx.emit("multiply", whole, step)
    zero, one = np.array(0, _I64), np.array(1, _I64)
    head = ctx.emit("take", x, ctx.emit("arange", zero, cut, one, dtype="int64"), axis=axis, mode="raise")
    shape = ctx.emit("shape_of", head)
    parts = [ctx.emit("strided_slice", shape, begin=(0,), end=(axis,)) if axis else None,
             ctx.emit("reshape", whole, newshape=(1,)), ctx.emit("reshape", step, newshape=(1,)),
             ctx.emit("strided_slice", shape, begin=(axis + 1,), end=(x.ndim,)) if axis + 1 < x.ndim else None]
    blocks = ctx.emit("dyn.reshape", head, ctx.concat([p for p in parts if p is not None], 0),
                      type_=TensorType((AnyDim(),) * (x.ndim + 1), x.dtype))
    pieces = _split_walk(ctx, blocks, axis, False, whole)
    short = ctx.plain(ctx.emit("less", cut, dim))
    with_rest = ctx.child()
    rest = with_rest.emit("take", x, with_rest.emit("arange", cut, dim, one, dtype="int64"), axis=axis, mode="raise")
    rest, _ = sequence_element(with_rest, rest)
    rest = rest if rest.type == element_type(pieces) else with_rest.bind(rest.expr, element_type(pieces), "elem")
    insert = _helper(ctx, functions.INSERT, functions.insert_fn)
    appended = with_rest.builder.ret(insert(pieces.expr, const_value(np.array(-1, _I64)).expr, rest.expr))
    return _bind(ctx, if_(short.expr, appended, pieces.expr), pieces.type, "split")
