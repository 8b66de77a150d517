"""lstm_cell: one LSTM time step (the recurrent dense, the gates and the state update) as one operator.

``lstm_cell(gates_x, t, state, weight, gate_order)`` -> the new state (2, B, H):

* ``state`` (2, B, H) holds h_{t-1} (``state[0]``) and c_{t-1} (``state[1]``) of B batch rows;
* ``gates_x`` (N, 4H): the input side of the gates of every step and batch row (x W_ih^T + biases), the row of
  batch row b at step t being ``t * B + b``; ``t`` an int64 scalar;
* ``weight`` (4H, H): W_hh, its rows in blocks of H per gate; ``gate_order`` gives the block of gate i, f, g, o
  ((0, 1, 2, 3): PyTorch's order; (0, 2, 3, 1): ONNX's i, o, f, c).

With ``pre_k = gates_x[t * B + b, gate_order[k] * H :][:H] + h_{t-1}[b] @ W_k^T``: i, f, o = sigmoid(pre),
g = tanh(pre), ``c_t = f * c_{t-1} + i * g`` and ``h_t = o * tanh(c_t)``; the result is ``stack(h_t, c_t)``.
A t outside the rows of ``gates_x`` raises `nimble.OutOfRangeError`. The ``lstm_cell`` template
(schedules/lstm_cell.py) computes it in one kernel that streams W_hh once, packed gate-interleaved.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.types import TensorType
from ..schedules.lstm_cell import check_gate_order, lstm_cell_reference
from .compute import register_compute
from .registry import OpPattern, register
from .relations import dims_equal, rank_is, same_dtype, tensor_arg

TORCH_GATE_ORDER = (0, 1, 2, 3)
ONNX_GATE_ORDER = (0, 2, 3, 1)
ATTRS = {"gate_order": TORCH_GATE_ORDER}


def _lstm_cell_rel(gates_x, t, state, weight, gate_order):
    check_gate_order(gate_order)
    gx = tensor_arg("lstm_cell", "gates_x", gates_x, ("float32",))
    tt = tensor_arg("lstm_cell", "t", t, ("int64",))
    st = tensor_arg("lstm_cell", "state", state, ("float32",))
    w = tensor_arg("lstm_cell", "weight", weight, ("float32",))
    rank_is("lstm_cell", "gates_x", gx, 2)
    rank_is("lstm_cell", "t", tt, 0)
    rank_is("lstm_cell", "state", st, 3)
    rank_is("lstm_cell", "weight", w, 2)
    same_dtype("lstm_cell", ("gates_x", gx), ("state", st), ("weight", w))
    if st.shape[0] != 2:
        raise ShapeError(f"lstm_cell: state must have 2 rows (h and c) on axis 0, got {st!r}")
    hidden = st.shape[2]
    if not isinstance(hidden, int):
        raise ShapeError(f"lstm_cell: the hidden size (state axis 2) must be static, got {st!r}")
    dims_equal("lstm_cell", w.shape[0], 4 * hidden, "weight has {a} rows, 4 * hidden is {b}")
    dims_equal("lstm_cell", w.shape[1], hidden, "weight has {a} columns, the hidden size is {b}")
    dims_equal("lstm_cell", gx.shape[1], 4 * hidden, "gates_x has {a} columns, 4 * hidden is {b}")
    return TensorType(st.shape, st.dtype)


def _lstm_cell_shape(gates_x, t, state, weight, **_):
    return [np.asarray(state, dtype=np.int64)]


lstm_cell = register(
    "lstm_cell", args=("gates_x", "t", "state", "weight"), attrs=ATTRS, type_rel=_lstm_cell_rel,
    shape_func=_lstm_cell_shape, reference=lstm_cell_reference, pattern=OpPattern.OPAQUE,
    doc="one LSTM step: stack(h_t, c_t) from the input-side gates row t, the state (h, c) and W_hh.",
)


@register_compute("lstm_cell")
def _lstm_cell_compute(inputs, attrs, out_shapes):
    from ..schedules.lstm_cell import lstm_cell_compute

    gates_x, t, state, weight = inputs
    return lstm_cell_compute(gates_x, t, state, weight, check_gate_order(attrs["gate_order"]))["out"]
