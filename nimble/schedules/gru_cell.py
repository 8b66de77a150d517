"""gru_cell in one kernel: the recurrent GEMV over R, the input-side row, the gates and the h update.

The op (``nimble/ops/gru_cell.py``) is ONNX's GRU step: from row t of ``gates_x`` (N, 3H) (x W^T + Wb, plus the
parts of Rb that only add), the state h (1, B, H), R (3H, H) and ``bias_n`` (H,):

    z = sigmoid(gx_z + h R_z^T),  r = sigmoid(gx_r + h R_r^T),
    n = tanh(gx_n + r * (h R_n^T + bias_n))          linear_before_reset=1 (PyTorch's GRU)
    n = tanh(gx_n + (r * h) R_n^T + bias_n)          linear_before_reset=0 (ONNX's default; Keras's GRU)
    h' = (1 - z) * n + z * h

With linear_before_reset=0 the candidate's product needs every unit's reset gate first, so the kernel makes two
passes over R: the z and r blocks (giving z and r * h, B x 2H), then the n block; each pass is the one below.

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
                        schedule_cell_phase, schedule_recurrent_cell, step_rows)

ONNX_GRU_ORDER = (0, 1, 2)
TORCH_GRU_ORDER = (1, 0, 2)


def check_gru_order(gate_order) -> tuple:
    """``gate_order`` as a tuple of ints, a permutation of 0..2; raises ShapeError otherwise."""
    order = tuple(int(g) for g in gate_order) if isinstance(gate_order, (tuple, list)) else None
    if order is None or sorted(order) != [0, 1, 2]:
        raise ShapeError(f"gru_cell: gate_order must be a permutation of (0, 1, 2), got {gate_order!r}")
    return order


def gru_cell_reference(gates_x, t, state, weight, bias_n, gate_order=ONNX_GRU_ORDER,
                       linear_before_reset: int = 1) -> np.ndarray:
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
    if linear_before_reset:
        n = np.tanh(block(rows, 2) + r * (block(rec, 2) + bias_n.astype(np.float64)))
    else:
        r_n = weight.astype(np.float64)[order[2] * hidden:(order[2] + 1) * hidden]
        n = np.tanh(block(rows, 2) + (r * h) @ r_n.T + bias_n.astype(np.float64))
    return ((1.0 - z) * n + z * h)[None].astype(state.dtype)


def gru_cell_compute(gates_x, t, state, weight, bias_n, order: tuple, bn: int | None = None,
                     linear_before_reset: int = 1) -> dict:
    """The stages of gru_cell over te tensors; ``weight`` is R (3H, H) when ``bn`` is None, else the packed
    (ceil(H / bn), H, 3, bn). linear_before_reset=1: "rec", "row" (template only), "out", one pass over R;
    0: also "zr_rec" and "zr" (z and r * h, the first pass over the z and r blocks), "rec" then being the
    candidate's product over r * h."""
    if linear_before_reset:
        def cell(s, b, u, recurrent, x_side):
            z = te.sigmoid(x_side(0) + recurrent(0))
            reset = te.sigmoid(x_side(1) + recurrent(1))
            n = te.tanh(x_side(2) + reset * (recurrent(2) + bias_n[u]))
            return (1.0 - z) * n + z * state[s, b, u]

        return recurrent_cell_stages("gru_cell", gates_x, t, state, weight, order, bn, cell)
    return _gru_cell_reset_first(gates_x, t, state, weight, bias_n, order, bn)


def _gru_cell_reset_first(gates_x, t, state, weight, bias_n, order: tuple, bn: int | None) -> dict:
    """linear_before_reset=0: pass 1 computes zr[0] = z and zr[1] = r * h (both (B, H)) from the z and r blocks,
    pass 2 the candidate's product over zr[1] and the new h. The packed weight (``pack_gru_weight``) is flat: the
    z and r blocks gate-interleaved, (ceil(H / bn), H, 2, bn), then the n block, (ceil(H / bn), H, bn), so that
    each pass streams only its own part."""
    batch = state.shape[1]
    hidden = state.shape[2].value if isinstance(state.shape[2], te.IntImm) else state.shape[2]
    row, at_row, checks = step_rows("gru_cell", gates_x, t, batch, bn is not None)
    r1, r2 = te.reduce_axis(hidden, "r"), te.reduce_axis(hidden, "r")
    padded = hidden if bn is None else -(-hidden // bn) * bn
    n_part = 2 * padded * hidden  # packed: where the n block's part of the flat weight starts
    if bn is None:
        def gate_row(g, u):  # the z or r block's row of R
            return te.select(te.eq(g, 0), te.const(order[0] * hidden), te.const(order[1] * hidden)) + u

        zr_rec = te.compute((batch, 2, hidden), lambda b, g, u: te.sum(state[0, b, r1] * weight[gate_row(g, u), r1],
                                                                       axis=r1), name="zr_rec")
    else:
        zr_rec = te.compute((batch, 2, padded), lambda b, g, u: te.sum(
            state[0, b, r1] * weight[(((u // bn) * hidden + r1.var) * 2 + g) * bn + u % bn], axis=r1), name="zr_rec")

    def zr_value(s, b, u):
        z = te.sigmoid(gates_x[at_row(b), order[0] * hidden + u] + zr_rec[b, 0, u])
        reset = te.sigmoid(gates_x[at_row(b), order[1] * hidden + u] + zr_rec[b, 1, u])
        return te.select(te.eq(s, 0), z, reset * state[0, b, u])

    zr = te.compute((2, batch, hidden), zr_value, name="zr", checks=checks if row is None else None)
    if bn is None:
        rec = te.compute((batch, 1, hidden),
                         lambda b, g, u: te.sum(zr[1, b, r2] * weight[order[2] * hidden + u, r2], axis=r2), name="rec")
    else:
        rec = te.compute((batch, 1, padded), lambda b, g, u: te.sum(
            zr[1, b, r2] * weight[n_part + ((u // bn) * hidden + r2.var) * bn + u % bn], axis=r2), name="rec")

    def value(s, b, u):
        n = te.tanh(gates_x[at_row(b), order[2] * hidden + u] + rec[b, 0, u] + bias_n[u])
        z = zr[0, b, u]
        return (1.0 - z) * n + z * state[s, b, u]

    out = te.compute(tuple(state.shape), value, name="gru_cell")
    return {"zr_rec": zr_rec, "zr": zr, "row": row, "rec": rec, "out": out}


def packed_gru_shape(hidden: int, bn: int, linear_before_reset: int) -> tuple:
    """The shape of R packed for the kernel (``pack_gru_weight``)."""
    blocks = -(-hidden // bn)
    return (blocks, hidden, 3, bn) if linear_before_reset else (3 * blocks * hidden * bn,)


def pack_gru_weight(w: np.ndarray, bn: int, order: tuple, linear_before_reset: int) -> np.ndarray:
    """R (3H, H) packed for the kernel: gate-interleaved, (ceil(H / bn), H, 3, bn), for linear_before_reset=1;
    for 0 flat, the z and r blocks gate-interleaved and then the n block (``_gru_cell_reset_first``)."""
    if linear_before_reset:
        return pack_gate_weight(w, bn, order)
    hidden = w.shape[1]
    blocks_of = [w[order[g] * hidden:(order[g] + 1) * hidden] for g in range(3)]
    zr = pack_gate_weight(np.concatenate(blocks_of[:2]), bn, (0, 1))
    n = pack_gate_weight(blocks_of[2], bn, (0,))
    return np.concatenate([zr.ravel(), n.ravel()])


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
    before = sig.attr("linear_before_reset", 1)
    if before not in (0, 1) or isinstance(before, bool):
        raise TemplateError(f"gru_cell: linear_before_reset must be 0 or 1, got {before!r}")
    return {"rows": gs[0], "batch": ss[1], "hidden": hidden, "order": check_gru_order(sig.attr("gate_order")),
            "linear_before_reset": before}


class GRUCell(Template):
    def space(self, sig):
        gru_cell_dims(sig)
        return recurrent_cell_space("gru_cell")

    def fallback(self, sig, space, hints=None):
        return recurrent_cell_fallback(space, gru_cell_dims(sig)["hidden"], 3)

    def instantiate(self, sig, cfg):
        dims = gru_cell_dims(sig)
        bn, hidden = cfg["block"], dims["hidden"]
        args = list(sig.args)
        args[3] = (packed_gru_shape(hidden, bn, dims["linear_before_reset"]), "float32")  # it takes R packed
        phs, tvars = Signature(tuple(args), sig.attrs).placeholders(["gates_x", "t", "state", "weight", "bias_n"])
        st = gru_cell_compute(*phs, dims["order"], bn, dims["linear_before_reset"])
        if dims["linear_before_reset"]:
            s = schedule_recurrent_cell(st, phs[1], phs[3], 3, cfg)
        else:  # two passes over R, each scheduled as the one pass of linear_before_reset=1
            s = te.create_schedule(st["out"])
            schedule_cell_phase(s, st["zr"], st["zr_rec"], None, phs[1], phs[3], 2, cfg)  # row: read by both
            schedule_cell_phase(s, st["out"], st["rec"], None, phs[1], phs[3], 1, cfg)

        def prepare(inputs, bn=bn, order=dims["order"], before=dims["linear_before_reset"]):
            inputs = list(inputs)
            inputs[3] = pack_gru_weight(np.asarray(inputs[3], np.float32), bn, order, before)
            return inputs

        return Instance(s, [*phs, st["out"]], tvars, [], prepare)

    def reference(self, sig, inputs):
        dims = gru_cell_dims(sig)
        return [gru_cell_reference(*inputs, gate_order=dims["order"], linear_before_reset=dims["linear_before_reset"])]

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


def gru_cell_signature(rows, batch, hidden: int, gate_order=ONNX_GRU_ORDER, linear_before_reset: int = 1) -> Signature:
    """The signature of a gru_cell call; rows and batch may be symbolic dim names. linear_before_reset=1 is left
    out of the attributes (the signature, and so the records, of the cells before the attribute existed)."""
    extra = {} if linear_before_reset == 1 else {"linear_before_reset": int(linear_before_reset)}
    return Signature.make([((rows, 3 * hidden), "float32"), ((), "int64"), ((1, batch, hidden), "float32"),
                           ((3 * hidden, hidden), "float32"), ((hidden,), "float32")], gate_order=list(gate_order),
                          **extra)
