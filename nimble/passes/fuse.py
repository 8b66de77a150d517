"""Operator fusion: which operator calls of a function run together as one primitive kernel.

The pass decides groups by the operators' fusion patterns (TVM's rules, simplified):

* an elementwise / broadcast / injective producer fuses into an elementwise, broadcast,
  injective or reduction consumer (reductions with their elementwise inputs);
* an elementwise or broadcast consumer fuses onto an out-elementwise-fusable anchor (dense,
  matmul, conv2d: bias and activation epilogues) or onto a reduction;
* a group holds at most one anchor (a reduction or an out-elementwise-fusable op), opaque
  operators (softmax, layer_norm, data-dependent ops) and reductions to a scalar stay alone;
* a producer fuses only when its value is used once, by that consumer, in the same function
  (a ``let`` variable captured by a closure stays a value of its own).

``fusion_groups(function)`` returns, for each root call, its ``Group``; calls absorbed into a
group are listed in ``absorbed`` so that the code generator emits nothing for their ``let``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ir.expr import Call, Expr, Function, If, Let, Match, Op, Tuple, TupleGetItem, Var
from ..errors import NimbleError
from ..ir.visitor import ExprVisitor
from ..ops.registry import OpPattern, get_op

_INJECTIVE = (OpPattern.ELEMWISE, OpPattern.BROADCAST, OpPattern.INJECTIVE)
_ANCHORS = (OpPattern.COMM_REDUCE, OpPattern.OUT_ELEMWISE_FUSABLE)


@dataclass
class Group:
    """Calls fused into one kernel: ``calls`` in dependency order, the last one is ``root``."""

    root: Call
    calls: list = field(default_factory=list)
    inputs: list = field(default_factory=list)  # leaf expressions: Vars, Constants, non-fused values
    anchor: Call | None = None
    links: dict = field(default_factory=dict)  # id(argument expr) -> the fused call that produces it

    @property
    def name(self) -> str:
        return "_".join(c.op.name.replace(".", "_") for c in self.calls)[:80]


class _Uses:
    """How many times each variable (and each call node, shared in a DAG) is used, which are used
    inside nested functions, and the value each let binds. Binding occurrences (let variables,
    parameters, pattern variables) are not uses."""

    def __init__(self, body):
        self.count: dict = {}
        self.escaping: set = set()
        self.bound: dict = {}
        expanded: set = set()
        stack = [(body, 0)]
        while stack:
            e, depth = stack.pop()
            if isinstance(e, (Var, Call)):
                self.count[e] = self.count.get(e, 0) + 1
                if depth:
                    self.escaping.add(e)
                if isinstance(e, Var) or id(e) in expanded:
                    continue
                expanded.add(id(e))
                stack.append((e.op, depth))
                stack.extend((a, depth) for a in e.args)
            elif isinstance(e, Let):
                while isinstance(e, Let):
                    self.bound[e.var] = e.value
                    stack.append((e.value, depth))
                    e = e.body
                stack.append((e, depth))
            elif isinstance(e, If):
                stack.extend(((e.cond, depth), (e.then_branch, depth), (e.else_branch, depth)))
            elif isinstance(e, Tuple):
                stack.extend((f, depth) for f in e.fields)
            elif isinstance(e, TupleGetItem):
                stack.append((e.tuple_value, depth))
            elif isinstance(e, Match):
                stack.append((e.data, depth))
                stack.extend((c.body, depth) for c in e.clauses)
            elif isinstance(e, Function):
                stack.append((e.body, depth + 1))


def pattern_of(call: Call) -> OpPattern:
    return get_op(call.op.name).pattern


def _is_op_call(e: Expr) -> bool:
    return isinstance(e, Call) and isinstance(e.op, Op)


_EPILOGUE = (OpPattern.ELEMWISE, OpPattern.BROADCAST)


def _fusable(producer: Call, consumer: Call, g: "Group") -> bool:
    p, c = pattern_of(producer), pattern_of(consumer)
    if p == OpPattern.OPAQUE or c == OpPattern.OPAQUE:
        return False
    if get_op(producer.op.name).value_inputs or get_op(consumer.op.name).value_inputs:
        return False  # data-dependent shapes stay alone
    members = [pattern_of(x) for x in g.calls] + [pattern_of(g.root)]
    if p in _ANCHORS:  # an anchor joins a group of elementwise epilogues only
        if p == OpPattern.OUT_ELEMWISE_FUSABLE and any(x.op.name == "cast" for x in g.calls + [g.root, consumer]):
            return False  # dense / conv2d templates keep their dtype through their epilogues: a cast stays apart
        return g.anchor is None and c in _EPILOGUE and all(m in _EPILOGUE for m in members)
    if p in _INJECTIVE and c in _INJECTIVE + (OpPattern.COMM_REDUCE,):
        if g.anchor is None or pattern_of(g.anchor) == OpPattern.COMM_REDUCE:
            return True  # injective chains, and the inputs of a reduction
        return p in _EPILOGUE  # side inputs of a dense / conv epilogue

    return False


def fusion_groups(func: Function, types=None) -> tuple:
    """(groups keyed by id of their root call, ids of calls absorbed into another group)."""
    uses = _Uses(func.body)
    groups: dict = {}
    absorbed: set = set()
    owner: dict = {}  # id(call) -> Group it belongs to

    order: list = []

    class _Collect(ExprVisitor):
        def visit_function(self, f):
            return None  # nested functions are compiled on their own

        def visit_call(self, e: Call):
            super().visit_call(e)
            if _is_op_call(e):
                order.append(e)

    def producer_of(arg: Expr):
        if _is_op_call(arg):
            return arg if uses.count.get(arg, 0) == 1 and arg not in uses.escaping else None
        if isinstance(arg, Var) and uses.count.get(arg, 0) == 1 and arg not in uses.escaping:
            value = uses.bound.get(arg)
            if value is not None and _is_op_call(value):
                return value
        return None

    def _build_group(root: Call) -> None:
        g = Group(root)
        if pattern_of(root) in _ANCHORS:
            g.anchor = root
        _absorb(g, root)
        g.calls.append(root)
        owner[id(root)] = g
        groups[id(root)] = g

    def _absorb(g: Group, consumer: Call) -> None:
        for arg in consumer.args:
            prod = producer_of(arg)
            if prod is not None and id(prod) not in owner and _types_ok(prod, types) and not _whole_reduction(
                    prod, types) and _fusable(prod, consumer, g):
                if pattern_of(prod) in _ANCHORS:
                    g.anchor = prod
                owner[id(prod)] = g
                absorbed.add(id(prod))
                g.links[id(arg)] = prod
                _absorb(g, prod)
                g.calls.append(prod)
            else:
                _add_input(g, arg)

    _Collect().visit(func.body)
    for call in reversed(order):  # consumers first, so that they absorb their producers
        if id(call) not in owner:
            _build_group(call)
    return groups, absorbed


def _types_ok(call: Call, types) -> bool:
    """Only single-tensor results fuse into a consumer (a tuple result is its own value)."""
    if types is None:
        return True
    from ..ir.types import TensorType

    return isinstance(types[call], TensorType)


def _whole_reduction(call: Call, types) -> bool:
    """A reduction to a scalar stays alone: the reduce template serves it (a vectorised pass over the data, 14x the
    generic schedule's speed for a max over 32 x 3072 floats), and an elementwise step on its scalar result costs
    nothing apart."""
    if types is None or pattern_of(call) != OpPattern.COMM_REDUCE:
        return False
    from ..ir.types import TensorType

    t = types[call]
    return isinstance(t, TensorType) and not t.shape


def _add_input(g: Group, arg: Expr) -> None:
    if isinstance(arg, Tuple):
        for f in arg.fields:
            _add_input(g, f)
        return
    if not any(a is arg for a in g.inputs):
        g.inputs.append(arg)



@dataclass(frozen=True)
class FusedModule:
    """A module with its types and, for every function (global or nested literal), its fusion groups.

    ``fusion[id(function)]`` is ``(groups, absorbed)`` as ``fusion_groups`` returns them; the functions are kept
    alive by ``mod``, so their ids stay valid."""

    mod: object
    types: object
    fusion: dict

    def groups_of(self, func: Function) -> tuple:
        return self.fusion[id(func)]

    def summary(self) -> str:
        n = sum(len(groups) for groups, _ in self.fusion.values())
        return f"{len(self.fusion)} functions, {n} fused groups"

    def dump(self) -> str:
        lines = []
        for name, func in self.mod.functions.items():
            for f in functions_in(func):
                groups, _ = self.fusion[id(f)]
                where = name if f is func else f"{name} (closure)"
                lines.append(f"{where}: {len(groups)} groups")
                for g in reversed(groups.values()):  # program order
                    ins = ", ".join(_type_text(self.types, x) for x in g.inputs)
                    lines.append(f"  {g.name:40s} ({ins}) -> {self.types[g.root]}")
        return "\n".join(lines)


def _type_text(types, expr) -> str:
    try:
        return str(types[expr])
    except NimbleError:  # an input the type checker never saw on its own (a tuple field)
        return type(expr).__name__


def functions_in(func: Function) -> list:
    """``func`` and every function literal nested in it, outermost first."""
    found = [func]

    class _Functions(ExprVisitor):
        def visit_function(self, f):
            found.append(f)
            super().visit_function(f)

    _Functions().visit(func.body)
    return found


def fuse_ops(mod) -> FusedModule:
    """Fusion groups of every function of ``mod`` (type-checked here): the ``fuse`` pass."""
    from ..ir.infer import infer_types

    types = infer_types(mod)
    fusion = {}
    for func in mod.functions.values():
        for f in functions_in(func):
            fusion[id(f)] = fusion_groups(f, types)
    return FusedModule(mod, types, fusion)
