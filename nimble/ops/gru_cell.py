"""gru_cell: one GRU time step (ONNX's GRU; linear_before_reset=1 is PyTorch's GRU) as one operator.

``gru_cell(gates_x, t, state, weight, bias_n, gate_order, linear_before_reset)`` -> the new state (1, B, H):

* ``state`` (1, B, H) holds h_{t-1} of B batch rows;
* ``gates_x`` (N, 3H): the input side of the gates of every step and batch row (x W^T + Wb, plus Rb of the z and
  r gates), the row of batch row b at step t being ``t * B + b``; ``t`` an int64 scalar;
* ``weight`` (3H, H): R, its rows in blocks of H per gate; ``bias_n`` (H,): the candidate's recurrent bias (Rb_h,
  which the reset gate multiplies when linear_before_reset=1); ``gate_order`` gives the block of gate z, r, n
  ((0, 1, 2): ONNX's z, r, h; (1, 0, 2): PyTorch's r, z, n).

z = sigmoid(gx_z + h R_z^T), r = sigmoid(gx_r + h R_r^T), h_t = (1 - z) * n + z * h with
n = tanh(gx_n + r * (h R_n^T + bias_n)) (linear_before_reset=1) or n = tanh(gx_n + (r * h) R_n^T + bias_n) (0). A t outside the rows of ``gates_x`` raises `nimble.OutOfRangeError`. The ``gru_cell``
template (schedules/gru_cell.py) computes it in one kernel that streams R once, packed gate-interleaved.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.types import TensorType
from ..schedules.gru_cell import ONNX_GRU_ORDER, TORCH_GRU_ORDER, check_gru_order, gru_cell_reference
from .compute import register_compute
from .registry import OpPattern, register
from .relations import dims_equal, rank_is, same_dtype, tensor_arg

ATTRS = {"gate_order": ONNX_GRU_ORDER, "linear_before_reset": 1}


def _gru_cell_rel(gates_x, t, state, weight, bias_n, gate_order, linear_before_reset):
    check_gru_order(gate_order)
    if linear_before_reset not in (0, 1) or isinstance(linear_before_reset, bool):
        raise ShapeError(f"gru_cell: linear_before_reset must be 0 or 1, got {linear_before_reset!r}")
    gx = tensor_arg("gru_cell", "gates_x", gates_x, ("float32",))
    tt = tensor_arg("gru_cell", "t", t, ("int64",))
    st = tensor_arg("gru_cell", "state", state, ("float32",))
    w = tensor_arg("gru_cell", "weight", weight, ("float32",))
    bn = tensor_arg("gru_cell", "bias_n", bias_n, ("float32",))
    rank_is("gru_cell", "gates_x", gx, 2)
    rank_is("gru_cell", "t", tt, 0)
    rank_is("gru_cell", "state", st, 3)
    rank_is("gru_cell", "weight", w, 2)
    rank_is("gru_cell", "bias_n", bn, 1)
    same_dtype("gru_cell", ("gates_x", gx), ("state", st), ("weight", w), ("bias_n", bn))
    if st.shape[0] != 1:
        raise ShapeError(f"gru_cell: state must have 1 row (h) on axis 0, got {st!r}")
    hidden = st.shape[2]
    if not isinstance(hidden, int):
        raise ShapeError(f"gru_cell: the hidden size (state axis 2) must be static, got {st!r}")
    dims_equal("gru_cell", w.shape[0], 3 * hidden, "weight has {a} rows, 3 * hidden is {b}")
    dims_equal("gru_cell", w.shape[1], hidden, "weight has {a} columns, the hidden size is {b}")
    dims_equal("gru_cell", gx.shape[1], 3 * hidden, "gates_x has {a} columns, 3 * hidden is {b}")
    dims_equal("gru_cell", bn.shape[0], hidden, "bias_n has {a} elements, the hidden size is {b}")
    return TensorType(st.shape, st.dtype)


def _gru_cell_shape(gates_x, t, state, weight, bias_n, **_):
    return [np.asarray(state, dtype=np.int64)]


gru_cell = register(
    "gru_cell", args=("gates_x", "t", "state", "weight", "bias_n"), attrs=ATTRS, type_rel=_gru_cell_rel,
    shape_func=_gru_cell_shape, reference=gru_cell_reference, pattern=OpPattern.OPAQUE,
    doc="one GRU step: h_t, as (1, B, H), from the input-side gates row t, the state h, R and the candidate's "
        "recurrent bias.",
)


@register_compute("gru_cell")
def _gru_cell_compute(inputs, attrs, out_shapes):
    from ..schedules.gru_cell import gru_cell_compute

    gates_x, t, state, weight, bias_n = inputs
    return gru_cell_compute(gates_x, t, state, weight, bias_n, check_gru_order(attrs["gate_order"]),
                            linear_before_reset=attrs["linear_before_reset"])["out"]
