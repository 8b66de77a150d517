"""take: embedding gather ``out[i..., :] = table[idx[i...], :]`` with int32 or int64 indices.

A per-row stage ``row_of[i...]`` reads the index once, checks ``0 <= idx < vocab`` (an index
outside the table makes the call raise ``nimble.OutOfRangeError`` instead of reading outside
it) and clamps it; it is attached to the output's row loop, so the copy loop below it holds
only contiguous vector loads and stores of the table row.

Knobs: vec (vector width of the row copy: 16, 32, 64), unroll (vector steps unrolled per
iteration: 1, 2, 4), parallel ("rows" or "none").

Fallback (documented heuristic): vec 32, unroll 1 when the row has < 256 floats else 2
(long rows amortise the loop overhead), rows in parallel (small calls stay serial anyway:
the codegen keeps loops under ~32k elements of work serial).
"""
from __future__ import annotations

import numpy as np

from .. import te
from .base import Instance, Signature, Template, TemplateError
from .rowwise import fuse_rows, row_len_hint
from .softmax import element_count
from .space import ConfigSpace


def _check(sig: Signature):
    if len(sig.args) != 2:
        raise TemplateError(f"take: expected arguments table(vocab, dim) and indices, got {len(sig.args)}")
    (tshape, tdt), (ishape, idt) = sig.args
    if len(tshape) != 2 or tdt != "float32":
        raise TemplateError(f"take: table must be a float32 matrix, got {tdt} of shape {tshape}")
    if idt not in ("int32", "int64"):
        raise TemplateError(f"take: indices must be int32 or int64, got {idt}")
    if len(ishape) < 1:
        raise TemplateError(f"take: indices must have rank >= 1, got shape {ishape}")
    if sig.attr("axis", 0) != 0:
        raise TemplateError(f"take: only axis=0 (rows of the table) is supported, got axis={sig.attr('axis')}")
    return tshape, ishape


class Take(Template):
    def space(self, sig):
        _check(sig)
        s = ConfigSpace("take")
        s.define_knob("vec", (16, 32, 64))
        s.define_knob("unroll", (1, 2, 4))
        s.define_annotate("parallel", ("rows", "none"))
        return s

    def fallback(self, sig, space, hints=None):
        dim = row_len_hint(_check(sig)[0][1], hints)
        return space.config(vec=32, unroll=1 if dim < 256 else 2, parallel="rows")

    def instantiate(self, sig, cfg) -> Instance:
        _check(sig)
        (table, idx), dims = sig.placeholders(["table", "indices"])
        vocab, dim = table.shape

        def row_of(*i):
            v = idx[i].astype("int64")
            return te.min_(te.max_(v, 0), vocab - 1)

        def in_table(*i):
            v = idx[i].astype("int64")
            return [(te.all_(v >= 0, v < vocab), "an index is outside the table (expected 0 <= index < vocab)")]

        # the row stage always stores its clamped index; the check guards the copy (a failed check skips the
        # guarded store, and a row index left unwritten would be read as an address)
        row = te.compute(idx.shape, row_of, name="row_of")
        out = te.compute(tuple(idx.shape) + (dim,), lambda *i: table[row[i[:-1]], i[-1]], name="out",
                         checks=lambda *i: in_table(*i[:-1]))
        s = te.create_schedule(out)
        st = s[out]
        *lead, col = st.axis
        r = fuse_rows(st, list(lead))
        co, ci = st.split(col, cfg["vec"])
        if cfg["unroll"] > 1:
            _, cu = st.split(co, cfg["unroll"])
            st.unroll(cu)
        st.vectorize(ci)
        if cfg["parallel"] == "rows":
            st.parallel(r)
        s[row].compute_at(st, r)
        s[row].overcompute()
        for a in s[row].axis:
            s[row].unroll(a)
        return Instance(s, [table, idx, out], dims)

    def random_inputs(self, sig, dims, rng):
        tshape, ishape = sig.concrete(dims)
        idt = sig.args[1][1]
        table = rng.standard_normal(tshape).astype("float32")
        return [table, rng.integers(0, max(tshape[0], 1), size=ishape).astype(idt)]

    def reference(self, sig, inputs):
        table, idx = inputs
        if np.any((idx < 0) | (idx >= table.shape[0])):
            raise IndexError("take: an index is outside the table")
        return [table[idx]]

    def flops(self, sig, dims):
        return 0

    def bytes_moved(self, sig, dims):
        (tshape, _), (ishape, _) = sig.args
        rows = element_count(ishape, dims)
        d = dims[tshape[1]] if isinstance(tshape[1], str) else tshape[1]
        return 8 * rows * d


def take_signature(vocab, dim, idx_shape, idx_dtype: str = "int64") -> Signature:
    """Gather rows of table(vocab, dim) at indices of ``idx_shape`` (ints or dim names)."""
    return Signature.make([((vocab, dim), "float32"), (tuple(idx_shape), idx_dtype)], axis=0)
