"""The binary Tree-LSTM of `tree_lstm.py`, autobatched: the nodes of one height run together.

The per-node recursion (`tree_lstm.build_module`) runs one small GEMM per node (1 row). Here, as
TensorFlow Fold and DyNet batch a dynamic graph, every leaf is one row of a single leaf GEMM and
every internal node of height k (1 + the larger height of its children) is one row of level k's
GEMM: a node's children are lower, so a level only reads states made before it. Same weights,
same math, same result (up to float summation order).

Inputs, made by `to_inputs` from the nested-tuple tree in one Python pass:

    leaves (L, I)                 the leaf vectors, in left-to-right order
    levels List[Tensor[(2, m_k)]] per height k = 1, 2, ...: the state-table rows of the left (row 0)
                                  and right (row 1) children of level k's m_k nodes

The state tables H, C (rows: leaves, then level 1's nodes, level 2's, ...) grow by one
concatenation per level; the root is the last row. `@main(leaves, levels)` returns the root's
(h, c), as `tree_lstm`'s `@main` does. Per level: 2 gathers of children states, one GEMM for both
node layers (`iouh` and `fh` stacked: 2H -> 5H), the gates, 2 concatenations.
"""
from __future__ import annotations

import numpy as np

from .. import ops as nb
from ..errors import ShapeError
from ..ir import prelude
from ..ir.builder import Builder, const, get, match, pctor, tuple_, var
from ..ir.expr import Constant, Function, GlobalVar
from ..ir.module import IRModule
from ..ir.types import Any, TensorType, TupleType
from .layers import linear, weight
from .tree_lstm import TreeLSTMConfig, random_weights  # noqa: F401 (same config and weights)


def schedule(tree, input_size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(leaves (L, I) float32, per-height child rows [(2, m_k) int64]) of a nested-tuple tree."""
    leaves: list = []
    by_height: dict[int, list] = {}

    def visit(t, depth):
        if depth > 100_000:
            raise ShapeError("tree deeper than 100,000 levels")
        if isinstance(t, tuple):
            if len(t) != 2:
                raise ShapeError(f"a tree node must have 2 children, got {len(t)}")
            left, hl = visit(t[0], depth + 1)
            right, hr = visit(t[1], depth + 1)
            height = 1 + max(hl, hr)
            nodes = by_height.setdefault(height, [])
            nodes.append((left, right))
            return ("node", height, len(nodes) - 1), height
        leaf = np.asarray(t, dtype=np.float32).reshape(-1)
        if leaf.shape[0] != input_size:
            raise ShapeError(f"a tree leaf must hold {input_size} values, got {leaf.shape[0]}")
        leaves.append(leaf)
        return ("leaf", len(leaves) - 1), 0

    visit(tree, 0)
    base, start = len(leaves), {}
    for height in sorted(by_height):
        start[height] = base
        base += len(by_height[height])

    def row(ref):
        return ref[1] if ref[0] == "leaf" else start[ref[1]] + ref[2]

    levels = [np.array([[row(l) for l, _ in by_height[h]], [row(r) for _, r in by_height[h]]], dtype=np.int64)
              for h in sorted(by_height)]
    return np.stack(leaves), levels


def to_inputs(tree, config: TreeLSTMConfig = TreeLSTMConfig()) -> tuple:
    """The arguments of `@main` for one nested-tuple tree: (leaves, levels as a `List` value)."""
    leaves, levels = schedule(tree, config.input_size)
    return leaves, prelude.from_python_list(levels)


def _gates(b: Builder, iou, hidden: int):
    cols = [dict(begin=(k * hidden,), end=((k + 1) * hidden,), axes=(1,)) for k in range(5)]
    part = [nb.strided_slice(iou, **c) for c in cols]
    return (nb.sigmoid(part[0]), nb.sigmoid(part[1]), nb.tanh(part[2])), part[3:]


def _last_row(b: Builder, table, name: str):
    n = nb.take(nb.shape_of(table), const(0, "int64"), axis=0)
    return b.let(name, nb.expand_dims(nb.take(table, nb.subtract(n, const(1, "int64")), axis=0), axis=0))


def _level_loop(weights: dict, config: TreeLSTMConfig, loop: GlobalVar) -> Function:
    """`@levels(H (?, h), C (?, h), levels) -> (h_root (1, h), c_root (1, h))`."""
    h = config.hidden_size
    table_t = TensorType((Any, h))
    levels_t = prelude.list_type(TensorType((2, Any), "int64"))
    H, C, lv = var("H", type=table_t), var("C", type=table_t), var("levels", type=levels_t)
    pair, rest = var("pair", type=TensorType((2, Any), "int64")), var("rest", type=levels_t)
    w = np.concatenate([weight(weights, "iouh.weight", (3 * h, 2 * h)).value,
                        weight(weights, "fh.weight", (2 * h, 2 * h)).value])
    bias = np.concatenate([weight(weights, "iouh.bias", (3 * h,)).value, weight(weights, "fh.bias", (2 * h,)).value])
    b = Builder()
    left = b.let("left", nb.take(pair, const(0, "int64"), axis=0))
    right = b.let("right", nb.take(pair, const(1, "int64"), axis=0))
    hs = b.let("hs", nb.concatenate([nb.take(H, left, axis=0), nb.take(H, right, axis=0)], axis=1))
    pre = b.let("pre", nb.add(nb.dense(hs, Constant(w, "iouh_fh.weight")), Constant(bias, "iouh_fh.bias")))
    (i, o, u), (f_left, f_right) = _gates(b, pre, h)
    kept = nb.add(nb.multiply(nb.sigmoid(f_left), nb.take(C, left, axis=0)),
                  nb.multiply(nb.sigmoid(f_right), nb.take(C, right, axis=0)))
    c = b.let("c", nb.add(nb.multiply(i, u), kept))
    new_h = b.let("h", nb.multiply(o, nb.tanh(c)))
    step = b.ret(loop(nb.concatenate([H, new_h], axis=0), nb.concatenate([C, c], axis=0), rest))
    done = Builder()
    root = done.ret(tuple_(_last_row(done, H, "h_root"), _last_row(done, C, "c_root")))
    body = match(lv, [(pctor(prelude.Cons, pair, rest), step), (pctor(prelude.Nil), root)])
    state = TensorType((1, h))
    return Function([H, C, lv], body, TupleType((state, state)))


def build_module(weights: dict, config: TreeLSTMConfig = TreeLSTMConfig()) -> IRModule:
    """`@main(leaves (?, I), levels)`: the leaf cell over all leaves at once, then `@levels`."""
    h = config.hidden_size
    mod = prelude.add_prelude(IRModule())
    loop = GlobalVar("levels")
    mod.define(loop, _level_loop(weights, config, loop))
    leaves = var("leaves", shape=(Any, config.input_size))
    levels = var("levels", type=prelude.list_type(TensorType((2, Any), "int64")))
    b = Builder()
    iou = b.let("iou", linear(leaves, weights, "ioux", config.input_size, 3 * h))
    parts = b.let("iou_parts", nb.split(iou, indices_or_sections=3, axis=1))
    c = b.let("c", nb.multiply(nb.sigmoid(get(parts, 0)), nb.tanh(get(parts, 2))))
    h0 = b.let("h", nb.multiply(nb.sigmoid(get(parts, 1)), nb.tanh(c)))
    body = b.ret(loop(h0, c, levels))
    state = TensorType((1, h))
    mod.define("main", Function([leaves, levels], body, TupleType((state, state))))
    return mod
