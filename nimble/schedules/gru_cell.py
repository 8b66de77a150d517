"""gru_cell in one kernel: the recurrent GEMV over R, the input-side row, the gates and the h update.

The op (``nimble/ops/gru_cell.py``) is ONNX's GRU step with ``linear_before_reset=1`` (PyTorch's GRU): from row t
of ``gates_x`` (N, 3H) (x W^T + Wb, plus Rb of the z and r gates), the state h (1, B, H), R (3H, H) and Rb of the
candidate ``bias_n`` (H,):

    z = sigmoid(gx_z + h R_z^T),  r = sigmoid(gx_r + h R_r^T),  n = tanh(gx_n + r * (h R_n^T + bias_n)),
    h' = (1 - z) * n + z * h

``gate_order`` gives the block of R (and of gates_x's columns) holding z, r and n: (0, 1, 2) is ONNX's z, r, h;
(1, 0, 2) is PyTorch's r, z, n. The kernel is the lstm_cell template's (``schedules/lstm_cell.py``) with three gate
blocks: R packed gate-interleaved once, (ceil(H / bn), H, 3, bn), one pass over it per batch row, the gates in
vector registers, odd steps running the blocks backwards (``alternate``) so that a step starts on what the last
one left in L2 (R of the paper-sized GRU, H = 512, is 3 MiB). Knobs and fallback as lstm_cell's.
"""
from __future__ import annotations

import numpy as np

from .. import te
from ..errors import OutOfRangeError, ShapeError
from .base import Instance, Signature, Template, TemplateError
from .lstm_cell import (pack_gate_weight, recurrent_cell_fallback, recurrent_cell_space, recurrent_cell_stages,
                        schedule_recurrent_cell)

ONNX_GRU_ORDER = (0, 1, 2)
TORCH_GRU_ORDER = (1, 0, 2)


def check_gru_order(gate_order) -> tuple:
    """``gate_order`` as a tuple of ints, a permutation of 0..2; raises ShapeError otherwise."""
    order = tuple(int(g) for g in gate_order) if isinstance(gate_order, (tuple, list)) else None
    if order is None or sorted(order) != [0, 1, 2]:
        raise ShapeError(f"gru_cell: gate_order must be a permutation of (0, 1, 2), got {gate_order!r}")
    return order


def gru_cell_reference(gates_x, t, state, weight, bias_n, gate_order=ONNX_GRU_ORDER) -> np.ndarray:
    """numpy gru_cell (float64 inside), as the module docstring defines it."""
    order = check_gru_order(gate_order)
    _, batch, hidden = state.shape
    step = int(t)
    if batch and not (0 <= step and (step + 1) * batch <= gates_x.shape[0]):
        raise OutOfRangeError(f"gru_cell: step {step} of batch {batch} is outside the {gates_x.shape[0]} rows "
                              "of gates_x")
    h = state[0].astype(np.float64)
    rows = gates_x[step * batch: (step + 1) * batch].astype(np.float64)
    rec = h @ weight.astype(np.float64).T

    def block(a, k):
        return a[:, order[k] * hidden: (order[k] + 1) * hidden]

    def sig(v):
        return 1.0 / (1.0 + np.exp(-v))

    z = sig(block(rows, 0) + block(rec, 0))
    r = sig(block(rows, 1) + block(rec, 1))
    n = np.tanh(block(rows, 2) + r * (block(rec, 2) + bias_n.astype(np.float64)))
    return ((1.0 - z) * n + z * h)[None].astype(state.dtype)


def gru_cell_compute(gates_x, t, state, weight, bias_n, order: tuple, bn: int | None = None) -> dict:
    """The stages ("rec", "row" (template only), "out") of gru_cell over te tensors; ``weight`` is R (3H, H) when
    ``bn`` is None, else the packed (ceil(H / bn), H, 3, bn)."""

    def cell(s, b, u, recurrent, x_side):
        z = te.sigmoid(x_side(0) + recurrent(0))
        reset = te.sigmoid(x_side(1) + recurrent(1))
        n = te.tanh(x_side(2) + reset * (recurrent(2) + bias_n[u]))
        return (1.0 - z) * n + z * state[s, b, u]

    return recurrent_cell_stages("gru_cell", gates_x, t, state, weight, order, bn, cell)


def gru_cell_dims(sig: Signature) -> dict:
    """Checked sizes of a gru_cell signature: rows (N), batch, hidden, the gate order."""
    if len(sig.args) != 5:
        raise TemplateError(f"gru_cell: expected gates_x, t, state, weight, bias_n, got {len(sig.args)} arguments")
    (gs, gd), (ts, td), (ss, sd), (ws, wd), (bs, bd) = sig.args
    if {gd, sd, wd, bd} != {"float32"} or td != "int64":
        raise TemplateError(f"gru_cell: expected float32 gates_x, state, weight, bias_n and an int64 t, got {gd} {td} "
                            f"{sd} {wd} {bd}")
    if len(gs) != 2 or ts != () or len(ss) != 3 or ss[0] != 1 or len(ws) != 2 or len(bs) != 1:
        raise TemplateError(f"gru_cell: shapes must be (N, 3H), (), (1, B, H), (3H, H), (H,); got {gs} {ts} {ss} {ws} "
                            f"{bs}")
    hidden = ss[2]
    if (not isinstance(hidden, int) or hidden < 1 or gs[1] != 3 * hidden or ws != (3 * hidden, hidden)
            or bs != (hidden,)):
        raise TemplateError(f"gru_cell: hidden size {hidden} does not match gates_x {gs}, weight {ws}, bias_n {bs}")
    return {"rows": gs[0], "batch": ss[1], "hidden": hidden, "order": check_gru_order(sig.attr("gate_order"))}


class GRUCell(Template):
    def space(self, sig):
        gru_cell_dims(sig)
        return recurrent_cell_space("gru_cell")

    def fallback(self, sig, space, hints=None):
        gru_cell_dims(sig)
        return recurrent_cell_fallback(space)

    def instantiate(self, sig, cfg):
        dims = gru_cell_dims(sig)
        bn, hidden = cfg["block"], dims["hidden"]
        args = list(sig.args)
        args[3] = ((-(-hidden // bn), hidden, 3, bn), "float32")  # the kernel takes the packed weight
        phs, tvars = Signature(tuple(args), sig.attrs).placeholders(["gates_x", "t", "state", "weight", "bias_n"])
        st = gru_cell_compute(*phs, dims["order"], bn)
        s = schedule_recurrent_cell(st, phs[1], phs[3], 3, cfg)

        def prepare(inputs, bn=bn, order=dims["order"]):
            inputs = list(inputs)
            inputs[3] = pack_gate_weight(np.asarray(inputs[3], np.float32), bn, order)
            return inputs

        return Instance(s, [*phs, st["out"]], tvars, [], prepare)

    def reference(self, sig, inputs):
        return [gru_cell_reference(*inputs, gate_order=gru_cell_dims(sig)["order"])]

    def random_inputs(self, sig, dims, rng):
        gs, _, ss, ws, bs = sig.concrete(dims)
        batch = ss[1]
        steps = gs[0] // batch if batch else gs[0]
        t = np.array(rng.integers(0, max(steps, 1)), np.int64)
        bound = 1.0 / np.sqrt(ss[2])
        return [rng.standard_normal(gs).astype(np.float32), t, rng.standard_normal(ss).astype(np.float32),
                rng.uniform(-bound, bound, ws).astype(np.float32), rng.uniform(-bound, bound, bs).astype(np.float32)]

    def flops(self, sig, dims):
        d = gru_cell_dims(sig)
        batch = dims[d["batch"]] if isinstance(d["batch"], str) else d["batch"]
        return 2 * batch * 3 * d["hidden"] * d["hidden"]


def gru_cell_signature(rows, batch, hidden: int, gate_order=ONNX_GRU_ORDER) -> Signature:
    """The signature of a gru_cell call; rows and batch may be symbolic dim names."""
    return Signature.make([((rows, 3 * hidden), "float32"), ((), "int64"), ((1, batch, hidden), "float32"),
                           ((3 * hidden, hidden), "float32"), ((hidden,), "float32")], gate_order=list(gate_order))
