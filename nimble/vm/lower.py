"""The ``lower_kernels`` pass: every fused group of a ``FusedModule`` compiled to a kernel (``vm/kernels.py``).

Groups with the same operators, attributes, wiring and input types share one kernel (``group_key``). The
result, a ``LoweredModule``, holds the packed-function table the bytecode indexes: kernel entries first, in
program order, then the host shape functions the bytecode pass adds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir.expr import Constant
from ..passes.fuse import FusedModule, functions_in
from .kernels import build_group_kernel


def group_key(group, types) -> str:
    """Groups with the same operators, attributes, wiring and input types share one kernel."""
    position = {id(c): j for j, c in enumerate(group.calls)}
    inputs = {id(x): k for k, x in enumerate(group.inputs)}

    def source(arg) -> str:
        prod = group.links.get(id(arg))
        if prod is not None or id(arg) in position:
            return f"c{position[id(prod if prod is not None else arg)]}"
        if hasattr(arg, "fields"):
            return "(" + ",".join(source(f) for f in arg.fields) + ")"
        return f"i{inputs[id(arg)]}"

    parts = [f"{c.op.name}{sorted(c.attrs.as_dict().items())}({','.join(source(a) for a in c.args)})"
             for c in group.calls]
    parts += [f"{types[inp]}{_const_kind(inp)}" for inp in group.inputs]
    return "|".join(parts)


def _const_kind(inp) -> str:
    """'const', and 'half' for a float32 one whose values are all float16 ones (the dense template stores such a
    weight as float16: a group with another weight must not share its kernel)."""
    if not isinstance(inp, Constant):
        return ""
    from ..schedules.dense import half_exact

    return "const half" if half_exact(np.asarray(inp.value)) else "const"


@dataclass
class LoweredModule:
    """A fused module and its kernel library: ``packed`` entries, and per group key (packed index, GroupKernel)."""

    fused: FusedModule
    db: object = None
    packed: list = field(default_factory=list)
    kernels: list = field(default_factory=list)  # GroupKernel per kernel entry, for explain / tuning
    by_key: dict = field(default_factory=dict)

    def kernel(self, group) -> tuple:
        """(packed index, GroupKernel) of a group lowered by the ``lower_kernels`` pass."""
        return self.by_key[group_key(group, self.fused.types)]

    def summary(self) -> str:
        templates: dict = {}
        for gk in self.kernels:
            templates[gk.template] = templates.get(gk.template, 0) + 1
        parts = ", ".join(f"{n} {t}" for t, n in sorted(templates.items()))
        return f"{len(self.kernels)} kernels ({parts})"

    def dump(self) -> str:
        lines = []
        for gk in self.kernels:
            outs = ", ".join(f"{dtype}{list(shape)}" for shape, dtype in gk.out_types)
            lines.append(f"{gk.name:48s} {gk.template:12s} {type(gk.entry).__name__:14s} -> {outs}")
        return "\n".join(lines)


def lower_kernels(fused: FusedModule, db=None, accept_foreign: bool = False) -> LoweredModule:
    """Compile each distinct fused group once (records from ``db`` pick template configs)."""
    lowered = LoweredModule(fused, db)
    for func in fused.mod.functions.values():
        for f in functions_in(func):
            groups, _ = fused.groups_of(f)
            for group in reversed(groups.values()):  # fusion lists consumers first: program order
                key = group_key(group, fused.types)
                if key in lowered.by_key:
                    continue
                gk = build_group_kernel(group, fused.types, f"k{len(lowered.packed)}_{group.name}", db,
                                        accept_foreign)
                lowered.packed.append(gk.entry)
                lowered.kernels.append(gk)
                lowered.by_key[key] = (len(lowered.packed) - 1, gk)
    return lowered
