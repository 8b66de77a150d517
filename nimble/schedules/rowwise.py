"""Row-wise kernels: reductions over the last axis as te stages that vectorize, and row loops.

LLVM vectorizes a ``sum`` loop by itself (its update may be reassociated) but not a max/min
loop. A lane reduction of a row ``x[rows..., 0:m]`` over ``lanes = L`` is three pieces:

* ``partial[rows..., l]`` reduces ``x[rows..., c*L + l]`` over ``c < m // L``: the index is
  affine in ``l`` with stride 1, so the ``l`` loop (innermost, vectorized) is ``L / 16``
  independent zmm accumulators fed by contiguous loads;
* ``tail[rows...]`` reduces the remaining ``m % L`` elements ``[m // L * L, m)`` (scalar);
* ``value(rows...)``, an expression the consumer inlines: a pairwise tree over the ``L``
  partials combined with the tail (LLVM hoists it out of the consumer's inner loops).

A plain reduction is one te reduction over the whole row (for sums LLVM vectorizes it).
Both attach to the consumer's row loop (``schedule``), with no guards (``overcompute``).
Further reduction axes (``extra``, e.g. the other reduced axes of a sum over (1, 2)) run
outside the row axis.
"""
from __future__ import annotations

from .. import te

COMBINE = {"sum": lambda a, b: a + b, "max": te.max_, "min": te.min_}
REDUCER = {"sum": te.sum, "max": te.max, "min": te.min}


def tree(values: list, combine):
    """combine(...) of ``values`` as a tree folding the upper half onto the lower half: the
    first levels combine whole vectors (SLP-vectorizable), dependency chains stay short."""
    values = list(values)
    while len(values) > 1:
        half = (len(values) + 1) // 2
        values = [combine(values[q], values[q + half]) if q + half < len(values) else values[q] for q in range(half)]
    return values[0]


class LaneReduction:
    """``partial`` and ``tail`` stages of a lane reduction; ``value(*rows)`` combines them."""

    def __init__(self, name: str, rows_shape: tuple, row_len, element, combiner: str, lanes: int, extra=()):
        self.combiner, self.lanes = combiner, lanes
        red = REDUCER[combiner]

        def partial(*idx):
            rows, lane = idx[:-1], idx[-1]
            ext = [te.reduce_axis(e, f"{name}_e{d}") for d, e in enumerate(extra)]
            c = te.reduce_axis(row_len // lanes, f"{name}_c")
            return red(element(rows, [a.var for a in ext], c.var * lanes + lane), axis=ext + [c])

        def tail(*rows):
            ext = [te.reduce_axis(e, f"{name}_te{d}") for d, e in enumerate(extra)]
            t = te.reduce_axis((row_len // lanes * lanes, row_len), f"{name}_t")
            return red(element(rows, [a.var for a in ext], t.var), axis=ext + [t])

        self.partial = te.compute(tuple(rows_shape) + (lanes,), partial, name=f"{name}_partial")
        self.tail = te.compute(tuple(rows_shape), tail, name=f"{name}_tail")

    def value(self, *rows):
        comb = COMBINE[self.combiner]
        return comb(tree([self.partial[(*rows, q)] for q in range(self.lanes)], comb), self.tail[rows])

    def schedule(self, s, parent=None, at=None) -> None:
        """Attach both stages at ``parent``'s loop ``at`` (None: leave them at the root);
        order the partial's loops (rows, extra, c, lane) and vectorize the lanes."""
        for t in (self.partial, self.tail):
            if parent is not None:
                s[t].compute_at(parent, at)
                s[t].overcompute()
                for row in s[t].axis[:len(s[t].axis) - (t is self.partial)]:
                    s[t].unroll(row)  # extent 1 here: constant indices let LLVM keep the lanes in registers
        st = s[self.partial]
        *rows, lane = st.axis
        st.reorder(*rows, *st.reduce_axis, lane)
        st.vectorize(lane)


class PlainReduction:
    """One te reduction of the whole row; ``value(*rows)`` reads it."""

    def __init__(self, name: str, rows_shape: tuple, row_len, element, combiner: str, extra=()):
        red = REDUCER[combiner]

        def body(*rows):
            ext = [te.reduce_axis(e, f"{name}_e{d}") for d, e in enumerate(extra)]
            k = te.reduce_axis(row_len, f"{name}_k")
            return red(element(rows, [a.var for a in ext], k.var), axis=ext + [k])

        self.total = te.compute(tuple(rows_shape), body, name=name)

    def value(self, *rows):
        return self.total[rows]

    def schedule(self, s, parent=None, at=None) -> None:
        if parent is not None:
            s[self.total].compute_at(parent, at)
            s[self.total].overcompute()
            for row in s[self.total].axis:
                s[self.total].unroll(row)


def row_reduction(method: str, name: str, rows_shape: tuple, row_len, element, combiner: str, lanes: int, extra=()):
    """A LaneReduction (``method="lanes"``) or a PlainReduction (``"plain"``).

    ``element(rows, extra_vars, k)`` is the expression reduced at row ``rows`` and column ``k``.
    """
    if method == "lanes":
        return LaneReduction(name, rows_shape, row_len, element, combiner, lanes, extra)
    return PlainReduction(name, rows_shape, row_len, element, combiner, extra)


def fuse_rows(stage, axes: list):
    """Fuse ``axes`` (adjacent, outermost first) into one loop; None when there are none."""
    if not axes:
        return None
    out = axes[0]
    for a in axes[1:]:
        out = stage.fuse(out, a)
    return out


def schedule_rows(stage, vec: int, parallel: bool):
    """The usual row-wise loop nest: leading axes fused into one row loop (parallel when asked),
    the last axis split by ``vec`` with the inner part vectorized. Returns the row loop (or None)."""
    *lead, last = stage.axis
    row = fuse_rows(stage, list(lead))
    _, inner = stage.split(last, vec)
    stage.vectorize(inner)
    if parallel and row is not None:
        stage.parallel(row)
    return row


def row_len_hint(dim, hints: dict | None, default: int = 128) -> int:
    """A representative value of a dim: itself when static, else the hint for its name."""
    return dim if isinstance(dim, int) else int((hints or {}).get(dim, default))
