"""attention: multi-head scaled dot-product attention over heads laid out as column blocks of 2-D tensors.

``attention(q, k, v, mask, heads, head_size, scale, causal, q_col, k_col, v_col)`` -> (n, heads * head_size):
head h of q is ``q[:, q_col + h*head_size : q_col + (h+1)*head_size]`` (k, v likewise); row i of the result's
head block is ``softmax_j(scale * q_h[i] . k_h[j] + mask[i, j], j <= i when causal) @ v_h``. The mask is 2-D
and broadcasts over (n, nk); a 3-D mask (B, s or 1, sk) batches B sequences: q holds B blocks of s = n / B
rows, k and v B blocks of sk rows, block b attends to its own keys with mask[b]. The pattern pass ``passes.attention`` writes it for the batch_matmul / softmax
chains of BERT and GPT-2; the ``attention`` template (schedules/attention.py) computes it in one kernel.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.types import TensorType
from .compute import register_compute
from .registry import OpPattern, register
from .relations import dims_equal, rank_is, same_dtype, tensor_arg

ATTRS = {"heads": 1, "head_size": 1, "scale": 1.0, "causal": False, "q_col": 0, "k_col": 0, "v_col": 0}


def _attention_rel(q, k, v, mask, heads, head_size, scale, causal, q_col, k_col, v_col):
    q, k, v, mask = (tensor_arg("attention", n, t, ("float32",)) for n, t in
                     (("q", q), ("k", k), ("v", v), ("mask", mask)))
    for name, t, col in (("q", q, q_col), ("k", k, k_col), ("v", v, v_col)):
        rank_is("attention", name, t, 2)
        if isinstance(t.shape[1], int) and col + heads * head_size > t.shape[1]:
            raise ShapeError(f"attention: {name} has {t.shape[1]} columns, heads {heads} x {head_size} from column "
                             f"{col} need {col + heads * head_size}")
    if mask.ndim not in (2, 3):
        raise ShapeError(f"attention: mask must be 2-D (n or 1, nk or 1) or 3-D (batch, s or 1, sk), got {mask.ndim}-D")
    if mask.ndim == 3:
        for name, rows in (("q", q.shape[0]), ("k", k.shape[0])):
            if isinstance(rows, int) and isinstance(mask.shape[0], int) and mask.shape[0] and rows % mask.shape[0]:
                raise ShapeError(f"attention: {name} has {rows} rows, not a multiple of the mask's batch "
                                 f"{mask.shape[0]}")
    same_dtype("attention", ("q", q), ("k", k), ("v", v), ("mask", mask))
    dims_equal("attention", k.shape[0], v.shape[0], "k has {a} rows, v has {b}")
    return TensorType((q.shape[0], heads * head_size), q.dtype)


def _attention_shape(q, k, v, mask, heads, head_size, **_):
    return [np.array([q[0], heads * head_size], dtype=np.int64)]


def _attention_ref(q, k, v, mask, heads, head_size, scale, causal, q_col, k_col, v_col):
    from ..schedules.attention import attention_reference

    return attention_reference(q, k, v, mask, heads, head_size, {"q": q_col, "k": k_col, "v": v_col}, scale, causal)


attention = register(
    "attention", args=("q", "k", "v", "mask"), attrs=ATTRS, type_rel=_attention_rel, shape_func=_attention_shape,
    reference=_attention_ref, pattern=OpPattern.OPAQUE,
    doc="multi-head attention; heads are column blocks of the 2-D q, k, v; the 2-D mask broadcasts over (n, nk); "
        "a 3-D mask (batch, s, sk) attends within each of batch row blocks.",
)


@register_compute("attention")
def _attention_compute(inputs, attrs, out_shapes):
    from ..schedules.attention import attention_compute

    q, k, v, mask = inputs
    cols = {c: attrs[f"{c}_col"] for c in "qkv"}
    stages = attention_compute(q, k, v, mask, attrs["heads"], attrs["head_size"], cols, float(attrs["scale"]),
                               bool(attrs["causal"]), 8, 8, 8)
    return stages["out"]

