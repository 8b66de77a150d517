"""The loop IR: buffers, flat loads/stores, prefetches, loops with kinds, while loops, guards, lets, local allocations
and tile matrix products."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..te.expr import Expr, IntImm, Var
from ..te.printer import expr_str


@dataclass(frozen=True, eq=False)
class Buffer:
    """A flat memory region viewed with a (symbolic) shape; identity-hashed.

    scope: "global" (a kernel argument or a heap intermediate) or "local" (a small tile).
    """

    name: str
    dtype: str
    shape: tuple
    scope: str = "global"

    def __repr__(self):
        return f"Buffer({self.name}, ({', '.join(map(str, self.shape))}), {self.dtype}, {self.scope})"


@dataclass(frozen=True, repr=False)
class Load(Expr):
    buffer: Buffer
    index: Expr

    @property
    def dtype(self) -> str:
        return self.buffer.dtype

    def expr_children(self):
        return (self.index,)

    def with_expr_children(self, new):
        return Load(self.buffer, new[0])

    def to_str(self):
        return f"{self.buffer.name}[{expr_str(self.index)}]"

    __str__ = to_str
    __repr__ = to_str


class Stmt:
    __slots__ = ()

    def __str__(self):
        from .printer import stmt_str

        return stmt_str(self)

    def __repr__(self):  # statements are ``@dataclass(frozen=True, repr=False)``: they print as loop IR
        return str(self)


@dataclass(frozen=True, repr=False)
class For(Stmt):
    """``for var in range(min, min + extent)``; kind is serial/parallel/vectorized/unrolled.

    ``reverse``: a condition under which the iterations run from the last to the first (the order only). A
    parallel loop reverses each thread's share: chunks stay with their threads, so each keeps touching the
    same part of memory from call to call.
    """

    var: Var
    min: Expr
    extent: Expr
    kind: str
    body: Stmt
    reverse: Expr | None = None


@dataclass(frozen=True, repr=False)
class Store(Stmt):
    buffer: Buffer
    index: Expr
    value: Expr


@dataclass(frozen=True, repr=False)
class Prefetch(Stmt):
    """A hint to bring ``lines`` cache lines from ``buffer[index]`` on into the cache; no effect on
    results, and an address past the buffer's end is allowed (a prefetch never faults)."""

    buffer: Buffer
    index: Expr
    lines: int = 1
    level: int = 1  # the cache level it fills: 1 (L1 and below) or 2 (L2 and below)


@dataclass(frozen=True, repr=False)
class TileMatmul(Stmt):
    """``out[r, c] = sum_q a[r, q] * w[c, q]`` for r < rows, c < cols, q < k: uint8 ``a`` times int8 ``w`` into
    int32 ``out`` (wrapping), run on Intel AMX tiles (``tdpbusd``); only code generation for a CPU with AMX-INT8
    takes it.

    Row r of ``a`` starts at ``a[a_index + r * a_stride]`` and of ``out`` at ``out[out_index + r * out_stride]``;
    ``w`` is packed in blocks of 16 columns, ``b[b_index + (c // 16) * 16 * k + (q // 4) * 64 + (c % 16) * 4 + q % 4]``
    (``schedules.dense_integer.pack_weight`` with 16 columns a block; columns past ``cols`` are read and ignored).
    ``rows`` is any expression >= 0; ``cols``, ``k`` (a multiple of 4) and the strides are constants. With
    ``a_packed`` (``a_stride`` unused), ``a`` holds 16 x 64-byte tiles, ``a[a_index + (r // 16) * 16 * K + (q // 64)
    * 1024 + (r % 16) * 64 + q % 64]`` with K = k rounded up to 64 (``schedules.dense_integer_amx`` packs it).
    With ``init`` (int32), every row of the sum starts from ``init[init_index + c]`` instead of 0 (a bias, or a
    zero point's correction, added for free: the accumulators are loaded from it).
    ``row_tiles`` x ``col_tiles`` accumulator tiles of 16 x 16 are kept at once (with the tiles they read, at
    most the 8 AMX tile registers).
    """

    out: Buffer
    out_index: Expr
    out_stride: int
    a: Buffer
    a_index: Expr
    a_stride: int
    b: Buffer
    b_index: Expr
    rows: Expr
    cols: int
    k: int
    row_tiles: int = 2
    col_tiles: int = 2
    a_packed: bool = False
    init: Buffer | None = None
    init_index: Expr = IntImm(0)


@dataclass(frozen=True, repr=False)
class While(Stmt):
    """Run ``body`` while ``cond`` holds, ``cond`` evaluated before each pass (it reads what the body stored).

    Lowering from te never makes one; hand-written kernels (``schedules/topk.py``) do, for data-dependent trips."""

    cond: Expr
    body: Stmt


@dataclass(frozen=True, repr=False)
class IfThenElse(Stmt):
    cond: Expr
    then_case: Stmt
    else_case: Stmt | None = None


@dataclass(frozen=True, repr=False)
class Assert(Stmt):
    """Run ``body`` if ``cond`` holds, else make the kernel return status ``code`` (>= 2)."""

    cond: Expr
    code: int
    body: Stmt


@dataclass(frozen=True, repr=False)
class LetStmt(Stmt):
    var: Var
    value: Expr
    body: Stmt


@dataclass(frozen=True, repr=False)
class Allocate(Stmt):
    """A buffer alive for ``body``: stack for small constant sizes, heap otherwise."""

    buffer: Buffer
    extent: Expr  # number of elements
    body: Stmt


@dataclass(frozen=True, repr=False)
class Seq(Stmt):
    stmts: tuple


def seq(*stmts) -> Stmt:
    flat = []
    for s in stmts:
        if s is None:
            continue
        if isinstance(s, Seq):
            flat.extend(s.stmts)
        else:
            flat.append(s)
    if len(flat) == 1:
        return flat[0]
    return Seq(tuple(flat))


@dataclass(frozen=True)
class PrimFunc:
    """A kernel: buffer parameters in call order, the shape variables they bind, and the body."""

    name: str
    params: tuple  # Buffers
    shape_vars: tuple  # Vars bound from parameter shapes, in call order
    body: Stmt
    attrs: dict = field(default_factory=dict, compare=False)

    def __str__(self):
        from .printer import func_str

        return func_str(self)


ZERO = IntImm(0)
