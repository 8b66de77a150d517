"""Converting one ONNX graph (the main graph or an If / Loop body) into nimble IR `let` bindings.

`GraphConverter` keeps the name -> `Value` environment and a `Builder`; every converted operator call goes through
`emit`, which folds calls whose arguments are all constants (so static shape subgraphs become constants) and
otherwise binds the call to a fresh variable with its inferred type. Operator converters live in the
`onnx_ops_*` modules and are found by `CONVERTERS[op_type]`.
"""
from __future__ import annotations

import itertools
import logging

import numpy as np

from ..errors import FormatError, NimbleError
from ..ir.builder import Builder
from ..ir.expr import Attrs, Call, Constant, Op, Tuple, TupleGetItem
from ..ir.types import TensorType, TupleType
from ..ops.registry import get_op
from .onnx_values import Value, const_value

log = logging.getLogger("nimble.frontend")

# op_type -> converter(ctx, node, inputs: list[Value | None], attrs: dict) -> list[Value]
CONVERTERS: dict = {}


class UnsupportedOperatorError(NimbleError, NotImplementedError):
    """The model uses ONNX operators (or operator forms) that the frontend cannot convert."""


class ConversionError(NimbleError, ValueError):
    """One node could not be converted: an attribute or input form nimble has no operator for."""


class MalformedNodeError(ConversionError, FormatError):
    """A node breaks the ONNX spec (an axis out of range, a perm that permutes nothing, inputs
    missing): the model is malformed."""


def converter(*op_types: str):
    """Register `fn` as the converter of each ONNX `op_type`."""

    def register(fn):
        for op_type in op_types:
            CONVERTERS[op_type] = fn
        return fn

    return register


_names = itertools.count()


def fresh(hint: str) -> str:
    safe = "".join(c if c.isalnum() or c == "_" else "_" for c in hint) or "t"
    return f"{safe}_{next(_names)}"


def node_attrs(node) -> dict:
    """A node's attributes as Python values (tensors as numpy arrays, graphs as GraphProto)."""
    from onnx import helper, numpy_helper

    out = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if a.type == a.TENSOR:
            try:
                value = numpy_helper.to_array(value)
            except (ValueError, TypeError) as err:
                raise MalformedNodeError(f"{node.op_type} node {node.name!r}: tensor attribute {a.name!r} is "
                                         f"malformed ({err})") from None
        elif isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode() for v in value]
        out[a.name] = value
    return out


class GraphConverter:
    """Converts the nodes of one graph; looks names up in its parent graphs too (outer-scope values)."""

    def __init__(self, module, opset: int, parent: GraphConverter | None = None):
        self.module = module
        self.opset = opset
        self.parent = parent
        self.env: dict[str, Value] = {}
        self.builder = Builder()

    # ---- environment -------------------------------------------------------------------------------------
    def lookup(self, name: str) -> Value:
        scope = self
        while scope is not None:
            if name in scope.env:
                return scope.env[name]
            scope = scope.parent
        raise ConversionError(f"value {name!r} is used before it is defined")

    def child(self) -> GraphConverter:
        return GraphConverter(self.module, self.opset, self)

    # ---- building ----------------------------------------------------------------------------------------
    def bind(self, expr, type_, hint: str = "t", dims=None) -> Value:
        var = self.builder.let(fresh(hint), expr, type_)
        return Value(var, type_, None, dims)

    def emit(self, op_name: str, *args, hint: str = "", type_=None, dims=None, **attrs) -> Value:
        """Call operator `op_name` on `args` (Values or numpy constants); folded when all are constant.
        `type_` refines the inferred type (static dims the operator's relation cannot see).

        Bool tensors that are not constant live in memory as int32 0/1 ("boxed"): nimble's generated kernels
        load and store bool buffers as LLVM `<N x i1>` vectors, which are bit-packed, so a bool tensor written by
        one kernel and read by another comes out wrong. Comparisons are cast to int32 inside their kernel,
        data movement moves the int32 values, and consumers cast back to bool inside theirs."""
        values = [a if isinstance(a, Value) else const_value(a) for a in args]
        opdef = get_op(op_name)
        attrs = {k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()}
        full = opdef.full_attrs(attrs)
        if all(v.is_const for v in values):
            result = opdef.evaluate([v.const for v in values], full)
            return const_value(np.asarray(result))
        moved = _moves_boxed(op_name, values)
        exprs, types = [], []
        for k, v in enumerate(values):
            if k in moved:
                e, t = (Constant(v.const.astype(np.int32)) if v.is_const else v.expr), _as_int32(v.type)
            else:
                e, t = self.plain_expr(v), v.type
            exprs.append(e)
            types.append(t)
        inferred = opdef.infer(types, full)
        call = Call(Op(op_name), tuple(exprs), Attrs.of(attrs))
        hint = hint or op_name.replace(".", "_")
        if moved:  # the result is a boxed bool
            out_type = type_ or _as_bool(inferred)
            var = self.builder.let(fresh(hint), call, _as_int32(out_type))
            return Value(var, out_type, None, dims, boxed=True)
        if isinstance(inferred, TensorType) and inferred.dtype == "bool":
            out_type = type_ or inferred
            boxed = Call(Op("cast"), (call,), Attrs.of({"dtype": "int32"}))
            var = self.builder.let(fresh(hint), boxed, _as_int32(out_type))
            return Value(var, out_type, None, dims, boxed=True)
        return self.bind(call, type_ or inferred, hint, dims)

    def plain_expr(self, v: Value):
        """`v`'s expression as its real dtype (a boxed bool is cast back, inline, to fuse into its consumer)."""
        if v.boxed:
            return Call(Op("cast"), (v.expr,), Attrs.of({"dtype": "bool"}))
        return v.expr

    def plain(self, v: Value) -> Value:
        """`v` unboxed and bound (for function arguments, branch results and graph outputs)."""
        if not v.boxed:
            return v
        return self.bind(self.plain_expr(v), v.type, "unbox")

    def concat(self, values: list, axis: int, hint: str = "concat") -> Value:
        values = [v if isinstance(v, Value) else const_value(v) for v in values]
        if len(values) == 1:
            return values[0]
        if all(v.is_const for v in values):
            return const_value(np.concatenate([v.const for v in values], axis=axis))
        from ..ops.transform import concatenate

        boxed = any(v.boxed for v in values)
        exprs, types = [], []
        for v in values:
            if boxed:
                exprs.append(Constant(v.const.astype(np.int32)) if v.is_const else
                             v.expr if v.boxed else Call(Op("cast"), (v.expr,), Attrs.of({"dtype": "int32"})))
                types.append(_as_int32(v.type))
            else:
                exprs.append(v.expr)
                types.append(v.type)
        out = get_op("concatenate").infer([TupleType(tuple(types))], {"axis": axis})
        var = self.builder.let(fresh(hint), concatenate(exprs, axis=axis), out)
        return Value(var, _as_bool(out) if boxed else out, None, None, boxed=boxed)

    def tuple_fields(self, expr, types: list, hint: str) -> list[Value]:
        """Bind a tuple-valued expression and return a Value per field."""
        tup = self.builder.let(fresh(hint), expr, TupleType(tuple(types)))
        return [self.bind(TupleGetItem(tup, i), t, f"{hint}_{i}") for i, t in enumerate(types)]

    def result(self, values: list[Value]):
        """The builder's bindings around the graph's outputs (one value, or a tuple)."""
        values = [self.plain(v) for v in values]
        if len(values) == 1:
            return self.builder.ret(values[0].expr)
        return self.builder.ret(Tuple(tuple(v.expr for v in values)))

    # ---- nodes -------------------------------------------------------------------------------------------
    def convert_graph_nodes(self, graph) -> None:
        for node in graph.node:
            self.convert_node(node)

    def convert_node(self, node) -> None:
        from .onnx_specialize import can_specialize, convert_per_axes

        from .onnx_functions import convert_by_function, has_function

        fn = CONVERTERS.get(node.op_type)
        if node.domain not in ("", "ai.onnx") or fn is None and not has_function(node.op_type, self.opset):
            raise UnsupportedOperatorError(f"ONNX operator {node.domain or 'ai.onnx'}.{node.op_type} is not supported")
        from .onnx_schema import check_node_schema

        check_node_schema(node, self.opset)  # extra inputs, unknown or repeated attributes: refused, not ignored
        if fn is None:  # an op defined by a function (an explicit converter wins): its body's nodes
            convert_by_function(self, node)
            return
        inputs = [self.lookup(name) if name else None for name in node.input]
        try:
            if can_specialize(node, inputs):  # axes known only at run time: one copy per possible value
                outputs = convert_per_axes(self, node, inputs, node_attrs(node), fn)
            else:
                outputs = fn(self, node, inputs, node_attrs(node))
        except UnsupportedOperatorError:
            raise
        except NimbleError as err:
            cls = MalformedNodeError if isinstance(err, FormatError) else ConversionError
            raise cls(f"{node.op_type} node {node.name or node.output[0]!r}: {err}") from err
        except (ValueError, IndexError, KeyError, TypeError, AttributeError, ArithmeticError) as err:
            raise MalformedNodeError(f"{node.op_type} node {node.name or (node.output[:1] or ['?'])[0]!r} with "
                                     f"{len(node.input)} inputs and attributes {sorted(a.name for a in node.attribute)}: "
                                     f"malformed ({type(err).__name__}: {err})") from err
        wanted = [name for name in node.output]
        if len(outputs) < len([n for n in wanted if n]):
            missing = wanted[len(outputs):]
            if any(missing):
                raise ConversionError(
                    f"{node.op_type} node {node.name or wanted[0]!r}: outputs {missing} are not supported"
                )
        for name, value in zip(wanted, outputs):
            if name:
                self.env[name] = value
        log.debug("%s %s -> %s", node.op_type, node.name, [str(v.type) for v in outputs])


# operators that only move elements: a boxed bool goes through them as its int32 stand-in (arg positions)
_MOVERS = {"reshape": (0,), "dyn.reshape": (0,), "transpose": (0,), "expand_dims": (0,), "squeeze": (0,),
           "strided_slice": (0,), "take": (0,), "where": (1, 2)}


def _moves_boxed(op_name: str, values: list) -> set:
    """Argument positions that carry a boxed bool through a data-movement operator (empty: unbox them all)."""
    slots = _MOVERS.get(op_name, ())
    if not slots or not any(values[k].boxed for k in slots if k < len(values)):
        return set()
    if all(values[k].boxed or (values[k].is_const and values[k].dtype == "bool") for k in slots):
        return set(slots)
    return set()


def _as_int32(t):
    return TensorType(t.shape, "int32") if isinstance(t, TensorType) and t.dtype == "bool" else t


def _as_bool(t):
    return TensorType(t.shape, "bool") if isinstance(t, TensorType) and t.dtype == "int32" else t


def tensor_type_of(value: Value) -> TensorType:
    if not isinstance(value.type, TensorType):
        raise ConversionError(f"expected a tensor, got {value.type!r}")
    return value.type
