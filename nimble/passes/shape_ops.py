"""Data-dependent shape operators whose shape values come from other tensors' dims -> data-independent ones.

Exporters compute shapes at run time: ``arange(0, take(shape_of(y), i), 1)`` (position ids, mask indices) and
``dyn.reshape(x, concatenate(take(shape_of(y), [i]), ..., [c]))`` (head split, batch views). Their shape functions
read values, so the VM sizes their outputs through a host callback on every call. When the values are provably
dims of tensors in scope (``let_chain.dim_tokens``) they become:

* ``arange(0, take(shape_of(y), i), 1)`` -> ``dim_arange(y, axis=i)``;
* ``dyn.reshape(x, shape)`` -> ``reshape_like(x, y)`` for a tensor y whose dims are exactly those of ``shape``
  (a -1 in ``shape``: y's dims at the other positions; the element count, checked at run time, fixes the -1).

Both have shape functions of their inputs' shapes (compiled into the VM), and ``dim_arange`` keeps y's symbolic dim.
``simplify_shape_ops(mod)`` rewrites each function's top-level let chain (the compile pipeline's ``shape_ops`` pass,
after ``attention``, whose patterns read the exporter's shape arithmetic).
"""
from __future__ import annotations

from ..ir.expr import Call, Constant, Function, Op, Var
from ..ir.module import IRModule
from ..ir.types import TensorType
from .fold import eliminate_dead_code
from .let_chain import LetChain, concat_fields, const_1d, dim_tokens, field_token, shape_dim_source


def _int_scalar(e) -> int | None:
    if isinstance(e, Constant) and e.value.size == 1 and e.value.dtype.kind in "iu":
        return int(e.value.reshape(()))
    return None


def _dim_arange(chain: LetChain, call: Call, index: int):
    start, stop, step = call.args
    if _int_scalar(start) != 0 or _int_scalar(step) != 1:
        return None
    while chain.producer(stop, "cast") is not None and chain.producer(stop).attrs.get("dtype") in ("int32", "int64"):
        stop = chain.producer(stop).args[0]
    take = chain.producer(stop, "take")
    if take is None or not isinstance(take.args[1], Constant) or take.args[1].value.ndim != 0:
        return None
    shape = chain.producer(take.args[0], "shape_of")
    yt = chain.type_of(shape.args[0]) if shape is not None else None
    if yt is None and shape is not None:  # an untyped (ANF) value: its rank from its tokens
        tokens = dim_tokens(chain, shape.args[0])
        yt = TensorType((None,) * len(tokens), "float32") if tokens is not None else None
    axis = _int_scalar(take.args[1])
    if not isinstance(yt, TensorType) or axis is None or not -yt.ndim <= axis < yt.ndim:
        return None
    return chain.call("dim_arange", (shape.args[0],), {"axis": axis % yt.ndim, "dtype": call.attrs["dtype"]})


def _reshape_like(chain: LetChain, call: Call, index: int):
    x, shape = call.args
    fields = concat_fields(chain, shape)
    if fields is None:
        return None
    tokens = [field_token(chain, f, 64) for f in fields]
    unknown = [k for k, t in enumerate(tokens) if t is None]
    if not unknown:
        candidates = [x] + [src[0] for f in fields if (src := shape_dim_source(chain, f)) is not None]
        candidates += [t[0] for t in tokens if isinstance(t, tuple)]
    elif len(unknown) == 1 and const_1d(fields[unknown[0]], -1) is not None:
        # the -1: any tensor in scope with the other dims; reshape_like checks the element count at run time,
        # which then fixes the -1 to that tensor's dim
        candidates = [x] + [v for v, _ in chain.bindings[:index] if isinstance(chain.type_of(v), TensorType)
                            and chain.type_of(v).ndim == len(fields)]
    else:
        return None
    for y in candidates:
        found = dim_tokens(chain, y) if isinstance(y, Var) else None
        if found is not None and len(found) == len(tokens) and all(
                t is None or t == f for t, f in zip(tokens, found)):
            return chain.call("reshape_like", (x, y))
    return None


def rewrite_shape_ops(chain: LetChain) -> int:
    """Rewrite the chain's matching arange and dyn.reshape bindings in place; how many."""
    done = 0
    for index, (_, value) in enumerate(chain.bindings):
        if not (isinstance(value, Call) and isinstance(value.op, Op)):
            continue
        rewrite = {"arange": _dim_arange, "dyn.reshape": _reshape_like}.get(value.op.name)
        new = rewrite(chain, value, index) if rewrite is not None else None
        if new is not None:
            chain.replace(index, new)
            done += 1
    return done


def simplify_shape_ops(mod: IRModule) -> IRModule:
    """`mod` with the data-dependent shape operators of the module doc rewritten, dead bindings dropped."""
    out = IRModule(dict(mod.functions), dict(mod.type_defs))
    changed = False
    for name, func in mod.functions.items():
        chain = LetChain.of(func.body)
        if rewrite_shape_ops(chain):
            out.functions[name] = Function(func.params, chain.body(), func.ret_type, func.type_params)
            changed = True
    return eliminate_dead_code(out) if changed else mod
