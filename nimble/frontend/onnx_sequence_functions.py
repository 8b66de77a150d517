"""The recursive global functions that ONNX sequence operators call (`onnx_ops_sequence`), over the prelude's `List`.

Each `*_fn(module, opset, ...)` returns the `Function` to define; positions arrive checked and normalized (by
`take(arange(n), pos, mode="raise")` at the call site), so the clauses a correct position never reaches are left
out of the matches (reaching one would be a VM error "no match clause matched", never a wrong element).

    onnx_seq_length(xs)          number of elements (rank-0 int64)
    onnx_seq_nth(xs, i)          element i, 0 <= i < length
    onnx_seq_insert(xs, i, v)    v inserted before element i; a position that never counts down to 0 (-1) appends
    onnx_seq_erase(xs, i)        element i removed
    onnx_seq_concat_*(xs, _)     the elements concatenated along an axis (each first given a new axis, or not),
                                 with onnx_seq_concat_*_pairs / _expand / _all
    onnx_seq_split_*(x, count, k, ...)     pieces k.. count - 1 of x along an axis (of given sizes, or of 1)
"""
from __future__ import annotations

import numpy as np

from ..ir.builder import if_, match, pctor
from ..ir.expr import Call, Function, GlobalVar, Var
from ..ir.prelude import Cons, Nil, list_type
from ..ir.types import AnyDim, TensorType, TypeVar
from .onnx_graph import GraphConverter
from .onnx_values import Value

LENGTH, NTH, INSERT, ERASE = "onnx_seq_length", "onnx_seq_nth", "onnx_seq_insert", "onnx_seq_erase"
_A = TypeVar("a")
_I64 = np.int64
_INDEX = TensorType((), "int64")


def _val(var: Var) -> Value:
    return Value(var, var.type_annotation)


def _is_zero_and_previous(g: GraphConverter, i: Var) -> tuple:
    """(i == 0 as a scalar bool, i - 1) bound in `g`."""
    is_zero = g.plain(g.emit("equal", _val(i), np.array(0, _I64)))
    return is_zero, g.emit("subtract", _val(i), np.array(1, _I64))


def length_fn(module, opset) -> Function:
    xs, head, tail = Var("xs", list_type(_A)), Var("head"), Var("tail")
    g = GraphConverter(module, opset)
    rest = g.bind(GlobalVar(LENGTH)(tail), _INDEX, "rest")
    cons = g.builder.ret(g.emit("add", rest, np.array(1, _I64)).expr)
    body = match(xs, [(pctor(Cons, head, tail), cons), (pctor(Nil), np.array(0, _I64))])
    return Function((xs,), body, _INDEX, (_A,))


def nth_fn(module, opset) -> Function:
    xs, i, head, tail = Var("xs", list_type(_A)), Var("i", _INDEX), Var("head"), Var("tail")
    g = GraphConverter(module, opset)
    is_zero, previous = _is_zero_and_previous(g, i)
    cons = g.builder.ret(if_(is_zero.expr, head, GlobalVar(NTH)(tail, previous.expr)))
    return Function((xs, i), match(xs, [(pctor(Cons, head, tail), cons)]), _A, (_A,))


def insert_fn(module, opset) -> Function:
    xs, i, v, head, tail = Var("xs", list_type(_A)), Var("i", _INDEX), Var("v", _A), Var("head"), Var("tail")
    g = GraphConverter(module, opset)
    is_zero, previous = _is_zero_and_previous(g, i)
    walk = match(xs, [(pctor(Cons, head, tail), Cons(head, GlobalVar(INSERT)(tail, previous.expr, v))),
                      (pctor(Nil), Cons(v, Call(Nil, ())))])
    body = g.builder.ret(if_(is_zero.expr, Cons(v, xs), walk))
    return Function((xs, i, v), body, list_type(_A), (_A,))


def erase_fn(module, opset) -> Function:
    xs, i, head, tail = Var("xs", list_type(_A)), Var("i", _INDEX), Var("head"), Var("tail")
    g = GraphConverter(module, opset)
    is_zero, previous = _is_zero_and_previous(g, i)
    cons = g.builder.ret(if_(is_zero.expr, tail, Cons(head, GlobalVar(ERASE)(tail, previous.expr))))
    return Function((xs, i), match(xs, [(pctor(Cons, head, tail), cons)]), list_type(_A), (_A,))


def concat_fn(module, opset, name: str, elem: TensorType, axis: int, new_axis: bool) -> Function:
    """`name(xs, checked)`: the elements of a non-empty `xs` concatenated along `axis`, by rounds that concatenate
    neighbours (`name_pairs`), so each element is copied about log2(n) times, not n times. `checked` is the result
    of the caller's check that `xs` is not empty (unused here: taking it orders the check first). With `new_axis`,
    each element first gets a new axis there (`name_expand`)."""
    out = TensorType((AnyDim(),) * (elem.ndim + (1 if new_axis else 0)), elem.dtype)
    pairs, expand, whole = GlobalVar(f"{name}_pairs"), GlobalVar(f"{name}_expand"), GlobalVar(f"{name}_all")
    module.define(pairs, _concat_pairs(module, opset, pairs, out, axis))
    if new_axis:
        module.define(expand, _expand_each(module, opset, expand, elem, out, axis))
    xs, head, tail = Var("xs", list_type(out)), Var("head", out), Var("tail", list_type(out))
    checked = Var("checked", _INDEX)
    module.define(whole, Function((xs,), match(xs, [(pctor(Cons, head, tail), match(tail, [
        (pctor(Nil), head), (None, whole(pairs(xs)))]))]), out))
    given = Var("xs", list_type(elem))
    return Function((given, checked), whole(expand(given) if new_axis else given), out)


def _concat_pairs(module, opset, pairs: GlobalVar, out: TensorType, axis: int) -> Function:
    """[a, b, c, d, e] -> [a ++ b, c ++ d, e]."""
    xs, first, second = Var("xs", list_type(out)), Var("first", out), Var("second", out)
    tail, rest = Var("tail", list_type(out)), Var("rest", list_type(out))
    g = GraphConverter(module, opset)
    joined = g.concat([_val(first), _val(second)], axis)
    joined = g.bind(joined.expr, out, "joined") if joined.type != out else joined
    both = g.builder.ret(Cons(joined.expr, pairs(rest)))
    body = match(xs, [(pctor(Cons, first, tail), match(tail, [(pctor(Cons, second, rest), both), (pctor(Nil), xs)])),
                      (pctor(Nil), xs)])
    return Function((xs,), body, list_type(out))


def _expand_each(module, opset, expand: GlobalVar, elem: TensorType, out: TensorType, axis: int) -> Function:
    xs, head, tail = Var("xs", list_type(elem)), Var("head", elem), Var("tail", list_type(elem))
    g = GraphConverter(module, opset)
    part = g.emit("expand_dims", _val(head), axis=axis)
    part = g.bind(part.expr, out, "part") if part.type != out else part
    cons = g.builder.ret(Cons(part.expr, expand(tail)))
    return Function((xs,), match(xs, [(pctor(Cons, head, tail), cons), (pctor(Nil), Call(Nil, ()))]), list_type(out))


def split_fn(module, opset, name: str, x_type: TensorType, axis: int, keepdims: bool, unit: bool) -> Function:
    """`name(x, count, k, offset, sizes)`: the pieces k, k + 1, ... < count of `x` along `axis`, the k-th at
    `offset`, of sizes `sizes`; with `unit`, `name(x, count, k)`: pieces of size 1, taken by one index (`keepdims`
    False: without that axis)."""
    elem = x_type if keepdims else TensorType(x_type.shape[:axis] + x_type.shape[axis + 1:], x_type.dtype)
    x, count, k = Var("x", x_type), Var("count", _INDEX), Var("k", _INDEX)
    offset, sizes = Var("offset", _INDEX), Var("sizes", TensorType((AnyDim(),), "int64"))
    params = (x, count, k) if unit else (x, count, k, offset, sizes)
    g = GraphConverter(module, opset)
    more = g.plain(g.emit("less", _val(k), _val(count)))
    step = g.child()
    following = step.emit("add", _val(k), np.array(1, _I64))
    if unit:
        piece = step.emit("take", _val(x), _val(k), axis=axis, mode="raise")
        piece = step.emit("expand_dims", piece, axis=axis) if keepdims else piece
        rest = GlobalVar(name)(x, count, following.expr)
    else:
        end = step.emit("add", _val(offset), step.emit("take", _val(sizes), _val(k), axis=0, mode="raise"))
        positions = step.emit("arange", _val(offset), end, np.array(1, _I64), dtype="int64")
        piece = step.emit("take", _val(x), positions, axis=axis, mode="raise")
        rest = GlobalVar(name)(x, count, following.expr, end.expr, sizes)
    piece = step.bind(piece.expr, elem, "piece") if piece.type != elem else piece
    then = step.builder.ret(Cons(piece.expr, rest))
    body = g.builder.ret(if_(more.expr, then, Call(Nil, ())))
    return Function(params, body, list_type(elem))
