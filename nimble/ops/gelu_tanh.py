"""gelu_tanh: GPT-2's GELU, ``0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))`` (torch's approximate="tanh",
ONNX Gelu with approximate="tanh"). The pattern pass writes it for the decomposed form exports carry; a dense
group ending in it takes it as the dense template's epilogue. The formula lives in ``schedules.dense``."""
from __future__ import annotations

import numpy as np

from .. import te
from ..schedules.dense import gelu_tanh as _formula
from .compute import register_compute, stage_name
from .registry import OpPattern, register
from .relations import FLOAT_DTYPES, tensor_arg


def _reference(x):
    x = np.asarray(x)
    return _formula(x.astype(np.float64), np.tanh).astype(x.dtype)


gelu_tanh = register(
    "gelu_tanh", args=("x",), type_rel=lambda x: tensor_arg("gelu_tanh", "x", x, FLOAT_DTYPES),
    shape_func=lambda x: [x], reference=_reference, pattern=OpPattern.ELEMWISE,
    doc="Elementwise 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) (the tanh form of GELU).",
)


@register_compute("gelu_tanh")
def _gelu_tanh_compute(inputs, attrs, out_shapes):
    (x,) = inputs
    return te.compute(x.shape, lambda *i: _formula(x[i], te.tanh), name=stage_name("gelu_tanh"))
