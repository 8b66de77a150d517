"""Features of one config of one task for the cost model, read from the lowered loop IR.

The vector has a fixed length (``FEATURE_NAMES``):

* the bucket's shape values (log2 of up to 3 symbolic dims) — so one model serves every
  bucket of a task;
* whole-kernel counts: innermost-statement executions, float operations, loads, stores,
  loops by kind, the parallel trip count, unrolled body size, vector lanes, local (stack) and
  heap bytes, guards;
* the main loop nest (the path to the most executed statement), outermost first, up to
  ``MAX_DEPTH`` levels: log2 extent, kind (one-hot), whether it is the innermost loop;
* per accessed buffer (up to ``MAX_BUFFERS``, kernel arguments in order): log2 bytes touched
  per outermost iteration, stride of the innermost loop (0, 1, other), reuse (accesses per
  distinct element);
* the config's knobs as numbers (value, or position in the knob's list when not a number).

Symbolic extents are evaluated at the bucket's representative values (loop variables at 0).
"""
from __future__ import annotations

import math

import numpy as np

from ..te.expr import BinaryOp, Call, Div, Expr, IntImm, Var, is_float
from ..te.visit import walk
from ..tir.nodes import Allocate, Assert, For, IfThenElse, LetStmt, Load, Seq, Store, TileMatmul, While

MAX_DEPTH = 10
MAX_BUFFERS = 5
MAX_DIMS = 3
KINDS = ("serial", "parallel", "vectorized", "unrolled")
_GLOBAL = ("work", "flops", "loads", "stores", "loops", "parallel_loops", "vector_loops", "unrolled_loops",
           "parallel_extent", "unrolled_body", "vector_lanes", "local_bytes", "heap_bytes", "guards")
FEATURE_NAMES = (
    [f"dim{i}" for i in range(MAX_DIMS)]
    + list(_GLOBAL)
    + [f"loop{d}_{f}" for d in range(MAX_DEPTH) for f in ("extent",) + KINDS + ("innermost",)]
    + [f"buf{b}_{f}" for b in range(MAX_BUFFERS) for f in ("bytes", "stride0", "stride1", "strideN", "reuse")]
)

_SIZES = {"float32": 4, "float64": 8, "int32": 4, "int64": 8, "bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2,
          "uint32": 4, "uint64": 8, "float16": 2, "bfloat16": 2}


def _log2(x: float) -> float:
    return math.log2(x + 1.0) if x > 0 else 0.0


def _eval(e: Expr, env: dict) -> int:
    """Integer value of an index expression; unknown variables (loop variables) count as 0."""
    if isinstance(e, IntImm):
        return e.value
    if isinstance(e, Var):
        return env.get(e, 0)
    if isinstance(e, BinaryOp):
        a, b = _eval(e.a, env), _eval(e.b, env)
        sym = e.symbol
        if sym == "+":
            return a + b
        if sym == "-":
            return a - b
        if sym == "*":
            return a * b
        if sym == "//":
            return a // b if b else 0
        if sym == "%":
            return a % b if b else 0
        if sym == "min":
            return min(a, b)
        if sym == "max":
            return max(a, b)
    return 0


def _float_ops(e: Expr) -> int:
    n = 0
    for node in walk(e):
        if isinstance(node, BinaryOp) and is_float(node.dtype):
            n += 4 if isinstance(node, Div) else 1
        elif isinstance(node, Call):
            n += 10
    return n


class _Walker:
    def __init__(self, env: dict, params: tuple):
        self.env = env
        self.params = list(params)
        self.g = dict.fromkeys(_GLOBAL, 0.0)
        self.best_path: list = []
        self.best_work = -1.0
        self.buf: dict = {}  # Buffer -> [bytes touched, stride class counts, accesses]

    def visit(self, s, path: list, mult: float) -> None:
        if isinstance(s, For):
            ext = max(_eval(s.extent, self.env), 0)
            g = self.g
            g["loops"] += 1
            if s.kind == "parallel":
                g["parallel_loops"] += 1
                g["parallel_extent"] = max(g["parallel_extent"], ext)
            elif s.kind == "vectorized":
                g["vector_loops"] += 1
                g["vector_lanes"] = max(g["vector_lanes"], ext)
            elif s.kind == "unrolled":
                g["unrolled_loops"] += 1
            self.visit(s.body, path + [(s.var, ext, s.kind)], mult * ext)
        elif isinstance(s, Seq):
            for x in s.stmts:
                self.visit(x, path, mult)
        elif isinstance(s, IfThenElse):
            self.g["guards"] += mult
            self.visit(s.then_case, path, mult)
            if s.else_case is not None:
                self.visit(s.else_case, path, mult)
        elif isinstance(s, (LetStmt, Assert, While)):
            self.visit(s.body, path, mult)
        elif isinstance(s, Allocate):
            nbytes = _eval(s.extent, self.env) * _SIZES[s.buffer.dtype] * max(1.0, mult)
            key = "local_bytes" if s.buffer.scope == "local" or isinstance(s.extent, IntImm) else "heap_bytes"
            self.g[key] += nbytes
            self.visit(s.body, path, mult)
        elif isinstance(s, Store):
            self._statement(s, path, mult)
        elif isinstance(s, TileMatmul):  # its tiles counted as 16-lane operations
            rows = max(_eval(s.rows, self.env), 0)
            g = self.g
            g["work"] += mult * rows * s.cols * s.k / 16
            g["flops"] += mult * 2 * rows * s.cols * s.k
            g["loads"] += mult * (rows * s.k + s.cols * s.k) / 64
            g["stores"] += mult * rows * s.cols / 16

    def _statement(self, s: Store, path: list, mult: float) -> None:
        g = self.g
        g["work"] += mult
        g["stores"] += mult
        g["flops"] += mult * _float_ops(s.value)
        unrolled = 1
        for _, ext, kind in path:
            if kind in ("unrolled", "vectorized"):
                unrolled *= max(ext, 1)
        g["unrolled_body"] = max(g["unrolled_body"], unrolled)
        if mult > self.best_work:
            self.best_work, self.best_path = mult, path
        accesses = [(s.buffer, s.index)] + [(n.buffer, n.index) for n in walk(s.value) if isinstance(n, Load)]
        g["loads"] += mult * (len(accesses) - 1)
        inner = path[-1][0] if path else None
        for buf, idx in accesses:
            rec = self.buf.setdefault(buf, [0.0, 0.0, 0.0, 0.0, 0.0])
            used = {v for v in walk(idx) if isinstance(v, Var)}
            distinct = 1.0
            for var, ext, _ in path:
                if var in used:
                    distinct *= max(ext, 1)
            rec[0] = max(rec[0], distinct * _SIZES[buf.dtype])
            stride = _stride(idx, inner, self.env) if inner is not None else 0
            rec[1 if stride == 0 else 2 if stride == 1 else 3] += mult
            rec[4] = max(rec[4], mult / max(distinct, 1.0))


def _stride(idx: Expr, var: Var, env: dict) -> int:
    e0 = dict(env)
    e1 = dict(env)
    e1[var] = 1
    return _eval(idx, e1) - _eval(idx, e0)


def _knob_values(config) -> list:
    out = []
    for name, knob in config.space.knobs.items():
        v = config.values[name]
        out.append(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float(knob.values.index(v)))
    return out


def extract(task, config, dims: dict | None = None) -> np.ndarray:
    """The feature vector of ``config`` of ``task`` at ``dims`` (default: the task's bucket)."""
    dims = task.dims if dims is None else dims
    func = task.template_obj.lower(task.signature, config, "features")
    env = {v: dims.get(v.name, 1) for v in func.shape_vars}
    w = _Walker(env, func.params)
    w.visit(func.body, [], 1.0)
    feats = [_log2(dims[d]) for d in sorted(dims)][:MAX_DIMS]
    feats += [0.0] * (MAX_DIMS - len(feats))
    feats += [_log2(w.g[k]) for k in _GLOBAL]
    path = w.best_path[:MAX_DEPTH]
    innermost = path[-1][0] if path else None
    for d in range(MAX_DEPTH):
        if d < len(path):
            var, ext, kind = path[d]
            feats += [_log2(ext)] + [1.0 if kind == k else 0.0 for k in KINDS] + [1.0 if var is innermost else 0.0]
        else:
            feats += [0.0] * (2 + len(KINDS))
    order = [b for b in func.params if b in w.buf] + [b for b in w.buf if b not in func.params]
    for b in range(MAX_BUFFERS):
        if b < len(order):
            rec = w.buf[order[b]]
            total = max(rec[1] + rec[2] + rec[3], 1.0)
            feats += [_log2(rec[0]), rec[1] / total, rec[2] / total, rec[3] / total, _log2(rec[4])]
        else:
            feats += [0.0] * 5
    return np.array(feats + _knob_values(config), dtype=np.float32)

