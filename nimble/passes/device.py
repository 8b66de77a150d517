"""Heterogeneous device placement (the paper's union-find analysis).

Shape functions read their inputs on the host, so the values a data-dependent operator reads
as data (``arange``'s bounds, ``dyn.reshape``'s shape, ...) and what ``shape_of`` produces live
on the CPU; every other operator runs its kernel on the target device. Values flowing through
``let``, tuples, ``if`` branches, function parameters and returns are unified into one class
and share a device; a class takes the device of the first operator that fixes it, or the
target when none does (constants take the device of their class). A ``device_copy`` is needed
wherever a consumer requires another device than the class of its argument.

``place_devices(mod, target_device)`` returns the placement and the copies; with a CPU
target (device 0) every class is on the CPU and no copy is needed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ir.expr import Call, Constant, Function, GlobalVar, If, Let, Match, Op, Tuple, TupleGetItem, Var
from ..ops.registry import get_op

CPU = 0


@dataclass
class Placement:
    """``device_of(expr)``; ``copies``: (argument expr, from device, to device, consumer call)."""

    classes: dict = field(default_factory=dict)
    copies: list = field(default_factory=list)
    _find: object = None

    def device_of(self, expr) -> int:
        return self._find(expr)


class _UnionFind:
    def __init__(self, default: int):
        self.parent: dict = {}
        self.device: dict = {}
        self.default = default

    def root(self, key):
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]  # path halving
            key = self.parent[key]
        return key

    def union(self, a, b) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra == rb:
            return
        da, db = self.device.get(ra), self.device.get(rb)
        if da is not None and db is not None and da != db:
            return  # fixed on different devices: the flow needs a copy, not a merge
        self.parent[rb] = ra
        if da is None and db is not None:
            self.device[ra] = db

    def fix(self, key, device: int) -> None:
        r = self.root(key)
        self.device.setdefault(r, device)

    def get(self, key) -> int:
        return self.device.get(self.root(key), self.default)


def place_devices(mod, target_device: int = CPU) -> Placement:
    """Assign every value of ``mod`` a device; list the copies a consumer needs."""
    uf = _UnionFind(target_device)
    demands: list = []  # (argument expr, required device, consumer)
    key = _key

    def visit(e, fn_name: str):
        if isinstance(e, Let):
            while isinstance(e, Let):
                visit(e.value, fn_name)
                uf.union(key(e.var), key(e.value))
                e = e.body
            visit(e, fn_name)
            return
        if isinstance(e, If):
            for part in (e.cond, e.then_branch, e.else_branch):
                visit(part, fn_name)
            demands.append((e.cond, CPU, e))  # the VM branches on the host
            uf.union(key(e), key(e.then_branch))
            uf.union(key(e), key(e.else_branch))
        elif isinstance(e, Tuple):
            for f in e.fields:
                visit(f, fn_name)
        elif isinstance(e, TupleGetItem):
            visit(e.tuple_value, fn_name)
            uf.union(key(e), key(e.tuple_value))
        elif isinstance(e, Match):
            visit(e.data, fn_name)
            for c in e.clauses:
                visit(c.body, fn_name)
                uf.union(key(e), key(c.body))
        elif isinstance(e, Function):
            visit(e.body, fn_name)
        elif isinstance(e, Call):
            for a in e.args:
                visit(a, fn_name)
            if isinstance(e.op, Op):
                opdef = get_op(e.op.name)
                for i, a in enumerate(e.args):
                    need = CPU if i in opdef.value_inputs else target_device
                    if isinstance(a, Constant):
                        uf.fix(key(a), need)
                    demands.append((a, need, e))
                uf.fix(key(e), CPU if e.op.name == "shape_of" else target_device)
            elif isinstance(e.op, GlobalVar):
                callee = mod.functions[e.op.name]
                for p, a in zip(callee.params, e.args):
                    uf.union(key(p), key(a))
                uf.union(key(e), ("ret", e.op.name))
        elif isinstance(e, (Var, Constant, GlobalVar)):
            return

    for name, func in mod.functions.items():
        visit(func.body, name)
        uf.union(("ret", name), key(func.body))
    copies = []
    for arg, need, consumer in demands:
        have = uf.get(key(arg))
        if have != need:
            copies.append((arg, have, need, consumer))
    return Placement(copies=copies, _find=lambda e: uf.get(key(e)))


def _key(e):
    """Values are keyed by node identity (variables by their id)."""
    return ("var", e.id) if isinstance(e, Var) else id(e)
