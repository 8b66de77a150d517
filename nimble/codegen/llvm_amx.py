"""Code generation of ``TileMatmul`` on Intel AMX, and the process's permission to use the tile registers.

A ``TileMatmul`` becomes calls to internal functions of the module, one per block shape, so that each keeps one
tile configuration (LLVM's ``*.internal`` tile intrinsics: it writes the 64-byte configuration from the shapes and
loads it once per function, and releases the tiles on return):

- ``count`` blocks of ``row_tiles x 16`` rows, shapes constant (the bulk of the rows);
- up to ``row_tiles - 1`` blocks of 16 rows;
- one block of the last ``rows % 16`` rows (the tile's row count a run-time value).

Columns go in groups of ``col_tiles x 16`` (a last group may hold fewer tiles, its last tile fewer columns: a
narrower C and B tile, so no column past ``cols`` is written). A block keeps its ``row_tiles x col_tiles`` int32
accumulators in tile registers over the reduction: per 64 bytes of k, one A tile load a row tile, one B tile load
a column tile (16 packed weight rows of 64 bytes), and a ``tdpbusd`` per accumulator; a k that is not a multiple
of 64 ends with a narrower step (A tiles ``k % 64`` bytes wide, B tiles ``k % 64 / 4`` rows), in a function of its
own that reloads the accumulators (tiles of two widths need more registers than one configuration has). The
accumulators start from zero, or from ``init`` (one int32 row loaded with a row stride of 0). A packed ``a``
(16 x 64-byte tiles, 1 KiB contiguous each) loads at full speed; rows k bytes apart load ~3x slower, and any row
that straddles two cache lines ~3.5x slower (the operands must be 64-byte aligned).

Tile registers are not renamed: a load into a register that a product still reads waits for it, so where the
accumulators and the tiles of a step fit the 8 registers every tile of the step gets its own.

Linux hands out the tile state on request only (``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)``, once per
process; the first tile instruction without it kills the process): ``tile_permission`` asks, and the JIT asks on
start-up where the CPU has AMX, so kernels loaded from a saved executable run as well.
"""
from __future__ import annotations

import ctypes
import threading

import llvmlite.ir as ir


I8, I16, I32, I64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
PTR = ir.PointerType()
TILE_ROWS, TILE_BYTES, TILE_REGISTERS = 16, 64, 8
# row_tiles x col_tiles accumulators: at most 4, leaving tile registers for the A and B tiles they read
TILE_SHAPES = ((1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 2), (3, 1), (4, 1))
ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA, SYS_ARCH_PRCTL = 0x1023, 18, 158
_permission: dict = {}
_lock = threading.Lock()


def tile_permission() -> bool:
    """Ask Linux (once per process) for the AMX tile state; True when granted."""
    with _lock:
        if "granted" not in _permission:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                _permission["granted"] = libc.syscall(ctypes.c_long(SYS_ARCH_PRCTL), ctypes.c_long(ARCH_REQ_XCOMP_PERM),
                                                      ctypes.c_long(XFEATURE_XTILEDATA)) == 0
            except (OSError, AttributeError):
                _permission["granted"] = False
        return _permission["granted"]


def has_amx_int8(features: str) -> bool:
    flags = set(features.split(","))
    return "+amx-tile" in flags and "+amx-int8" in flags


class _TileType(ir.Type):
    """LLVM's ``x86_amx``: a value held in a tile register."""

    def _to_string(self) -> str:
        return "x86_amx"

    def __eq__(self, other):
        return isinstance(other, _TileType)

    def __hash__(self):
        return hash("x86_amx")


TILE = _TileType()


def _declare(module: ir.Module, name: str, ret, args):
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, args), name)
    return fn


def _i16(b: ir.IRBuilder, v):
    return ir.Constant(I16, v) if isinstance(v, int) else v


class _Intrinsics:
    def __init__(self, module: ir.Module):
        self.zero = _declare(module, "llvm.x86.tilezero.internal", TILE, [I16, I16])
        self.load = _declare(module, "llvm.x86.tileloadd64.internal", TILE, [I16, I16, PTR, I64])
        self.dot = _declare(module, "llvm.x86.tdpbusd.internal", TILE, [I16, I16, I16, TILE, TILE, TILE])
        self.store = _declare(module, "llvm.x86.tilestored64.internal", ir.VoidType(), [I16, I16, PTR, I64, TILE])


def _byte_ptr(b: ir.IRBuilder, base, offset):
    if isinstance(offset, int):
        if offset == 0:
            return base
        offset = ir.Constant(I64, offset)
    return b.gep(base, [offset], source_etype=I8)


def _counted_loop(b: ir.IRBuilder, name: str, count, body, carried=()):
    """``for i in range(count)``, values carried from one iteration to the next: ``body(i, values) -> values``;
    returns the values after the loop. A Python int ``count`` (at least 1) tests at the bottom; an i64 value, which
    may be 0, at the head."""
    pre = b.block
    if isinstance(count, int):
        loop = b.append_basic_block(f"{name}.body")
        done = b.append_basic_block(f"{name}.done")
        b.branch(loop)
        b.position_at_end(loop)
    else:
        loop = b.append_basic_block(f"{name}.head")
        inner = b.append_basic_block(f"{name}.body")
        done = b.append_basic_block(f"{name}.done")
        b.branch(loop)
        b.position_at_end(loop)
    i = b.phi(I64, name=name)
    i.add_incoming(ir.Constant(I64, 0), pre)
    phis = [b.phi(v.type) for v in carried]
    for p, v in zip(phis, carried):
        p.add_incoming(v, pre)
    if not isinstance(count, int):
        b.cbranch(b.icmp_signed("<", i, count), inner, done)
        b.position_at_end(inner)
    new = body(i, phis)
    nxt = b.add(i, ir.Constant(I64, 1))
    i.add_incoming(nxt, b.block)
    for p, v in zip(phis, new):
        p.add_incoming(v, b.block)
    if isinstance(count, int):
        b.cbranch(b.icmp_signed("<", nxt, ir.Constant(I64, count)), loop, done)
        b.position_at_end(done)
        return list(new)
    b.branch(loop)
    b.position_at_end(done)
    return phis


def _block(b: ir.IRBuilder, f: _Intrinsics, a, w, c, rows: list, widths: list, k: int, a_layout: tuple,
           out_stride: int, part: str, init=None) -> None:
    """One block: row tiles of ``rows`` (i16 values or ints) at a / c, column tiles ``widths`` (valid columns).

    ``part`` "all": the whole reduction from zero, k a multiple of 64 or below 64; "steps": the 64-byte steps of a
    k that is neither; "last": the last, narrower step of such a k, added to what "steps" stored. (Tiles of
    other widths would need more tile registers than a function's one configuration has.) ``a_layout``: the bytes
    from a row of a to the next, from a 64-byte step to the next, from a row tile to the next (``_a_layout``).
    ``init``: int32 columns every row of the sum starts from (loaded with a row stride of 0), else 0."""
    colsb = [4 * n for n in widths]
    steps, tail = divmod(k, TILE_BYTES)
    a_row, a_step, a_tile_bytes = a_layout

    def c_ptr(i, j):
        return _byte_ptr(b, c, i * TILE_ROWS * out_stride * 4 + j * TILE_BYTES)

    if part == "last":
        acc = [[b.call(f.load, [_i16(b, r), _i16(b, cb), c_ptr(i, j), ir.Constant(I64, out_stride * 4)])
                for j, cb in enumerate(colsb)] for i, r in enumerate(rows)]
        steps, first = 0, steps
    else:
        if init is None:
            acc = [[b.call(f.zero, [_i16(b, r), _i16(b, cb)]) for cb in colsb] for r in rows]
        else:
            acc = [[b.call(f.load, [_i16(b, r), _i16(b, cb), _byte_ptr(b, init, j * TILE_BYTES), ir.Constant(I64, 0)])
                    for j, cb in enumerate(colsb)] for r in rows]
        first = 0
        if part == "steps":
            tail = 0

    def step(acc, a_off, w_off, width):
        def a_tile(i):
            return b.call(f.load, [_i16(b, rows[i]), _i16(b, width), _byte_ptr(b, a, b.add(a_off, ir.Constant(
                I64, i * a_tile_bytes))), ir.Constant(I64, a_row)])

        def w_tile(j):
            return b.call(f.load, [_i16(b, width // 4), _i16(b, colsb[j]), _byte_ptr(b, w, b.add(w_off, ir.Constant(
                I64, j * TILE_ROWS * k))), ir.Constant(I64, TILE_BYTES)])

        out = [list(row) for row in acc]
        nr, nc = len(rows), len(colsb)
        if nr * nc + nr + nc <= TILE_REGISTERS:
            # every tile of the step in its own register, loaded in the order the products take them (tile
            # registers are not renamed: a load into a register still being read waits for the reading product)
            x_tiles, y_tiles = [None] * nr, [None] * nc
            for i in range(nr):
                for j in range(nc):
                    if x_tiles[i] is None:
                        x_tiles[i] = a_tile(i)
                    if y_tiles[j] is None:
                        y_tiles[j] = w_tile(j)
            for i, r in enumerate(rows):
                for j, cb in enumerate(colsb):
                    out[i][j] = b.call(f.dot, [_i16(b, r), _i16(b, cb), _i16(b, width), out[i][j], x_tiles[i],
                                               y_tiles[j]])
        elif len(rows) > len(colsb):
            # the side with fewer tiles has them loaded once a step and kept, the other side one tile at a time
            kept = [w_tile(j) for j in range(len(colsb))]
            for i, r in enumerate(rows):
                x = a_tile(i)
                for j, cb in enumerate(colsb):
                    out[i][j] = b.call(f.dot, [_i16(b, r), _i16(b, cb), _i16(b, width), out[i][j], x, kept[j]])
        else:
            kept = [a_tile(i) for i in range(len(rows))]
            for j, cb in enumerate(colsb):
                y = w_tile(j)
                for i, r in enumerate(rows):
                    out[i][j] = b.call(f.dot, [_i16(b, r), _i16(b, cb), _i16(b, width), out[i][j], kept[i], y])
        return out

    if steps == 1:
        acc = step(acc, ir.Constant(I64, 0), ir.Constant(I64, 0), TILE_BYTES)
    elif steps > 1:
        nc = len(colsb)

        def k_step(s, flat):
            grid = [flat[i * nc:(i + 1) * nc] for i in range(len(rows))]
            new = step(grid, b.mul(s, ir.Constant(I64, a_step)), b.mul(s, ir.Constant(I64, TILE_ROWS * TILE_BYTES)),
                       TILE_BYTES)
            return [t for row in new for t in row]

        flat = _counted_loop(b, "s", steps, k_step, [t for row in acc for t in row])
        acc = [flat[i * nc:(i + 1) * nc] for i in range(len(rows))]
    if tail:
        acc = step(acc, ir.Constant(I64, first * a_step), ir.Constant(I64, first * TILE_ROWS * TILE_BYTES), tail)
    for i, r in enumerate(rows):
        for j, cb in enumerate(colsb):
            b.call(f.store, [_i16(b, r), _i16(b, cb), c_ptr(i, j), ir.Constant(I64, out_stride * 4), acc[i][j]])


def _rows_function(module: ir.Module, row_tiles: int, dynamic: bool, widths: tuple, k: int, a_layout: tuple,
                   out_stride: int, part: str, init: bool) -> ir.Function:
    """``void f(ptr a, ptr w, ptr c, i64 n, ptr init)``: ``n`` blocks of ``row_tiles x 16`` rows (``dynamic``: one
    block of ``n`` < 16 rows), the blocks' column tiles of ``widths`` columns; ``part`` of the reduction and
    ``init`` (used or not) as ``_block``."""
    name = (f"nimble.amx.u8s8.{part}.r{row_tiles}{'d' if dynamic else ''}.c{'_'.join(map(str, widths))}.k{k}"
            f".a{'_'.join(map(str, a_layout))}.o{out_stride}{'.init' if init else ''}")
    fn = module.globals.get(name)
    if fn is not None:
        return fn
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR, I64, PTR]), name)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    fn.attributes.add("noinline")
    a, w, c, n, start = fn.args
    start = start if init else None
    f = _Intrinsics(module)
    entry = fn.append_basic_block("entry")
    b = ir.IRBuilder(entry)
    if dynamic:
        _block(b, f, a, w, c, [b.trunc(n, I16)], list(widths), k, a_layout, out_stride, part, start)
        b.ret_void()
        return fn
    rows = row_tiles * TILE_ROWS

    def one_block(blk, _):
        a_blk = _byte_ptr(b, a, b.mul(blk, ir.Constant(I64, row_tiles * a_layout[2])))
        c_blk = _byte_ptr(b, c, b.mul(blk, ir.Constant(I64, rows * out_stride * 4)))
        _block(b, f, a_blk, w, c_blk, [TILE_ROWS] * row_tiles, list(widths), k, a_layout, out_stride, part, start)
        return []

    _counted_loop(b, "block", n, one_block)
    b.ret_void()
    return fn


def _groups(cols: int, col_tiles: int) -> list:
    """(first column, count, widths) of the column groups: ``count`` full groups of col_tiles x 16 columns, then
    one group of the rest (fewer tiles, the last narrower)."""
    full, rest = divmod(cols, col_tiles * TILE_ROWS)
    out = [(0, full, (TILE_ROWS,) * col_tiles)] if full else []
    if rest:
        tiles, last = divmod(rest, TILE_ROWS)
        out.append((full * col_tiles * TILE_ROWS, 1, (TILE_ROWS,) * tiles + ((last,) if last else ())))
    return out


def _a_layout(s) -> tuple:
    """(bytes from a row of a to the next, from a 64-byte step to the next, from a row tile to the next)."""
    if s.a_packed:
        return TILE_BYTES, TILE_ROWS * TILE_BYTES, -(-s.k // TILE_BYTES) * TILE_ROWS * TILE_BYTES
    return s.a_stride, TILE_BYTES, TILE_ROWS * s.a_stride


def _rows(b: ir.IRBuilder, module: ir.Module, s, widths: tuple, a, w, c, rows, init) -> None:
    """Every row of one column group (w, c and init, or None, at the group's first column)."""
    rt = s.row_tiles
    parts = ("steps", "last") if s.k > TILE_BYTES and s.k % TILE_BYTES else ("all",)
    blocks = b.sdiv(rows, ir.Constant(I64, rt * TILE_ROWS))
    bulk_rows = b.mul(blocks, ir.Constant(I64, rt * TILE_ROWS))
    ones = b.sdiv(b.sub(rows, bulk_rows), ir.Constant(I64, TILE_ROWS))
    done = b.add(bulk_rows, b.mul(ones, ir.Constant(I64, TILE_ROWS)))
    left = b.sub(rows, done)

    a_layout = _a_layout(s)

    def at(ptr, row, stride):
        return _byte_ptr(b, ptr, b.mul(row, ir.Constant(I64, stride)))

    def a_at(row):  # row: a multiple of 16
        return _byte_ptr(b, a, b.mul(b.sdiv(row, ir.Constant(I64, TILE_ROWS)), ir.Constant(I64, a_layout[2])))

    for part in parts:
        start = init if part != "last" else None

        def fn(tiles, dynamic):
            return _rows_function(module, tiles, dynamic, widths, s.k, a_layout, s.out_stride, part,
                                  start is not None)

        arg = start if start is not None else ir.Constant(PTR, None)
        b.call(fn(rt, False), [a, w, c, blocks, arg])
        if rt > 1:
            b.call(fn(1, False), [a_at(bulk_rows), w, at(c, bulk_rows, 4 * s.out_stride), ones, arg])
        with b.if_then(b.icmp_signed(">", left, ir.Constant(I64, 0))):
            b.call(fn(1, True), [a_at(done), w, at(c, done, 4 * s.out_stride), left, arg])


def emit_tile_matmul(b: ir.IRBuilder, module: ir.Module, s, a, w, c, rows, init=None) -> None:
    """Emit ``s`` (a ``TileMatmul``) at ``b``: ``a``, ``w`` and ``c`` the addresses of its first A row, its packed
    weight and its first output element, ``rows`` its i64 row count, ``init`` the address of its first initial
    column (None: the sums start from 0)."""
    from .llvm import CodegenError

    if (s.row_tiles, s.col_tiles) not in TILE_SHAPES:
        raise CodegenError(f"tile_matmul: {s.row_tiles} x {s.col_tiles} accumulator tiles is not one of {TILE_SHAPES}")
    if s.k <= 0 or s.k % 4 or s.cols <= 0:
        raise CodegenError(f"tile_matmul: k must be a positive multiple of 4 and cols positive, got k={s.k}, "
                           f"cols={s.cols}")
    if (s.a.dtype, s.b.dtype, s.out.dtype) != ("uint8", "int8", "int32") or (
            s.init is not None and s.init.dtype != "int32"):
        raise CodegenError(f"tile_matmul: takes uint8 a, int8 b, int32 out and int32 init, got {s.a.dtype}, "
                           f"{s.b.dtype}, {s.out.dtype}, {None if s.init is None else s.init.dtype}")
    for first, count, widths in _groups(s.cols, s.col_tiles):
        w0, c0 = _byte_ptr(b, w, first * s.k), _byte_ptr(b, c, first * 4)
        i0 = None if init is None else _byte_ptr(b, init, first * 4)
        if count == 1:
            _rows(b, module, s, widths, a, w0, c0, rows, i0)
            continue
        span = len(widths) * TILE_ROWS

        def group(g, _, w0=w0, c0=c0, i0=i0, widths=widths, span=span):
            _rows(b, module, s, widths, a, _byte_ptr(b, w0, b.mul(g, ir.Constant(I64, span * s.k))),
                  _byte_ptr(b, c0, b.mul(g, ir.Constant(I64, span * 4))), rows,
                  None if i0 is None else _byte_ptr(b, i0, b.mul(g, ir.Constant(I64, span * 4))))
            return []

        _counted_loop(b, "group", count, group)
