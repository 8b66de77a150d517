"""injective: a fused chain of elementwise / broadcast ops, or one layout copy (transpose, reshape).

attrs ``ops`` names the chain applied left to right to the first input: a unary op maps the
running value, a binary op combines it with the next input (numpy broadcasting: shapes are
right-aligned, a dim of 1 broadcasts). ``ops=["transpose"]`` with ``perm`` and
``ops=["reshape"]`` with ``newshape`` (ints and dim names) are copies of one input.

Loop nest: ``fuse="rows"`` fuses the leading output axes into a parallel row loop and splits
the last axis by ``vec * unroll`` (vector loop of ``vec``, ``unroll`` of them per step);
``fuse="flat"`` (offered when no input broadcasts, and always for reshape) runs one flat loop
over all elements in parallel chunks of ``chunk`` elements, so short rows leave no tails.
Loads stay contiguous vectors when the input's last axis is the output's (broadcast inputs
are read per row; a transpose that moves the last axis reads with gathers).

Knobs: vec (16, 32, 64), unroll (1, 2, 4), fuse ("rows", "flat"), chunk (elements per
parallel task in flat mode: 4096, 16384, 65536), parallel ("yes" or "no").

Fallback (documented heuristic): vec 32, unroll 2 (several independent zmm in flight); flat
when the op allows it and the representative last dim is < 256 (rows would be short), else
rows; chunk 16384 (64 KiB of output per task, well above the ~1.5 us parallel-entry cost);
parallel.
"""
from __future__ import annotations

import math

import numpy as np

from .. import te
from .base import Instance, Signature, Template, TemplateError
from .rowwise import fuse_rows, row_len_hint
from .softmax import element_count
from .space import ConfigSpace

UNARY = {
    "relu": (lambda v: te.max_(v, 0.0), lambda a: np.maximum(a, 0)),
    "gelu": (lambda v: v * 0.5 * (te.erf(v * (1 / math.sqrt(2))) + 1.0),
             lambda a: a * 0.5 * (1 + np.vectorize(math.erf, otypes=[np.float64])(a / math.sqrt(2)))),
    "tanh": (te.tanh, np.tanh),
    "sigmoid": (te.sigmoid, lambda a: 1 / (1 + np.exp(-a))),
    "exp": (te.exp, np.exp),
    "erf": (te.erf, np.vectorize(math.erf, otypes=[np.float64])),
    "sqrt": (te.sqrt, np.sqrt),
    "negative": (lambda v: -v, np.negative),
    "abs": (te.abs_, np.abs),
}
BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "subtract": (lambda a, b: a - b, np.subtract),
    "multiply": (lambda a, b: a * b, np.multiply),
    "divide": (lambda a, b: a / b, np.divide),
    "maximum": (te.max_, np.maximum),
    "minimum": (te.min_, np.minimum),
}
LAYOUT = ("transpose", "reshape")


def _broadcast_shape(shapes) -> tuple:
    rank = max(len(s) for s in shapes)
    out = []
    for d in range(rank):
        dims = {s[len(s) - rank + d] for s in shapes if len(s) - rank + d >= 0} - {1}
        if len(dims) > 1:
            raise TemplateError(f"injective: input shapes {list(shapes)} do not broadcast at axis {d}: {sorted(map(str, dims))}")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _plan(sig: Signature):
    """(kind, output shape) after checking the signature; kind is 'chain', 'transpose' or 'reshape'."""
    ops = list(sig.attr("ops", ()))
    shapes = [s for s, _ in sig.args]
    for s, dt in sig.args:
        if dt != "float32":
            raise TemplateError(f"injective: inputs must be float32, got {dt}")
    if not ops:
        raise TemplateError("injective: attrs ops must name at least one op")
    if any(op in LAYOUT for op in ops):
        if len(ops) != 1 or len(sig.args) != 1:
            raise TemplateError(f"injective: {ops[0]} must be the only op, on one input; got ops={ops}, {len(sig.args)} inputs")
        if ops[0] == "transpose":
            perm = tuple(sig.attr("perm", ()))
            if sorted(perm) != list(range(len(shapes[0]))):
                raise TemplateError(f"injective: perm must be a permutation of range({len(shapes[0])}), got {perm}")
            return "transpose", tuple(shapes[0][p] for p in perm)
        newshape = tuple(sig.attr("newshape", ()))
        if not all(isinstance(d, (int, str)) for d in newshape) or any(isinstance(d, int) and d < 0 for d in newshape):
            raise TemplateError(f"injective: newshape must hold dims >= 0 and dim names, got {newshape}")
        return "reshape", newshape
    unknown = [op for op in ops if op not in UNARY and op not in BINARY]
    if unknown:
        raise TemplateError(f"injective: unknown ops {unknown}; known: {sorted(UNARY) + sorted(BINARY)} and {LAYOUT}")
    n_bin = sum(op in BINARY for op in ops)
    if len(sig.args) != 1 + n_bin:
        raise TemplateError(f"injective: ops {ops} take {1 + n_bin} inputs, got {len(sig.args)}")
    return "chain", _broadcast_shape(shapes)


def _can_flatten(sig: Signature, kind: str, out_shape) -> bool:
    return kind == "reshape" or (kind == "chain" and all(tuple(s) == tuple(out_shape) for s, _ in sig.args))


def unflatten(f, shape) -> list:
    """Indices of flat offset ``f`` in ``shape``, written so that flattening them gives back ``f``
    by linear cancellation (i_k = f // P_k - (f // P_{k-1}) * s_k with P_k the product after k)."""
    idx, suffix = [], []
    p = te.const(1)
    for d in reversed(shape):
        suffix.append(p)
        p = p * d
    suffix.reverse()
    prev = None
    for d, pk in zip(shape, suffix):
        q = f // pk
        idx.append(q if prev is None else q - prev * d)
        prev = q
    return idx


class Injective(Template):
    def space(self, sig):
        kind, out_shape = _plan(sig)
        s = ConfigSpace("injective")
        s.define_knob("vec", (16, 32, 64))
        s.define_knob("unroll", (1, 2, 4))
        s.define_knob("fuse", ("flat",) if kind == "reshape" else
                      ("rows", "flat") if _can_flatten(sig, kind, out_shape) else ("rows",))
        s.define_knob("chunk", (4096, 16384, 65536))
        s.define_annotate("parallel", ("yes", "no"))
        return s

    def fallback(self, sig, space, hints=None):
        kind, out_shape = _plan(sig)
        last = row_len_hint(out_shape[-1], hints) if out_shape else 1
        fuse = "flat" if "flat" in space.knobs["fuse"].values and (last < 256 or len(space.knobs["fuse"]) == 1) else "rows"
        return space.config(vec=32, unroll=2, fuse=fuse, chunk=16384, parallel="yes")

    def instantiate(self, sig, cfg) -> Instance:
        kind, _ = _plan(sig)
        names = [f"in{k}" for k in range(len(sig.args))]
        if kind == "reshape":
            out_sig = Signature(tuple(sig.args) + ((tuple(sig.attr("newshape")), "float32"),), sig.attrs)
            tensors, dims = out_sig.placeholders(names + ["shape_of_out"])
            inputs, out_shape = tensors[:-1], tensors[-1].shape
        else:
            inputs, dims = sig.placeholders(names)
            out_shape = _plan_shape(inputs, kind, sig)
        x0 = inputs[0]
        flat = cfg["fuse"] == "flat"
        if flat and not out_shape:
            flat = False

        def value(idx):
            return element_value(sig, kind, inputs, idx)

        checks = None
        if kind == "reshape":  # the output shape comes from the caller: same element count, checked
            size_in, size_out = te.const(1), te.const(1)
            for d in x0.shape:
                size_in = size_in * d
            for d in out_shape:
                size_out = size_out * d
            msg = "reshape: the input and output element counts must be equal"
            checks = lambda *_: [(te.eq(size_in, size_out), msg)]  # noqa: E731
        if flat:
            total = te.const(1)
            for d in out_shape:
                total = total * d
            if kind == "reshape":
                flat_t = te.compute((total,), lambda f: x0[tuple(unflatten(f, x0.shape))], name="flat")
            else:
                flat_t = te.compute((total,), lambda f: value(unflatten(f, out_shape)), name="flat")
            out = te.compute(out_shape, lambda *i: flat_t[_flat_index(i, out_shape)], name="out", checks=checks)
            s = te.create_schedule(out)
            s[flat_t].compute_inline()
            st = s[out]
            axes = list(st.axis)
            loop = fuse_rows(st, axes)
            chunk_loop, inner = st.split(loop, cfg["chunk"])
            if cfg["parallel"] == "yes":
                st.parallel(chunk_loop)
            self._vector_split(st, inner, cfg)
        else:
            out = te.compute(out_shape, lambda *i: value(list(i)), name="out", checks=checks)
            s = te.create_schedule(out)
            st = s[out]
            if out_shape:
                *lead, last = st.axis
                row = fuse_rows(st, list(lead))
                if cfg["parallel"] == "yes" and row is not None:
                    st.parallel(row)
                self._vector_split(st, last, cfg)
        args = list(inputs) + [out]
        return Instance(s, args, dims)

    @staticmethod
    def _vector_split(st, loop, cfg) -> None:
        """loop -> (outer, unrolled, vector): one tail guard on ``loop``, so the main part is guard-free."""
        vec, unroll = cfg["vec"], cfg["unroll"]
        _, step = st.split(loop, vec * unroll)
        if unroll > 1:
            u, lanes = st.split(step, vec)
            st.unroll(u)
        else:
            lanes = step
        st.vectorize(lanes)

    def reference(self, sig, inputs):
        kind, _ = _plan(sig)
        x0 = inputs[0]
        if kind == "transpose":
            return [np.ascontiguousarray(np.transpose(x0, sig.attr("perm")))]
        if kind == "reshape":
            return [x0.reshape(_concrete_newshape(sig, inputs))]
        v, pos = x0.astype("float64"), 1
        with np.errstate(all="ignore"):
            for op in sig.attr("ops"):
                if op in UNARY:
                    v = UNARY[op][1](v)
                else:
                    v = BINARY[op][1](v, inputs[pos].astype("float64"))
                    pos += 1
        return [np.asarray(v).astype(x0.dtype)]

    def flops(self, sig, dims):
        kind, out_shape = _plan(sig)
        return 0 if kind != "chain" else len(sig.attr("ops")) * element_count(out_shape, dims)

    def bytes_moved(self, sig, dims):
        kind, out_shape = _plan(sig)
        return 4 * (element_count(out_shape, dims) + sum(element_count(s, dims) for s, _ in sig.args))


def _plan_shape(inputs, kind, sig):
    if kind == "transpose":
        return tuple(inputs[0].shape[p] for p in sig.attr("perm"))
    shapes = [t.shape for t in inputs]
    rank = max(len(s) for s in shapes)
    out = []
    for d in range(rank):
        cands = [s[len(s) - rank + d] for s in shapes if len(s) - rank + d >= 0]
        real = [c for c in cands if not (isinstance(c, te.IntImm) and c.value == 1)]
        out.append(real[0] if real else cands[0])
    return tuple(out)


def _bload(t, idx):
    """t read at the broadcast of output index ``idx`` (right-aligned; dims of 1 read index 0)."""
    off = len(idx) - len(t.shape)
    return t[tuple(0 if isinstance(d, te.IntImm) and d.value == 1 else idx[off + k] for k, d in enumerate(t.shape))]


def _flat_index(idx, shape):
    out = None
    for i, d in zip(idx, shape):
        out = i if out is None else out * d + i
    return out


def _concrete_newshape(sig, inputs):
    newshape = tuple(sig.attr("newshape"))
    dims = {}
    for d, n in zip(sig.args[0][0], inputs[0].shape):
        if isinstance(d, str):
            dims[d] = n
    return tuple(dims[d] if isinstance(d, str) else d for d in newshape)


def injective_signature(shapes, ops, **attrs) -> Signature:
    """A fused chain over inputs of ``shapes`` (ints and dim names); see the module docstring."""
    return Signature.make([(tuple(s), "float32") for s in shapes], ops=list(ops), **attrs)


def element_value(sig, kind: str, inputs: list, idx: list):
    """The output element at ``idx`` of a transpose or of an elementwise chain (``sig``'s ops, inputs
    broadcast) over te ``inputs``; shared by the CPU and CUDA injective templates."""
    x0 = inputs[0]
    if kind == "transpose":
        src = [None] * len(idx)
        for k, p in enumerate(sig.attr("perm")):
            src[p] = idx[k]
        return x0[tuple(src)]
    v, pos = _bload(x0, idx), 1
    for op in sig.attr("ops"):
        if op in UNARY:
            v = UNARY[op][0](v)
        else:
            v = BINARY[op][0](v, _bload(inputs[pos], idx))
            pos += 1
    return v
