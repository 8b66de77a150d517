"""Readable text of the loop IR."""
from __future__ import annotations

from ..te.printer import expr_str
from ..te.simplify import simplify
from .nodes import Allocate, Assert, For, IfThenElse, LetStmt, Prefetch, Seq, Store, TileMatmul, While


def stmt_str(s, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(s, For):
        kind = "" if s.kind == "serial" else f"  # {s.kind}"
        if s.reverse is not None:
            kind += f"  # backwards when {expr_str(s.reverse)}"
        lo = "" if expr_str(s.min) == "0" else f"{expr_str(s.min)}, "
        end = expr_str(s.extent) if not lo else expr_str(simplify(s.min + s.extent))
        return f"{pad}for {s.var.name} in range({lo}{end}):{kind}\n{stmt_str(s.body, indent + 1)}"
    if isinstance(s, Store):
        return f"{pad}{s.buffer.name}[{expr_str(s.index)}] = {expr_str(s.value)}"
    if isinstance(s, Prefetch):
        lines = f"  # {s.lines} lines" if s.lines != 1 else ""
        level = " to L2" if s.level == 2 else ""
        return f"{pad}prefetch{level} {s.buffer.name}[{expr_str(s.index)}]{lines}"
    if isinstance(s, TileMatmul):
        return (f"{pad}{s.out.name}[{expr_str(s.out_index)}; {s.out_stride}] = tile_matmul("
                f"{s.a.name}[{expr_str(s.a_index)}; {s.a_stride}], {s.b.name}[{expr_str(s.b_index)}], "
                f"rows={expr_str(s.rows)}, cols={s.cols}, k={s.k})  # {s.row_tiles} x {s.col_tiles} tiles"
                + (", a packed" if s.a_packed else "")
                + (f", from {s.init.name}[{expr_str(s.init_index)}]" if s.init is not None else ""))
    if isinstance(s, While):
        return f"{pad}while {expr_str(s.cond)}:\n{stmt_str(s.body, indent + 1)}"
    if isinstance(s, IfThenElse):
        out = f"{pad}if {expr_str(s.cond)}:\n{stmt_str(s.then_case, indent + 1)}"
        if s.else_case is not None:
            out += f"\n{pad}else:\n{stmt_str(s.else_case, indent + 1)}"
        return out
    if isinstance(s, Assert):
        return f"{pad}assert {expr_str(s.cond)}, {s.code}\n{stmt_str(s.body, indent)}"
    if isinstance(s, LetStmt):
        return f"{pad}{s.var.name} = {expr_str(s.value)}\n{stmt_str(s.body, indent)}"
    if isinstance(s, Allocate):
        return (f"{pad}{s.buffer.name} = alloc {s.buffer.dtype}[{expr_str(s.extent)}]  # {s.buffer.scope}\n"
                f"{stmt_str(s.body, indent)}")
    if isinstance(s, Seq):
        return "\n".join(stmt_str(x, indent) for x in s.stmts)
    return f"{pad}<{type(s).__name__}>"


def func_str(f) -> str:
    params = ", ".join(f"{b.name}: {b.dtype}[{', '.join(expr_str(d) for d in b.shape)}]" for b in f.params)
    return f"def {f.name}({params}):\n{stmt_str(f.body, 1)}"
