"""Exported batched attention (transformers -> torch.onnx, dynamic batch and sequence) -> one batched ``attention``.

Matched, after ``passes.rows`` has made the projections 2-D rows (B*S, .), from the merged (B, S, W) result back::

    [dyn.]reshape(transpose([dyn.]reshape(ctx, (B, -1, S, D)) | ctx, (0, 2, 1, 3)), (B, S, -1))
    ctx    = matmul(probs, heads(v, (0, 2, 1, 3)))
    probs  = softmax(S, last axis) [-> where(isnan(probs), 0, probs)]        (the NaN guard of an all-masked row)
    S      = [scale *|/] matmul([c1 *] heads(q, (0, 2, 1, 3)), [c2 *] heads(k, (0, 2, 3, 1))) + mask
    heads(x, perm) = transpose(dyn.reshape(x, concat(B, S, -1, D)), perm)
    x      = a 2-D (B*S, W) projection | strided_slice(dyn.reshape(p, (B, S, 3W)), last axis, c0:c0+W)  (GPT-2's c_attn)

with a float mask of type (B, 1, S or 1, S) (transformers' extended attention mask: padding, and for GPT-2 the
causal part as well). The result is ``attention(xq, xk, xv, squeeze(mask, 1), heads=H, head_size=D, scale=c1*c2,
q_col, k_col, v_col)``: the 3-D mask makes the op batched (one sequence per mask row block), the head split and
merge are index arithmetic in the kernel, and no data-dependent reshape is left (``fold_rows`` drops the merge).
The batch is the mask's dim 0: transformers builds the mask from ``attention_mask`` (B, S), so it is never 1 for a
larger batch. An all-masked row gives 0, as the NaN guard does.
"""
from __future__ import annotations

import numpy as np

from ..ir.expr import Call, Constant, Tuple
from ..ir.types import TensorType
from .let_chain import LetChain, concat_fields, const_1d, field_token, last_axis, scalar_of, shape_dim_source

RESHAPES = ("reshape", "dyn.reshape")


def _ints(attrs, name):
    v = attrs.get(name)
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


def _dim_of_shape(chain: LetChain, e, axis: int):
    """The tensor y when `e` is take(shape_of(y), [axis]); else None."""
    src = shape_dim_source(chain, e, axis)
    return None if src is None else src[0]


def _run_time_dims(chain: LetChain, fields) -> bool:
    """The shape fields are dims read from tensors (take(shape_of(y), [i]), possibly through a concatenation)."""
    return all(field_token(chain, f, 64) is not None and const_1d(f) is None for f in fields)


def _rows_source(chain: LetChain, x):
    """(2-D rows tensor, first column, width, (B, S) shape fields of the sliced view or None) of a head-split
    input; else None."""
    t = chain.type_of(x)
    if not isinstance(t, TensorType) or t.dtype != "float32" or not isinstance(t.shape[-1], int):
        return None
    if t.ndim == 2:
        return x, 0, t.shape[1], None
    sl = chain.producer(x, "strided_slice")
    if sl is None or t.ndim != 3 or _ints(sl.attrs, "axes") not in ((2,), (-1,)):
        return None
    if any(s not in (None, 1) for s in _ints(sl.attrs, "strides")):
        return None
    r = chain.producer(sl.args[0], "dyn.reshape")
    if r is None:
        return None
    fields = concat_fields(chain, r.args[1])
    z, zt = r.args[0], chain.type_of(r.args[0])
    if fields is None or len(fields) != 3 or not isinstance(zt, TensorType) or zt.ndim != 2:
        return None
    if not _run_time_dims(chain, fields[:2]) or const_1d(fields[2], zt.shape[1]) is None:
        return None
    begin = _ints(sl.attrs, "begin")[0]
    if not isinstance(begin, int) or begin < 0 or begin + t.shape[-1] > zt.shape[1]:
        return None
    return z, begin, t.shape[-1], fields[:2]


def _heads(chain: LetChain, e, perm: tuple):
    """(rows, col, H, D, (B, S) shape fields) when `e` is heads(x, perm) (module doc); else None."""
    tr = chain.producer(e, "transpose")
    if tr is None or _ints(tr.attrs, "axes") != perm:
        return None
    r = chain.producer(tr.args[0], "dyn.reshape")
    if r is None:
        return None
    fields = concat_fields(chain, r.args[1])
    if fields is None or len(fields) != 4 or const_1d(fields[2], -1) is None:
        return None
    d = const_1d(fields[3])
    if d is None or d < 1 or not _run_time_dims(chain, fields[:2]):
        return None
    src = _rows_source(chain, r.args[0])
    if src is None or src[2] % d:
        return None
    return src[0], src[1], src[2] // d, d, src[3] or fields[:2]  # (B, S) read without the sliced view


def _scaled(chain: LetChain, e):
    """(inner, factor) of `e = inner * c` (c a scalar constant, either side), else (e, 1.0)."""
    m = chain.producer(e, "multiply")
    if m is not None and chain.used_only(e):
        for inner, c in (m.args, m.args[::-1]):
            if scalar_of(c) is not None:
                return inner, float(scalar_of(c))
    return e, 1.0


def _unguarded(chain: LetChain, e):
    """The softmax var under `where(isnan(p), 0, p)` (as not_equal(p, p), casts allowed), or `e` itself."""
    w = chain.producer(e, "where")
    if w is None or not chain.used_only(e):
        return e
    cond, zero, p = w.args
    if scalar_of(zero) != 0.0:
        return e
    while chain.producer(cond, "cast") is not None:
        cond = chain.producer(cond, "cast").args[0]
    ne = chain.producer(cond, "not_equal")
    if ne is None or ne.args[0] is not p or ne.args[1] is not p or not chain.used_only(p, 3):
        return e
    return p


def _scores(chain: LetChain, e):
    """(q4 expr, k4t expr, scale, mask) of the pre-softmax scores; else None."""
    a = chain.producer(e, "add")
    if a is None or not chain.used_only(e):
        return None
    for s_e, mask in (a.args, a.args[::-1]):
        scale, node_e = 1.0, s_e
        d = chain.producer(node_e, ("multiply", "divide"))
        if d is not None and chain.used_only(node_e):
            c = scalar_of(d.args[1])
            if c is None or (d.op.name == "divide" and c == 0.0):
                continue
            scale, node_e = (1.0 / c if d.op.name == "divide" else c), d.args[0]
        mm = chain.producer(node_e, "matmul")
        if mm is None or not chain.used_only(node_e):
            continue
        q, c1 = _scaled(chain, mm.args[0])
        k, c2 = _scaled(chain, mm.args[1])
        return q, k, scale * c1 * c2, mask
    return None


def _mask3(chain: LetChain, mask) -> bool:
    t = chain.type_of(mask)
    return isinstance(t, TensorType) and t.dtype == "float32" and t.ndim == 4 and t.shape[1] == 1


def _context(chain: LetChain, call):
    """The 4-D (B, H, S, D) context var when `call` is transpose(ctx, (0, 2, 1, 3)) (module doc); else None."""
    if call.op.name != "transpose" or _ints(call.attrs, "axes") != (0, 2, 1, 3):
        return None
    ctx = call.args[0]
    r = chain.producer(ctx, "dyn.reshape")
    if r is not None:  # transformers' (B, -1, S, D) view of the (B, H, S, D) context: the same shape
        if not chain.used_only(ctx):
            return None
        fields = concat_fields(chain, r.args[1])
        if fields is None or len(fields) != 4 or _dim_of_shape(chain, fields[0], 0) is not r.args[0]:
            return None
        if const_1d(fields[1], -1) is None or _dim_of_shape(chain, fields[2], 2) is None:
            return None
        ctx = r.args[0]
    return ctx


def _merges(chain: LetChain, index: int, width: int):
    """[(binding index, kind)] of every use of the merged context bound at `index`: "rows" for
    reshape(., (-1, W)), "bsw" for dyn.reshape(., concat(B, S, -1)), "shape" for shape_of(.); None when another
    use exists."""
    var = chain.bindings[index][0]
    found = []
    for j in range(index + 1, len(chain.bindings)):
        value = chain.bindings[j][1]
        if not isinstance(value, Call) or not any(a is var for a in value.args):
            if isinstance(value, Tuple) and any(a is var for a in value.fields):
                return None
            continue
        if value.op.name == "reshape" and _ints(value.attrs, "newshape") == (-1, width):
            found.append((j, "rows"))
            continue
        if value.op.name == "shape_of":
            found.append((j, "shape"))
            continue
        fields = concat_fields(chain, value.args[1]) if value.op.name == "dyn.reshape" else None
        if fields is not None and len(fields) == 2 and const_1d(fields[0], -1) is not None:
            z = _dim_of_shape(chain, fields[1], 2)  # GPT-2's Conv1D: (-1, last dim of the (B, S, W) merge)
            r = chain.producer(z, "dyn.reshape")
            zf = concat_fields(chain, r.args[1]) if r is not None and r.args[0] is var else None
            if zf is None or len(zf) != 3 or const_1d(zf[2], -1) is None:
                return None
            found.append((j, "rows"))
            continue
        if fields is None or len(fields) != 3 or const_1d(fields[2], -1) is None:
            return None
        found.append((j, "bsw"))
    uses = chain.uses.get(var, 0)
    return found if len(found) == uses and not any(r is var for r in _result_vars(chain.result)) else None


def _result_vars(e):
    return e.fields if isinstance(e, Tuple) else (e,)


def batched_attention(chain: LetChain, index: int, call) -> bool:
    """Rewrite the exported attention whose head merge transpose is bound at `index` (value `call`)."""
    ctx = _context(chain, call)  # (its other use, if any, is the shape_of of transformers' view of it)
    if ctx is None:
        return False
    mm = chain.producer(ctx, "matmul")
    if mm is None:
        return False
    probs_e, v4 = mm.args
    p = _unguarded(chain, probs_e)
    sm = chain.producer(p, "softmax")
    if sm is None or not last_axis(sm.attrs, 4) or (p is probs_e and not chain.used_only(p)):
        return False
    found = _scores(chain, sm.args[0])
    if found is None:
        return False
    q4, k4, scale, mask = found
    heads = [_heads(chain, q4, (0, 2, 1, 3)), _heads(chain, k4, (0, 2, 3, 1)), _heads(chain, v4, (0, 2, 1, 3))]
    if any(h is None for h in heads) or len({h[2:4] for h in heads}) != 1 or not _mask3(chain, mask):
        return False
    (xq, cq, h, d, bs), (xk, ck, *_), (xv, cv, *_) = heads
    merges = _merges(chain, index, h * d)
    if not merges:
        return False
    if isinstance(mask, Constant):
        mask3, added = Constant(np.ascontiguousarray(mask.value[:, 0])), 0
    else:
        mask3, added = chain.bind_before(index, chain.call("squeeze", (mask,), {"axis": (1,)}), "mask3"), 1
    att = chain.bind_before(index + added, chain.call("attention", (xq, xk, xv, mask3), {
        "heads": h, "head_size": d, "scale": float(scale), "q_col": cq, "k_col": ck, "v_col": cv}), "attention")
    added += 1
    for j, kind in merges:
        j += added
        value = chain.bindings[j][1]
        if kind == "rows":
            chain.replace(j, chain.call("reshape", (att,), {"newshape": (-1, h * d)}))
            continue
        if kind == "shape":  # (B, S, H, D), as q's head split built it
            hd = (Constant(np.array([h], np.int64)), Constant(np.array([d], np.int64)))
            chain.replace(j, chain.call("concatenate", (Tuple((*bs, *hd)),), {"axis": 0}))
            continue
        b, s, _ = concat_fields(chain, value.args[1])
        width = Constant(np.array([h * d], np.int64))
        shape = chain.bind_before(j, chain.call("concatenate", (Tuple((b, s, width)),), {"axis": 0}), "merged_shape",
                                 TensorType((3,), "int64"))
        added += 1
        chain.replace(j + 1, chain.call("dyn.reshape", (att, shape)))
    return True
