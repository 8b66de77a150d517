"""A readable text form of the model IR, close to Relay's.

    def @main(%x: Tensor[(?, 768), float32]) -> Tensor[(?, 3072), float32] {
      let %h = dense(%x, meta.weight);
      gelu(%h)
    }

Calls that are not let-bound get numbered temporaries (`%0 = ...;`); named constants print as `meta.<name>`.
"""
from __future__ import annotations

import numpy as np

from .expr import (
    Call, Constant, Constructor, Expr, Function, GlobalVar, If, Let, Match, Op, Pattern, PatternConstructor,
    PatternTuple, PatternVar, PatternWildcard, Tuple, TupleGetItem, Var,
)

_MARK = "\x00"
_DTYPE_SUFFIX = {
    "float32": "f", "float64": "f64", "float16": "f16", "int64": "i64", "int32": "i32", "int8": "i8", "uint8": "u8"
}


def format_attr(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "(" + ", ".join(format_attr(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


class _Printer:
    """Prints one function at a time; can mark the line that computes one target expression."""

    def __init__(self, types=None):
        self.types = types  # a ModuleTypes: show inferred types of unannotated variables
        self.lines: list[str] = []
        self.target_id: int | None = None
        self.var_names: dict[int, str] = {}
        self.used_names: set[str] = set()
        self.temp_counter = 0
        self.scopes: list[dict[int, str]] = [{}]

    # ---- names -------------------------------------------------------------------------------------------
    def var_name(self, var: Var) -> str:
        name = self.var_names.get(var.id)
        if name is None:
            base = var.name or "v"
            name, k = base, 1
            while name in self.used_names:
                name, k = f"{base}_{k}", k + 1
            self.used_names.add(name)
            self.var_names[var.id] = name
        return "%" + name

    def typed_var(self, var: Var) -> str:
        t = var.type_annotation
        if t is None and self.types is not None and var in self.types:
            t = self.types[var]
        return self.var_name(var) + (f": {t!r}" if t is not None else "")

    def emit(self, text: str, indent: int, expr: Expr | None = None):
        mark = _MARK if expr is not None and id(expr) == self.target_id else ""
        self.lines.append(mark + "  " * indent + text)

    # ---- expressions -------------------------------------------------------------------------------------
    def atom(self, expr: Expr, indent: int) -> str:
        """Print what `expr` needs as lines at `indent` and return the short text that refers to its value."""
        for scope in reversed(self.scopes):
            if id(expr) in scope:
                return scope[id(expr)]
        if isinstance(expr, Var):
            return self.var_name(expr)
        if isinstance(expr, GlobalVar):
            return "@" + expr.name
        if isinstance(expr, (Op, Constructor)):
            return expr.name
        if isinstance(expr, Constant):
            return self.constant(expr)
        text = self.inline(expr, indent)
        if isinstance(expr, (Tuple, TupleGetItem)) and len(text) < 60:
            return text
        if isinstance(expr, (Function, If, Match, Let)) and "\n" not in text and len(text) < 60:
            return text
        name = f"%{self.temp_counter}"
        self.temp_counter += 1
        self.emit(f"{name} = {text};", indent, expr)
        self.scopes[-1][id(expr)] = name
        return name

    def constant(self, const: Constant) -> str:
        value = const.value
        if const.name:
            return f"meta.{const.name}"
        if value.ndim == 0:
            if value.dtype == np.bool_:
                return "True" if value else "False"
            return f"{value.item()!r}{_DTYPE_SUFFIX.get(value.dtype.name, '')}"
        if value.size <= 4:
            return f"const({value.tolist()}, {value.dtype.name})"
        return f"const<{value.shape}, {value.dtype.name}>"

    def inline(self, expr: Expr, indent: int) -> str:
        """The text of `expr` itself (sub-expressions already printed as atoms); may span lines."""
        if isinstance(expr, Call):
            args = [self.atom(a, indent) for a in expr.args]
            args += [f"{k}={format_attr(v)}" for k, v in expr.attrs.items]
            return f"{self.atom(expr.op, indent)}({', '.join(args)})"
        if isinstance(expr, Tuple):
            fields = [self.atom(f, indent) for f in expr.fields]
            return "(" + ", ".join(fields) + ("," if len(fields) == 1 else "") + ")"
        if isinstance(expr, TupleGetItem):
            return f"{self.atom(expr.tuple_value, indent)}.{expr.index}"
        if isinstance(expr, If):
            cond = self.atom(expr.cond, indent)
            then_b = self.block(expr.then_branch, indent + 1)
            else_b = self.block(expr.else_branch, indent + 1)
            pad = "  " * indent
            return f"if ({cond}) {{\n{then_b}\n{pad}}} else {{\n{else_b}\n{pad}}}"
        if isinstance(expr, Match):
            data = self.atom(expr.data, indent)
            pad = "  " * indent
            arms = []
            for clause in expr.clauses:
                body = self.block(clause.body, indent + 2)
                arms.append(f"{pad}  {self.pattern(clause.pattern)} => {{\n{body}\n{pad}  }},")
            return f"match ({data}) {{\n" + "\n".join(arms) + f"\n{pad}}}"
        if isinstance(expr, Function):
            return self.function_text("fn ", expr, indent)
        if isinstance(expr, Let):
            return "{\n" + self.block(expr, indent + 1) + "\n" + "  " * indent + "}"
        raise AssertionError(f"cannot print {type(expr).__name__}")

    def pattern(self, pattern: Pattern) -> str:
        if isinstance(pattern, PatternWildcard):
            return "_"
        if isinstance(pattern, PatternVar):
            return self.typed_var(pattern.var)
        if isinstance(pattern, PatternConstructor):
            subs = ", ".join(self.pattern(p) for p in pattern.patterns)
            return f"{pattern.constructor.name}({subs})" if pattern.patterns else pattern.constructor.name
        if isinstance(pattern, PatternTuple):
            return "(" + ", ".join(self.pattern(p) for p in pattern.patterns) + ")"
        raise AssertionError(f"cannot print pattern {type(pattern).__name__}")

    def block(self, expr: Expr, indent: int) -> str:
        """Print `expr` as a block of lines (let bindings, temporaries, then the result) and return them."""
        start = len(self.lines)
        self.scopes.append({})
        while isinstance(expr, Let):
            value = expr.value
            named = any(id(value) in scope for scope in self.scopes)
            if named or isinstance(value, (Var, GlobalVar, Constant, Op, Constructor)):
                text = self.atom(value, indent)
            else:
                text = self.inline(value, indent)
            self.emit(f"let {self.typed_var(expr.var)} = {text};", indent, value)
            expr = expr.body
        if isinstance(expr, (Var, GlobalVar, Constant, Op, Constructor)):
            result = self.atom(expr, indent)
        else:
            result = self.inline(expr, indent)
        self.emit(result, indent, expr)
        self.scopes.pop()
        text = "\n".join(self.lines[start:])
        del self.lines[start:]
        return text

    def function_text(self, head: str, fn: Function, indent: int) -> str:
        type_params = f"[{', '.join(map(repr, fn.type_params))}]" if fn.type_params else ""
        params = [self.typed_var(p) for p in fn.params]
        ret = f" -> {fn.ret_type!r}" if fn.ret_type is not None else ""
        body = self.block(fn.body, indent + 1)
        pad = "  " * indent
        signature = f"{head}{type_params}({', '.join(params)}){ret}"
        if len(pad + signature) > 100:  # one parameter a line
            signature = f"{head}{type_params}(\n" + "".join(f"{pad}    {p},\n" for p in params) + f"{pad}){ret}"
        return f"{signature} {{\n{body}\n{pad}}}"


def print_expr(expr: Expr) -> str:
    """The text of one expression (a function prints as `fn (...) {...}`)."""
    printer = _Printer()
    return printer.block(expr, 0)


def print_function(name: str, fn: Function, types=None) -> str:
    """The text of global function `name`; with `types` (from `infer_types`) every variable shows its type."""
    return _Printer(types).function_text(f"def @{name}", fn, 0)


def print_function_marked(name: str, fn: Function, target: Expr, context: int = 3) -> str:
    """`name`'s text with the line that computes `target` marked by `>>`, cut to `context` lines around it."""
    printer = _Printer()
    printer.target_id = id(target)
    lines = printer.function_text(f"def @{name}", fn, 0).split("\n")
    marked = [i for i, line in enumerate(lines) if _MARK in line]
    if not marked:
        return "\n".join(lines)
    at = marked[0]
    lines = [line.replace(_MARK, "") for line in lines]
    lo, hi = max(0, at - context), min(len(lines), at + context + 1)
    shown = [(">> " if i == at else "   ") + lines[i] for i in range(lo, hi)]
    if lo > 0:
        shown.insert(0, "   ...")
    if hi < len(lines):
        shown.append("   ...")
    return "\n".join(shown)


def print_type_data(type_data) -> str:
    params = f"[{', '.join(map(repr, type_data.type_params))}]" if type_data.type_params else ""
    ctors = []
    for c in type_data.constructors:
        ctors.append(c.name + (f"({', '.join(map(repr, c.inputs))})" if c.inputs else ""))
    return f"type {type_data.name}{params} {{\n" + "".join(f"  {c},\n" for c in ctors) + "}"


def print_module(mod, types=None) -> str:
    """The text of a whole module: its data types, then its functions (`main` last).

    With `types` (from `infer_types`), let-bound and pattern-bound variables show their inferred types.
    """
    parts = [print_type_data(td) for td in mod.type_defs.values()]
    names = sorted(mod.functions, key=lambda n: (n == "main", n))
    parts += [print_function(n, mod.functions[n], types) for n in names]
    return "\n\n".join(parts)
