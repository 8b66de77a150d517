"""Control flow: `If` becomes an IR `if`; `Loop` becomes a recursive global function (one call per iteration,
the loop state as parameters, values of the enclosing graph passed in as extra parameters). `LSTM` and `GRU`
(`onnx_recurrent`) build their loops with `_recursive` too; so does `SequenceMap` over sequences (`List` values,
`onnx_ops_sequence`) whose elements are not known at conversion time."""
from __future__ import annotations

import numpy as np

from ..ir.builder import if_, match, pctor, tuple_
from ..ir.expr import Call, Function, GlobalVar, Tuple, TupleGetItem, Var
from ..ir.prelude import Cons, Nil, list_type
from ..ir.types import AnyDim, TensorType, TupleType
from ..ir.visitor import free_vars, substitute_vars
from .onnx_graph import ConversionError, MalformedNodeError, converter, fresh
from .onnx_ops_sequence import (
    Unranked,
    element_type,
    graph_output,
    is_sequence,
    join_sequence_types,
    known_items,
    sequence_element,
    sequence_type,
    static_sequence,
    typed_sequence,
)
from .onnx_values import Value, const_value

INT_MAX = np.iinfo(np.int64).max


def _scalar_bool(ctx, v: Value) -> Value:
    if v.dtype != "bool":
        v = ctx.emit("not_equal", v, np.zeros((), v.dtype))
    return ctx.plain(ctx.emit("reshape", v, newshape=()) if v.ndim else v)


def _subgraph(ctx, graph, bound: dict, builder=None):
    """Convert `graph` in a child scope with `bound` names preset; returns (child, output Values)."""
    from onnx import numpy_helper

    child = ctx.child()
    if builder is not None:
        child.builder = builder
    for init in graph.initializer:
        child.env[init.name] = const_value(numpy_helper.to_array(init))
    child.env.update(bound)
    child.convert_graph_nodes(graph)
    return child, [child.lookup(o.name) for o in graph.output]


def _join(a: TensorType, b: TensorType) -> TensorType:
    if not isinstance(a, TensorType) or not isinstance(b, TensorType):
        if isinstance(a, TensorType) or isinstance(b, TensorType):
            raise ConversionError(f"If branches give {a!r} and {b!r}")
        return join_sequence_types(a, b)
    if a.dtype != b.dtype or a.ndim != b.ndim:
        raise ConversionError(f"If branches give {a!r} and {b!r}")
    return TensorType(tuple(x if x == y else AnyDim() for x, y in zip(a.shape, b.shape)), a.dtype)


@converter("If")
def if_node(ctx, node, inputs, attrs):
    cond = inputs[0]
    if cond.is_const:  # a constant condition: inline the branch taken
        branch = attrs["then_branch"] if bool(cond.const.reshape(-1)[0]) else attrs["else_branch"]
        return _subgraph(ctx, branch, {}, ctx.builder)[1]
    cond = _scalar_bool(ctx, cond)
    then_ctx, then_out = _subgraph(ctx, attrs["then_branch"], {})
    else_ctx, else_out = _subgraph(ctx, attrs["else_branch"], {})
    if len(then_out) != len(else_out):
        raise ConversionError("If branches have different numbers of outputs")
    types = [_join(a.type, b.type) for a, b in zip(then_out, else_out)]
    then_out = [_typed(then_ctx, v, t) for v, t in zip(then_out, types)]
    else_out = [_typed(else_ctx, v, t) for v, t in zip(else_out, types)]
    types = [v.type for v in then_out]
    expr = if_(cond.expr, then_ctx.result(then_out), else_ctx.result(else_out))
    if len(types) == 1:
        return [ctx.bind(expr, types[0], "if")]
    return ctx.tuple_fields(expr, types, "if")


def _typed(ctx, v: Value, t) -> Value:
    """`v` of type `t` where `t` is a sequence type (an empty sequence of unknown rank takes its element type)."""
    if is_sequence(v):
        elem = t.args[0]
        return graph_output(ctx, v) if isinstance(elem, Unranked) else typed_sequence(ctx, v, elem)
    return v


def _loose(t: TensorType) -> TensorType:
    return t if not isinstance(t, TensorType) else TensorType((AnyDim(),) * t.ndim, t.dtype)


def _state_types(ctx, body, carried: list) -> list:
    """The type of each carried value: its dims `Any` where the body may change them; a sequence whose elements'
    rank is not known on entry (SequenceEmpty) takes the rank of the sequence the body makes of it."""
    types = []
    for k, v in enumerate(carried):
        declared = body.input[2 + k].type.tensor_type
        t = _loose(v.type)
        if isinstance(t, TensorType) and declared.HasField("shape") and len(declared.shape.dim) == v.ndim:
            t = TensorType(tuple(vd if d.HasField("dim_value") and d.dim_value == vd else AnyDim()
                                 for d, vd in zip(declared.shape.dim, v.shape)), v.dtype)
        types.append(t)
    pending = [k for k, t in enumerate(types) if is_sequence(carried[k]) and isinstance(t.args[0], Unranked)]
    if not pending:
        return types
    i, cond = Var("iter", TensorType((), "int64")), Var("cond", TensorType((), "bool"))
    bound = {body.input[0].name: Value(i, i.type_annotation), body.input[1].name: Value(cond, cond.type_annotation)}
    for k, t in enumerate(types):  # a trial conversion of the body: only the types of its results are read
        trial = Var(f"state{k}", t if k not in pending else sequence_type(0, t.args[0].dtype))
        bound[body.input[2 + k].name] = Value(trial, t) if k in pending else Value(trial, trial.type_annotation)
    _, outs = _subgraph(ctx, body, bound)
    for k in pending:
        joined = join_sequence_types(types[k], outs[1 + k].type)
        if isinstance(joined.args[0], Unranked):
            joined = sequence_type(0, joined.args[0].dtype)  # empty on every iteration
        types[k] = joined
    return types


def _recursive(ctx, hint, params, make_body, ret_type, args):
    """`make_body(gv)` gives the function body (it calls `gv` to recurse with the loop state only); the
    captured values are appended to every call."""
    gv = GlobalVar(fresh(hint))
    body = make_body(lambda *state: None)  # first pass: find captured values
    captured = [v for v in free_vars(body) if all(v is not p for p in params)]
    inner = [Var(v.name, v.type_annotation) for v in captured]
    body = make_body(lambda *state: gv(*state, *inner))
    body = substitute_vars(body, dict(zip(captured, inner)))
    ctx.module.define(gv, Function(list(params) + inner, body, ret_type))
    return ctx.tuple_fields(gv(*[ctx.plain(a).expr for a in args], *captured), list(ret_type.fields), hint)


@converter("Loop")
def loop(ctx, node, inputs, attrs):
    body = attrs["body"]
    trip = inputs[0] if inputs and inputs[0] is not None else None
    cond0 = inputs[1] if len(inputs) > 1 and inputs[1] is not None else None
    carried = inputs[2:]
    n_carried = len(carried)
    i = Var("iter", TensorType((), "int64"))
    m = Var("max_trip", TensorType((), "int64"))
    keep_going = Var("cond", TensorType((), "bool"))
    state = [Var(f"state{k}", t) for k, t in enumerate(_state_types(ctx, body, carried))]
    carried = [_typed(ctx, v, s.type_annotation) for v, s in zip(carried, state)]
    bound = {body.input[0].name: Value(i, i.type_annotation), body.input[1].name: Value(keep_going, keep_going.type_annotation)}
    bound.update({body.input[2 + k].name: Value(s, s.type_annotation) for k, s in enumerate(state)})
    child, outs = _subgraph(ctx, body, bound)
    cond_out = _scalar_bool(child, outs[0])
    new_state = [_typed(child, v, s.type_annotation) for v, s in zip(outs[1:1 + n_carried], state)]
    scans = outs[1 + n_carried:]
    # a scan output of static shape is stacked by concatenation; one with run-time dims (the same every
    # iteration, as ONNX requires) is collected flat beside its shape [iterations, dims...], reshaped at the end
    flat = [not all(isinstance(d, int) for d in s.shape) for s in scans]
    accs, new_accs = [], []
    for k, (s, is_flat) in enumerate(zip(scans, flat)):
        if not is_flat:
            acc = Var(f"scan{k}", TensorType((AnyDim(),) + s.shape, s.dtype))
            accs.append(acc)
            new_accs.append(child.concat([Value(acc, acc.type_annotation), child.emit("expand_dims", s, axis=0)], 0))
            continue
        acc = Var(f"scan{k}", TensorType((AnyDim(),), s.dtype))
        shape = Var(f"scan{k}_shape", TensorType((1 + s.ndim,), "int64"))
        s_plain = child.plain(s)
        accs += [acc, shape]
        new_accs.append(child.concat([Value(acc, acc.type_annotation), child.emit("reshape", s_plain, newshape=(-1,))], 0))
        count = child.emit("add", child.emit("strided_slice", Value(shape, shape.type_annotation), begin=(0,), end=(1,)),
                           np.array([1], np.int64))
        new_accs.append(child.concat([count, child.emit("shape_of", s_plain)], 0))
    next_i = child.emit("add", Value(i, i.type_annotation), np.array(1, np.int64))
    rec_args = [next_i.expr, m, cond_out.expr] + [child.plain(v).expr for v in new_state] + \
        [child.plain(a).expr for a in new_accs]
    bindings = list(child.builder.bindings)
    params = [i, m, keep_going] + state + accs
    ret_type = TupleType(tuple(s.type_annotation for s in state) + tuple(a.type_annotation for a in accs))
    running = ctx.child()
    go = running.plain(running.emit("logical_and", running.emit("less", Value(i, i.type_annotation),
                                                                Value(m, m.type_annotation)),
                                    Value(keep_going, keep_going.type_annotation)))

    saved = list(running.builder.bindings)

    def body_fn(recurse):
        child.builder.bindings = list(bindings)
        running.builder.bindings = list(saved)
        call = recurse(*rec_args)
        then = child.builder.ret(call if call is not None else tuple_(*rec_args))
        return running.builder.ret(if_(go.expr, then, tuple_(*state, *accs)))

    args = [const_value(np.array(0, np.int64)),
            ctx.emit("reshape", ctx.emit("cast", trip, dtype="int64"), newshape=()) if trip is not None
            else const_value(np.array(INT_MAX, np.int64)),
            _scalar_bool(ctx, cond0) if cond0 is not None else const_value(np.array(True))]
    args += list(carried)
    for s, is_flat in zip(scans, flat):
        if is_flat:
            args += [const_value(np.zeros((0,), s.dtype)), const_value(np.zeros((1 + s.ndim,), np.int64))]
        else:
            args.append(const_value(np.zeros((0,) + s.shape, s.dtype)))
    fields = _recursive(ctx, "loop", params, body_fn, ret_type, args)
    outputs, rest = fields[:n_carried], fields[n_carried:]
    for s, is_flat in zip(scans, flat):
        if not is_flat:
            outputs.append(rest.pop(0))
            continue
        values, shape = rest.pop(0), rest.pop(0)
        outputs.append(ctx.emit("dyn.reshape", values, shape, type_=TensorType((AnyDim(),) + s.shape, s.dtype)))
    return outputs


# ---- SequenceMap -------------------------------------------------------------------------------------------
@converter("SequenceMap")
def sequence_map(ctx, node, inputs, attrs):
    """The body once per element (the i-th element of each sequence input, every tensor input whole): unrolled over
    known elements, else a recursive function that walks the sequences together."""
    body = attrs["body"]
    if not inputs or not is_sequence(inputs[0]):
        raise MalformedNodeError("the first input must be a sequence")
    if len(body.input) != len(inputs):
        raise MalformedNodeError(f"the body takes {len(body.input)} inputs, the node has {len(inputs)}")
    seq_at = [k for k, v in enumerate(inputs) if is_sequence(v)]
    if any(isinstance(element_type(inputs[k]), Unranked) for k in seq_at):
        raise ConversionError("SequenceMap over an empty sequence whose elements' rank is not known")
    known = [known_items(inputs[k]) for k in seq_at]
    if all(items for items in known):
        return _map_known(ctx, body, inputs, seq_at, known)
    return _map_walk(ctx, body, inputs, seq_at)


def _map_known(ctx, body, inputs, seq_at, known) -> list:
    if len({len(items) for items in known}) != 1:
        raise MalformedNodeError(f"the sequences have different lengths {[len(items) for items in known]}")
    per_output = None
    for i in range(len(known[0])):
        bound = {info.name: (known[seq_at.index(k)][i] if k in seq_at else v)
                 for k, (info, v) in enumerate(zip(body.input, inputs))}
        outs = _subgraph(ctx, body, bound, ctx.builder)[1]
        per_output = per_output or [[] for _ in outs]
        for collected, v in zip(per_output, outs):
            collected.append(v)
    results = []
    for values in per_output:
        elem = sequence_element(ctx, values[0])[1]
        results.append(static_sequence(ctx, [sequence_element(ctx, v, elem)[0] for v in values], elem))
    return results


def _map_walk(ctx, body, inputs, seq_at) -> list:
    heads = {k: Var(f"head{k}", element_type(inputs[k])) for k in seq_at}
    tails = {k: Var(f"tail{k}", inputs[k].type) for k in seq_at}
    bound = {info.name: (Value(heads[k], heads[k].type_annotation) if k in heads else v)
             for k, (info, v) in enumerate(zip(body.input, inputs))}
    child, outs = _subgraph(ctx, body, bound)
    elements = []
    for v in outs:
        v, elem = sequence_element(child, v)
        elements.append(v if v.type == elem else child.bind(v.expr, elem, "elem"))
    ret = TupleType(tuple(list_type(v.type) for v in elements))
    bindings = list(child.builder.bindings)
    params = [Var(f"seq{k}", inputs[k].type) for k in seq_at]

    def make_body(recurse):
        child.builder.bindings = list(bindings)
        call = recurse(*[tails[k] for k in seq_at])
        rest = child.builder.let("rest", call if call is not None else Tuple(tuple(tails.values())), ret)
        expr = child.builder.ret(Tuple(tuple(Cons(v.expr, TupleGetItem(rest, j)) for j, v in enumerate(elements))))
        for k, p in reversed(list(zip(seq_at, params))):  # the first sequence ends the walk; the others follow it
            empty = [(pctor(Nil), Tuple(tuple(Call(Nil, ()) for _ in elements)))] if k == seq_at[0] else []
            expr = match(p, [(pctor(Cons, heads[k], tails[k]), expr)] + empty)
        return expr

    return _recursive(ctx, "sequence_map", params, make_body, ret, [inputs[k] for k in seq_at])
