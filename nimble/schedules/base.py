"""What a schedule template is: its signature, its instance, the Template base class, a built kernel.

A template turns a *signature* (argument shapes with ints and symbolic dim names, dtypes, and
attrs) and a *config* (a point of its config space) into a schedule. It also gives a fallback
config (a documented heuristic), a numpy reference, random inputs and a FLOP count, so that
every config can be checked and measured the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import NimbleError
from ..te.expr import var
from ..te.tensor import placeholder
from .space import Config, ConfigSpace


class TemplateError(NimbleError, ValueError):
    """A template was asked for an unknown name or an unsupported signature."""


@dataclass(frozen=True)
class Signature:
    """Argument shapes (ints and symbolic dim names), dtypes and attrs of one operator call."""

    args: tuple  # ((shape tuple, dtype), ...)
    attrs: tuple = ()  # sorted (key, value) pairs; values JSON-able

    @staticmethod
    def make(args, **attrs) -> "Signature":
        norm = tuple((tuple(shape), str(dtype)) for shape, dtype in args)
        return Signature(norm, tuple(sorted((k, _freeze(v)) for k, v in attrs.items())))

    def attr(self, name: str, default=None):
        return dict(self.attrs).get(name, default)

    @property
    def symbolic_dims(self) -> tuple:
        out = []
        for shape, _ in self.args:
            for d in shape:
                if isinstance(d, str) and d not in out:
                    out.append(d)
        return tuple(out)

    def placeholders(self, names) -> tuple:
        """te placeholders for the args, sharing one te.var per symbolic dim name."""
        dims: dict = {}
        out = []
        for (shape, dtype), name in zip(self.args, names):
            te_shape = [dims.setdefault(d, var(d)) if isinstance(d, str) else d for d in shape]
            out.append(placeholder(tuple(te_shape), dtype, name))
        return tuple(out), dims

    def concrete(self, values: dict) -> list:
        """The args' concrete shapes with symbolic dims set to ``values``."""
        try:
            return [tuple(values[d] if isinstance(d, str) else d for d in shape) for shape, _ in self.args]
        except KeyError as exc:
            raise TemplateError(f"signature: no value given for symbolic dim {exc.args[0]!r}") from None


def _freeze(v):
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


@dataclass
class Instance:
    """A scheduled template: build ``schedule`` with ``args``; ``residues`` lists the residue
    variants worth compiling (dicts dim name -> factor); ``dims`` maps names to te vars."""

    schedule: object
    args: list
    dims: dict
    residues: list = field(default_factory=list)
    prepare: object = None  # optional: numpy inputs -> kernel inputs (e.g. packing a weight)

    def residue_vars(self) -> list:
        return [{self.dims[k]: f for k, f in r.items()} for r in self.residues]


class Template:
    """Base class: subclasses define the space, the fallback, the schedule and the reference."""

    name = ""
    target = "llvm"

    def space(self, sig: Signature) -> ConfigSpace:
        raise TemplateError(f"template {self.name} defines no config space")

    def fallback(self, sig: Signature, space: ConfigSpace, hints: dict | None = None) -> Config:
        """The config used before tuning; ``hints`` maps symbolic dims to a representative value."""
        raise TemplateError(f"template {self.name} defines no fallback")

    def instantiate(self, sig: Signature, cfg: Config) -> Instance:
        raise TemplateError(f"template {self.name} defines no schedule")

    def refit(self, sig: Signature, space: ConfigSpace, cfg: Config, dim: str, n: int) -> Config | None:
        """The config to run at ``dim == n`` in place of ``cfg``, one tuned for a range of ``dim``; None keeps it.
        A template whose cost jumps with ``n`` by a knob's granularity (a tile height that overcomputes the
        last tile) adapts that knob here; the default keeps every config."""
        return None

    def reference(self, sig: Signature, inputs: list) -> list:
        """numpy outputs for numpy inputs (the inputs the user gives, before ``prepare``)."""
        raise TemplateError(f"template {self.name} defines no reference")

    def flops(self, sig: Signature, dims: dict) -> int:
        return 0

    def random_inputs(self, sig: Signature, dims: dict, rng: np.random.Generator) -> list:
        shapes = sig.concrete(dims)
        n_in = self.num_inputs(sig)
        out = []
        for shape, (_, dtype) in zip(shapes[:n_in], sig.args[:n_in]):
            if np.dtype(dtype).kind == "f":
                out.append(rng.standard_normal(shape).astype(dtype))
            else:
                out.append(rng.integers(0, 4, size=shape).astype(dtype))
        return out

    def num_inputs(self, sig: Signature) -> int:
        return len(sig.args)

    def lower(self, sig: Signature, cfg: Config, name: str = "kernel"):
        """The loop IR (``PrimFunc``) of ``cfg`` for ``sig``: what the cost model's features read."""
        from ..tir.lower import lower

        inst = self.instantiate(sig, cfg)
        return lower(inst.schedule, inst.args, name)

    def build(self, sig: Signature, cfg: Config, name: str | None = None):
        """Compile ``cfg`` for ``sig``: a ``TemplateKernel`` taking the user's numpy inputs."""
        from ..codegen.build import build

        inst = self.instantiate(sig, cfg)
        kernel = build(inst.schedule, inst.args, target=self.target, name=name or self.name,
                       residues=inst.residue_vars())
        return TemplateKernel(kernel, inst.prepare)


class TemplateKernel:
    """A built template config: call with the template's numpy inputs; returns the outputs."""

    def __init__(self, kernel, prepare):
        self.kernel = kernel
        self.prepare = prepare

    def prepare_inputs(self, inputs: list) -> list:
        return list(self.prepare(inputs)) if self.prepare is not None else list(inputs)

    def __call__(self, *inputs):
        return self.kernel(*self.prepare_inputs(list(inputs)))


__all__ = ["Signature", "Instance", "Template", "TemplateKernel", "TemplateError"]
