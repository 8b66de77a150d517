"""lstm_cell in one kernel: the recurrent GEMV over W_hh, the input-side row, the gates and the c/h update.

The op (``nimble/ops/lstm_cell.py``) is ``state' = stack(h_t, c_t)`` from row t of ``gates_x`` (N, 4H), the state
(2, B, H) and W_hh (4H, H). The template reads W_hh packed gate-interleaved, once, when the model is compiled:

    wp[a, r, g, j] = W_hh[gate_order[g] * H + a * bn + j, r]      (ceil(H / bn), H, 4, bn), zero padded

so that one block ``a`` of bn hidden units carries the rows of all four gates (i, f, g, o) of those units, and a
step of the reduction over r reads 4 * bn contiguous floats. Stages, one loop nest:

* ``out[s, b, u]`` (s = 0: h_t, s = 1: c_t): loops (u / bn, b, s, u % bn), the block loop parallel over the
  thread pool, s unrolled (h_t's copy recomputes c_t from the same registers), u % bn vectorized;
* ``row[b]``, the row of gates_x read (its range check raises `nimble.OutOfRangeError`), and
  ``rec[b, g, u] = sum_r h[b, r] * wp[u / bn, r, g, u % bn]`` computed at the row loop b of ``out``: a
  (1, 4, bn) accumulator block in vector registers (4 * bn / lanes of them) while r runs (unrolled by
  k_unroll); the weights stream through once per batch row (from L3 for the first, L2 after).

Knobs: block (bn: hidden units a tile; a multiple of the vector width), k_unroll, parallel ("blocks", "none"),
prefetch (bytes ahead in the weight stream; 0 leaves it to the hardware), alternate (1: odd steps run the
blocks backwards, ``Stage.reverse``). The packed W_hh of the paper's LSTM is 4 MiB a layer, twice a 2 MiB L2;
read in one direction every step, each block has left the cache by the time it is read again (least recently
used goes first), so every step streams all 4 MiB from L3. Reversed every other step, a step starts on the
blocks the last one read last, still in L2: measured on an Intel Xeon (2 MiB L2), 158 -> 115 us a step, 1
thread. A parallel loop keeps its order when it runs on several threads (chunks move between threads).
Fallback (documented heuristic): bn = 4 vectors where 4 accumulators a gate, a broadcast and a load fit the
registers (AVX-512's 32: 64 units, 16 accumulators for the LSTM) and pad H no further than 2 vectors do, else 2
vectors (AVX2's 16 ymm: 8 accumulators, 8 independent FMA chains); k_unroll 8; parallel over blocks (the pool
keeps a region serial when the work is small); alternate (free where the weights fit a cache: the order of
cached reads does not matter); no prefetch (the paper's LSTM, H = 512, 1 thread on Zen 1: 0, 1, 2 and 4 KiB
ahead within +-5% of each other, run to run). Measured on an Intel Xeon (AVX-512, whole 2-layer LSTM, in one
process against bn = 32 / k_unroll 4): H = 384 0.93x the time at 1 thread, 0.87x at 2; H = 512 0.98x and
0.86-0.92x; H = 1024 0.98x and 0.99x; H = 256 0.99x and 1.01x. AVX2 code on the same Xeon (``NIMBLE_CPU=haswell``),
H = 512: the LSTM (bn 16, k_unroll 8 against 4) 0.99x and 0.97x; the GRU (3 gates: bn 32 against 16) 0.96x at 1
thread, 0.90-1.00x at 2.
"""
from __future__ import annotations

import numpy as np

from .. import te
from ..errors import OutOfRangeError, ShapeError
from ..codegen.isa import host_isa
from .base import Instance, Signature, Template, TemplateError
from .gemm import PREFETCH_BYTES
from .space import ConfigSpace

TORCH_GATE_ORDER = (0, 1, 2, 3)


def check_gate_order(gate_order) -> tuple:
    """``gate_order`` as a tuple of ints, a permutation of 0..3; raises ShapeError otherwise."""
    order = tuple(int(g) for g in gate_order) if isinstance(gate_order, (tuple, list)) else None
    if order is None or sorted(order) != [0, 1, 2, 3]:
        raise ShapeError(f"lstm_cell: gate_order must be a permutation of (0, 1, 2, 3), got {gate_order!r}")
    return order


def lstm_cell_reference(gates_x, t, state, weight, gate_order=TORCH_GATE_ORDER) -> np.ndarray:
    """numpy lstm_cell (float64 inside), as the module docstring defines it."""
    order = check_gate_order(gate_order)
    _, batch, hidden = state.shape
    step = int(t)
    if batch and not (0 <= step and (step + 1) * batch <= gates_x.shape[0]):
        raise OutOfRangeError(f"lstm_cell: step {step} of batch {batch} is outside the {gates_x.shape[0]} rows "
                              "of gates_x")
    h, c = state[0].astype(np.float64), state[1].astype(np.float64)
    rows = gates_x[step * batch: (step + 1) * batch].astype(np.float64)
    pre = rows + h @ weight.astype(np.float64).T
    gate = [pre[:, order[k] * hidden: (order[k] + 1) * hidden] for k in range(4)]
    def sig(v):
        return 1.0 / (1.0 + np.exp(-v))

    new_c = sig(gate[1]) * c + sig(gate[0]) * np.tanh(gate[2])
    new_h = sig(gate[3]) * np.tanh(new_c)
    return np.stack([new_h, new_c]).astype(state.dtype)


def _static(d) -> int | None:
    if isinstance(d, int):
        return d
    return d.value if isinstance(d, te.IntImm) else None


def recurrent_cell_stages(name: str, gates_x, t, state, weight, order: tuple, bn: int | None, cell) -> dict:
    """The stages (dict: "rec", "row" (template only), "out") of a one-kernel recurrent step ``name`` whose weight
    has G = len(order) gate blocks: (G * H, H) when ``bn`` is None, else packed (ceil(H / bn), H, G, bn).
    ``out[s, b, u] = cell(s, b, u, recurrent, x_side)``: ``recurrent(k)`` is gate k's h @ R^T at (b, u),
    ``x_side(k)`` its column of row t of ``gates_x``; a t outside ``gates_x``'s rows fails the step check."""
    gates = len(order)
    batch, hidden = state.shape[1], _static(state.shape[2])
    r = te.reduce_axis(hidden, "r")
    if bn is None:
        rec = te.compute((batch, gates * hidden), lambda b, col: te.sum(state[0, b, r] * weight[col, r], axis=r),
                         name="rec")

        def rec_at(k, b, u):
            return rec[b, order[k] * hidden + u]
    else:
        padded = -(-hidden // bn) * bn
        rec = te.compute((batch, gates, padded),
                         lambda b, g, u: te.sum(state[0, b, r] * weight[u // bn, r, g, u % bn], axis=r), name="rec")

        def rec_at(k, b, u):
            return rec[b, k, u]

    row, at_row, checks = step_rows(name, gates_x, t, batch, bn is not None)

    def value(s, b, u):
        r_b = at_row(b)
        return cell(s, b, u, lambda k: rec_at(k, b, u), lambda k: gates_x[r_b, order[k] * hidden + u])

    out = te.compute(tuple(state.shape), value, name=name, checks=checks if row is None else None)
    return {"rec": rec, "row": row, "out": out}


def step_rows(name: str, gates_x, t, batch, as_stage: bool):
    """(row stage or None, at_row(b), checks) of a recurrent step: the row of ``gates_x`` batch row b reads at step
    t, and the check that t lies inside its rows (`nimble.OutOfRangeError`). ``as_stage``: the rows (and their
    check) are a stage of their own, computed once per batch row outside the vector loop (the templates); else
    ``checks`` belongs on the stage that reads them."""
    rows = gates_x.shape[0]

    def row_of(b):  # the check makes the clamp a no-op
        return te.min_(te.max_(t[()] * batch + b, 0), rows - 1)

    message = f"{name}: step t is outside the rows of gates_x"

    def checks(*_):
        step = t[()]
        return [(te.all_(step >= 0, (step + 1) * batch <= rows), message)]

    row = te.compute((batch,), row_of, name="row", checks=checks) if as_stage else None
    return row, (row_of if row is None else (lambda b: row[b])), checks


def lstm_cell_compute(gates_x, t, state, weight, order: tuple, bn: int | None = None) -> dict:
    """The stages (dict: "rec", "row" (template only), "out") of lstm_cell over te tensors; ``weight`` is W_hh
    (4H, H) when ``bn`` is None, else the packed wp (ceil(H / bn), H, 4, bn)."""

    def cell(s, b, u, recurrent, x_side):
        def pre(k):
            return recurrent(k) + x_side(k)

        new_c = te.sigmoid(pre(1)) * state[1, b, u] + te.sigmoid(pre(0)) * te.tanh(pre(2))
        return te.select(te.eq(s, 0), te.sigmoid(pre(3)) * te.tanh(new_c), new_c)

    return recurrent_cell_stages("lstm_cell", gates_x, t, state, weight, order, bn, cell)


def pack_gate_weight(w: np.ndarray, bn: int, order: tuple) -> np.ndarray:
    """A recurrent weight of G = len(order) gate blocks (G * H, H) -> (ceil(H / bn), H, G, bn), gate-interleaved
    as the module docstring says for W_hh (gate g is block order[g])."""
    hidden, gates = w.shape[1], len(order)
    blocks = -(-hidden // bn)
    out = np.zeros((blocks, hidden, gates, bn), np.float32)
    for g in range(gates):
        rows = np.zeros((blocks * bn, hidden), np.float32)
        rows[:hidden] = w[order[g] * hidden:(order[g] + 1) * hidden]
        out[:, :, g, :] = rows.reshape(blocks, bn, hidden).transpose(0, 2, 1)
    return out


def pack_lstm_weight(w: np.ndarray, bn: int, order: tuple) -> np.ndarray:
    """W_hh (4H, H) -> wp (ceil(H / bn), H, 4, bn), gate-interleaved as the module docstring says."""
    return pack_gate_weight(w, bn, order)


def recurrent_cell_space(name: str) -> ConfigSpace:
    """The knobs of a one-kernel recurrent step (lstm_cell, gru_cell; the module docstring)."""
    lanes = host_isa().f32_lanes
    s = ConfigSpace(name)
    s.define_knob("block", tuple(lanes * k for k in (1, 2, 3, 4)))
    s.define_knob("k_unroll", (1, 2, 4, 8))
    s.define_annotate("parallel", ("blocks", "none"))
    s.define_knob("prefetch", PREFETCH_BYTES, default=0)
    s.define_knob("alternate", (0, 1), default=0)
    return s


def recurrent_cell_fallback(space: ConfigSpace, hidden: int, gates: int):
    """The documented fallback of a recurrent step of ``hidden`` units whose reduction pass keeps ``gates``
    accumulator blocks (the module docstring)."""
    isa = host_isa()
    lanes = isa.f32_lanes

    def padded(vectors):
        return -(-hidden // (vectors * lanes)) * vectors * lanes

    vectors = 4 if gates * 4 + 2 <= isa.registers and padded(4) == padded(2) else 2
    return space.config(block=vectors * lanes, k_unroll=8, parallel="blocks", prefetch=0, alternate=1)


def schedule_recurrent_cell(stages: dict, t, weight, gates: int, cfg):
    """The schedule of ``stages`` ("rec", "row", "out" of a recurrent step over a packed weight of ``gates``
    gate blocks; ``t`` the step placeholder) for ``cfg``, as the module docstring says."""
    s = te.create_schedule(stages["out"])
    schedule_cell_phase(s, stages["out"], stages["rec"], stages["row"], t, weight, gates, cfg)
    return s


def schedule_cell_phase(s, out, rec, row, t, weight, gates: int, cfg) -> None:
    """Schedule one pass of a recurrent step over its packed weight: ``out`` (rows, B, H) by blocks of bn units
    (parallel, backwards on odd steps with ``alternate``), ``rec`` (B, gates, bn-padded H: its reduction over
    the weight) and ``row`` (the gates_x row, or None) computed at out's batch loop."""
    bn = cfg["block"]
    state_row, b, u = s[out].axis
    uo, ui = s[out].split(u, bn)
    s[out].reorder(uo, b, state_row, ui)
    s[out].unroll(state_row)
    s[out].vectorize(ui)
    if cfg["parallel"] == "blocks":
        s[out].parallel(uo)
    if cfg["alternate"]:  # odd steps run the blocks backwards: they start on the blocks the last step left cached
        s[out].reverse(uo, when=te.eq(t[()] % 2, 1))
    if row is not None:
        s[row].compute_at(s[out], b)
    s[rec].compute_at(s[out], b)
    s[rec].overcompute()
    rb, rg, ru = s[rec].axis
    (rr,) = s[rec].reduce_axis
    ro, ri = s[rec].split(rr, cfg["k_unroll"])
    s[rec].reorder(ro, ri, rb, rg, ru)
    s[rec].unroll(ri)
    if cfg["prefetch"]:  # a step of r reads gates * bn weights
        s[rec].prefetch(weight, ri, max(1, cfg["prefetch"] // (4 * gates * bn)))
    s[rec].unroll(rb)
    s[rec].unroll(rg)
    s[rec].vectorize(ru)


def lstm_cell_dims(sig: Signature) -> dict:
    """Checked sizes of an lstm_cell signature: rows (N), batch, hidden, the gate order."""
    if len(sig.args) != 4:
        raise TemplateError(f"lstm_cell: expected gates_x, t, state, weight, got {len(sig.args)} arguments")
    (gs, gd), (ts, td), (ss, sd), (ws, wd) = sig.args
    if gd != "float32" or sd != "float32" or wd != "float32" or td != "int64":
        raise TemplateError(f"lstm_cell: expected float32 gates_x, state, weight and an int64 t, got {gd} {td} {sd} "
                            f"{wd}")
    if len(gs) != 2 or ts != () or len(ss) != 3 or ss[0] != 2 or len(ws) != 2:
        raise TemplateError(f"lstm_cell: shapes must be (N, 4H), (), (2, B, H), (4H, H); got {gs} {ts} {ss} {ws}")
    hidden = ss[2]
    if not isinstance(hidden, int) or hidden < 1 or gs[1] != 4 * hidden or ws != (4 * hidden, hidden):
        raise TemplateError(f"lstm_cell: hidden size {hidden} does not match gates_x {gs} and weight {ws}")
    return {"rows": gs[0], "batch": ss[1], "hidden": hidden, "order": check_gate_order(sig.attr("gate_order"))}


class LSTMCell(Template):
    def space(self, sig):
        lstm_cell_dims(sig)
        return recurrent_cell_space("lstm_cell")

    def fallback(self, sig, space, hints=None):
        return recurrent_cell_fallback(space, lstm_cell_dims(sig)["hidden"], 4)

    def instantiate(self, sig, cfg):
        dims = lstm_cell_dims(sig)
        bn, hidden = cfg["block"], dims["hidden"]
        args = list(sig.args)
        args[3] = ((-(-hidden // bn), hidden, 4, bn), "float32")  # the kernel takes the packed weight
        phs, tvars = Signature(tuple(args), sig.attrs).placeholders(["gates_x", "t", "state", "weight"])
        st = lstm_cell_compute(*phs, dims["order"], bn)
        out = st["out"]
        s = schedule_recurrent_cell(st, phs[1], phs[3], 4, cfg)

        def prepare(inputs, bn=bn, order=dims["order"]):
            inputs = list(inputs)
            inputs[3] = pack_lstm_weight(np.asarray(inputs[3], np.float32), bn, order)
            return inputs

        return Instance(s, [*phs, out], tvars, [], prepare)

    def reference(self, sig, inputs):
        return [lstm_cell_reference(*inputs, gate_order=lstm_cell_dims(sig)["order"])]

    def random_inputs(self, sig, dims, rng):
        gs, _, ss, ws = sig.concrete(dims)
        batch = ss[1]
        steps = gs[0] // batch if batch else gs[0]
        t = np.array(rng.integers(0, max(steps, 1)), np.int64)
        bound = 1.0 / np.sqrt(ss[2])
        return [rng.standard_normal(gs).astype(np.float32), t, rng.standard_normal(ss).astype(np.float32),
                rng.uniform(-bound, bound, ws).astype(np.float32)]

    def flops(self, sig, dims):
        d = lstm_cell_dims(sig)
        batch = dims[d["batch"]] if isinstance(d["batch"], str) else d["batch"]
        return 2 * batch * 4 * d["hidden"] * d["hidden"]


def lstm_cell_signature(rows, batch, hidden: int, gate_order=(0, 1, 2, 3)) -> Signature:
    """The signature of an lstm_cell call; rows and batch may be symbolic dim names."""
    return Signature.make([((rows, 4 * hidden), "float32"), ((), "int64"), ((2, batch, hidden), "float32"),
                           ((4 * hidden, hidden), "float32")], gate_order=list(gate_order))
