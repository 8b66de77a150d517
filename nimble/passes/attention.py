"""Multi-head attention chains -> one ``attention`` call over the 2-D projections (IR -> IR).

Matched, every intermediate used once, from the 2-D merged result back::

    reshape(transpose(ctx, (1, 0, 2)), (-1, H*D))                                       (nimble.models.bert)
    reshape(transpose(expand_dims(ctx, 0), (0, 2, 1, 3)), (-1, H*D))                    (patterns.py on ONNX)
    ctx = batch_matmul(softmax(S, axis=-1), heads(v), transpose_b=False)
    S = [mask +] [scale * | / c] batch_matmul(heads(q), heads(k), transpose_b=True)
    heads(x) = transpose(reshape(x, (-1, H, D)), (1, 0, 2))
             | transpose(squeeze(reshape(x, (1, -1, H, D)), axis=0), (1, 0, 2))

with x a 2-D (n, H*D) float32 tensor (the q / k / v projection) and a mask of rank <= 3 that is the same for
every head (its leading dim, if any, 1). The result is ``attention(q, k, v, mask2d, heads=H, head_size=D,
scale=...)``: no head split or merge copies remain, and the attention template computes it in one kernel.
The batched form of ONNX exports (dynamic batch, head split by data-dependent reshapes) is matched by
``attention_batched``.
"""
from __future__ import annotations

import numpy as np

from ..ir.expr import Call, Constant, Function, Op, Var
from ..ir.infer import infer_types
from ..ir.module import IRModule
from ..ir.types import TensorType
from .attention_batched import batched_attention
from .fold import eliminate_dead_code
from .let_chain import LetChain, last_axis, scalar_of
from .rows import fold_rows


class _Chain(LetChain):
    """A let chain whose variables' types come from the module's type inference (ANF variables carry none)."""

    def __init__(self, bindings, result, types):
        super().__init__(bindings, result)
        self.types = types

    def type_of(self, e):
        t = super().type_of(e)
        if t is None:
            try:
                t = self.types[e]
            except KeyError:
                return None
        return t


def _attr_tuple(attrs, name):
    v = attrs.get(name)
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


def _heads_source(chain: _Chain, e):
    """(x, H, D) when `e` is heads(x) (see the module doc), every step used once; else None."""
    tr = chain.producer(e, "transpose")
    if tr is None or not chain.used_only(e) or _attr_tuple(tr.attrs, "axes") != (1, 0, 2):
        return None
    inner = tr.args[0]
    sq = chain.producer(inner, "squeeze")
    if sq is not None:
        if not chain.used_only(inner) or _attr_tuple(sq.attrs, "axis") not in ((0,), (-4,)):
            return None
        inner = sq.args[0]
    rs = chain.producer(inner, "reshape")
    if rs is None or not chain.used_only(inner):
        return None
    shape = tuple(rs.attrs.get("newshape"))
    lead = (1, -1) if sq is not None else (-1,)
    if len(shape) != len(lead) + 2 or shape[:len(lead)] != lead:
        return None
    h, d = shape[-2:]
    x = rs.args[0]
    xt = chain.type_of(x)
    if not (isinstance(h, int) and isinstance(d, int) and h > 0 and d > 0):
        return None
    if not isinstance(xt, TensorType) or xt.ndim != 2 or xt.dtype != "float32" or xt.shape[1] != h * d:
        return None
    return x, h, d


def _merged_context(chain: _Chain, call):
    """(ctx var, H*D) when `call` is the head merge of a (H, n, D) context; else None."""
    if call.op.name != "reshape":
        return None
    shape = tuple(call.attrs.get("newshape"))
    if len(shape) != 2 or shape[0] != -1 or not isinstance(shape[1], int):
        return None
    tr = chain.producer(call.args[0], "transpose")
    if tr is None or not chain.used_only(call.args[0]):
        return None
    axes = _attr_tuple(tr.attrs, "axes")
    if axes == (1, 0, 2):
        return tr.args[0], shape[1]
    if axes != (0, 2, 1, 3):
        return None
    ex = chain.producer(tr.args[0], "expand_dims")
    if ex is None or not chain.used_only(tr.args[0]) or _attr_tuple(ex.attrs, "axis") not in ((0,), (-4,)):
        return None
    return ex.args[0], shape[1]


def _scores(chain: _Chain, e):
    """(q3, k3, scale, mask or None) of the pre-softmax scores `e`; else None."""
    mask = None
    node = chain.producer(e)
    if node is not None and node.op.name == "add" and chain.used_only(e):
        a, b = node.args
        for inner, other in ((a, b), (b, a)):
            if chain.producer(inner, ("multiply", "divide", "batch_matmul")) is not None:
                e, mask = inner, other
                break
        else:
            return None
        node = chain.producer(e)
    scale = 1.0
    if node is not None and node.op.name in ("multiply", "divide") and chain.used_only(e):
        a, b = node.args
        if scalar_of(b) is not None:
            scale, e = (1.0 / scalar_of(b) if node.op.name == "divide" else scalar_of(b)), a
        elif node.op.name == "multiply" and scalar_of(a) is not None:
            scale, e = scalar_of(a), b
        else:
            return None
        node = chain.producer(e)
    if node is None or node.op.name != "batch_matmul" or not chain.used_only(e):
        return None
    if not node.attrs.get("transpose_b", True):
        return None
    return node.args[0], node.args[1], scale, mask


def _mask_2d(chain: _Chain, mask, pos: int):
    """(2-D mask expr, bindings added) of a mask that is the same for every head; None when it is not."""
    if mask is None:
        return Constant(np.zeros((1, 1), np.float32)), 0
    t = chain.type_of(mask)
    if not isinstance(t, TensorType) or t.dtype != "float32" or t.ndim > 3:
        return None
    if t.ndim == 3 and t.shape[0] != 1:
        return None
    if isinstance(mask, Constant):
        v = np.asarray(mask.value, np.float32)
        return Constant(v.reshape(v.shape[-2:] if v.ndim >= 2 else (1, v.size))), 0
    if t.ndim == 2:
        return mask, 0
    if t.ndim == 3:
        return chain.bind_before(pos, chain.call("squeeze", (mask,), {"axis": (0,)}), "mask2d"), 1
    return chain.bind_before(pos, chain.call("expand_dims", (mask,), {"axis": 0}), "mask2d"), 1


def _attention(chain: _Chain, index: int, call) -> bool:
    merged = _merged_context(chain, call)
    if merged is None:
        return False
    ctx_e, width = merged
    ctx = chain.producer(ctx_e, "batch_matmul")
    if ctx is None or not chain.used_only(ctx_e) or ctx.attrs.get("transpose_b", True):
        return False
    probs_e, v3 = ctx.args
    sm = chain.producer(probs_e, "softmax")
    if sm is None or not chain.used_only(probs_e) or not last_axis(sm.attrs, 3):
        return False
    found = _scores(chain, sm.args[0])
    if found is None:
        return False
    q3, k3, scale, mask = found
    sources = [_heads_source(chain, e) for e in (q3, k3, v3)]
    if any(s is None for s in sources) or len({(h, d) for _, h, d in sources}) != 1:
        return False
    (xq, h, d), (xk, _, _), (xv, _, _) = sources
    if h * d != width:
        return False
    mask2 = _mask_2d(chain, mask, index)
    if mask2 is None:
        return False
    mask_e, added = mask2
    chain.replace(index + added, chain.call("attention", (xq, xk, xv, mask_e),
                                            {"heads": h, "head_size": d, "scale": float(scale)}))
    return True


def fuse_attention(mod: IRModule) -> IRModule:
    """`mod` with every matched attention chain of a function's top-level let chain rewritten (module doc)."""
    types = None
    out = IRModule(dict(mod.functions), dict(mod.type_defs))
    changed = batched = False
    for name, func in mod.functions.items():
        chain = LetChain.of(func.body)
        if not any(getattr(getattr(v, "op", None), "name", None) == "softmax" for _, v in chain.bindings):
            continue
        if types is None:
            types = infer_types(mod)
        chain = _Chain(chain.bindings, chain.result, types)
        if isinstance(chain.result, Call) and isinstance(chain.result.op, Op):  # a merge that is the function's result
            result = Var("attention_result", chain.infer(chain.result))
            chain = _Chain(chain.bindings + [(result, chain.result)], result, types)
        done = 0
        for index in range(len(chain.bindings) - 1, -1, -1):
            producer = chain.producer(chain.bindings[index][0])
            if producer is not None and _attention(chain, index, producer):
                done += 1
                chain.recount()
            elif producer is not None and batched_attention(chain, index, producer):
                done += 1
                batched = True
                chain.recount()
        if done:
            out.functions[name] = Function(func.params, chain.body(), func.ret_type, func.type_params)
            changed = True
    if batched:  # the merge's reshape back to (B, S, W) meets the rows view the next dense layer takes
        return fold_rows(eliminate_dead_code(out))
    return eliminate_dead_code(out) if changed else mod
