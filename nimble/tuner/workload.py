"""Workload keys: the stable, JSON-able identity of a tuning task.

A workload key names what is tuned, independently of any ``Task`` object: the template
name, the argument signature (each argument's shape — ints and symbolic dim names — and
dtype), the target string and optional template attributes. Its canonical JSON form
(sorted keys, no spaces, ASCII) is stable across runs and machines, and its ``hash`` is the
sha256 of that form, so a workload tuned today is found again tomorrow.

    >>> key = WorkloadKey("dense", [(("n", 512), "float32"), ((512, 512), "float32")], "llvm")
    >>> key.symbolic_dims
    ('n',)
    >>> WorkloadKey.from_json(key.to_json()) == key
    True
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import FormatError

_DIM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DTYPE = re.compile(r"^[a-z]+[0-9]*(x[0-9]+)?$")

Dim = int | str


def canonical_json(obj: Any) -> str:
    """The canonical JSON text of ``obj``: sorted keys, no whitespace, ASCII, no NaN."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"expected a JSON-serialisable value with finite numbers, got {obj!r}: {exc}") from exc


def sha256_hex(text: str) -> str:
    """Hex sha256 of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ArgSpec:
    """One argument of a workload: ``shape`` (ints >= 0 and symbolic dim names) and ``dtype``."""

    shape: tuple[Dim, ...]
    dtype: str

    def __post_init__(self) -> None:
        if isinstance(self.shape, (str, bytes)) or not isinstance(self.shape, Iterable):
            raise FormatError(f"argument shape: expected a sequence of ints and dim names, got {self.shape!r}")
        shape = tuple(self.shape)
        for dim in shape:
            if isinstance(dim, bool) or not isinstance(dim, (int, str)):
                raise FormatError(f"argument shape {shape!r}: expected ints or dim names, got {dim!r}")
            if isinstance(dim, int) and dim < 0:
                raise FormatError(f"argument shape {shape!r}: expected dims >= 0, got {dim}")
            if isinstance(dim, str) and not _DIM_NAME.match(dim):
                raise FormatError(f"argument shape {shape!r}: expected an identifier as dim name, got {dim!r}")
        if not isinstance(self.dtype, str) or not _DTYPE.match(self.dtype):
            raise FormatError(f"argument dtype: expected a dtype name such as 'float32', got {self.dtype!r}")
        object.__setattr__(self, "shape", shape)

    def to_json(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype}


def _as_arg(arg: ArgSpec | Mapping[str, Any] | tuple[Any, str]) -> ArgSpec:
    if isinstance(arg, ArgSpec):
        return arg
    if isinstance(arg, Mapping):
        if set(arg) != {"shape", "dtype"}:
            raise FormatError(f"workload argument: expected keys ['dtype', 'shape'], got {sorted(arg)}")
        return ArgSpec(arg["shape"], arg["dtype"])
    if isinstance(arg, (tuple, list)) and len(arg) == 2:
        return ArgSpec(arg[0], arg[1])
    raise FormatError(f"workload argument: expected (shape, dtype) or {{'shape', 'dtype'}}, got {arg!r}")


@dataclass(frozen=True)
class WorkloadKey:
    """Template name + argument signature + target + attrs, with a stable canonical JSON and hash.

    ``attrs`` must be a JSON-serialisable mapping with string keys; it is copied and frozen.
    Equality and hashing use the canonical JSON form.
    """

    template: str
    args: tuple[ArgSpec, ...]
    target: str
    attrs: Mapping[str, Any] = field(default_factory=dict, compare=False)
    _canonical: str = field(init=False, repr=False, compare=True)

    def __post_init__(self) -> None:
        if not isinstance(self.template, str) or not self.template:
            raise FormatError(f"workload template: expected a non-empty string, got {self.template!r}")
        if not isinstance(self.target, str) or not self.target.strip():
            raise FormatError(f"workload target: expected a non-empty string such as 'llvm', got {self.target!r}")
        if isinstance(self.args, (str, bytes, Mapping)) or not isinstance(self.args, Iterable):
            raise FormatError(f"workload args: expected a sequence of (shape, dtype), got {self.args!r}")
        object.__setattr__(self, "args", tuple(_as_arg(a) for a in self.args))
        if not isinstance(self.attrs, Mapping) or not all(isinstance(k, str) for k in self.attrs):
            raise FormatError(f"workload attrs: expected a mapping with string keys, got {self.attrs!r}")
        frozen = json.loads(canonical_json(dict(self.attrs)))
        object.__setattr__(self, "attrs", MappingProxyType(frozen))
        object.__setattr__(self, "_canonical", canonical_json(self.to_json()))

    @property
    def symbolic_dims(self) -> tuple[str, ...]:
        """Symbolic dim names in order of first appearance."""
        seen: dict[str, None] = {}
        for arg in self.args:
            for dim in arg.shape:
                if isinstance(dim, str):
                    seen.setdefault(dim)
        return tuple(seen)

    @property
    def canonical(self) -> str:
        """The canonical JSON text (the input of ``hash``)."""
        return self._canonical

    @property
    def hash(self) -> str:
        """sha256 (64 hex digits) of the canonical JSON form."""
        return sha256_hex(self._canonical)

    @property
    def short_hash(self) -> str:
        """First 12 hex digits of ``hash``, for display."""
        return self.hash[:12]

    def to_json(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "args": [a.to_json() for a in self.args],
            "target": self.target,
            "attrs": dict(self.attrs),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | str) -> WorkloadKey:
        """Parse the dict (or JSON text) written by ``to_json``; raises FormatError naming the field."""
        if isinstance(obj, str):
            try:
                obj = json.loads(obj)
            except json.JSONDecodeError as exc:
                raise FormatError(f"workload: expected JSON text, got {obj[:80]!r}: {exc}") from exc
        if not isinstance(obj, Mapping):
            raise FormatError(f"workload: expected a JSON object, got {type(obj).__name__}")
        missing = {"template", "args", "target"} - set(obj)
        if missing:
            raise FormatError(f"workload: missing field(s) {sorted(missing)}")
        unknown = set(obj) - {"template", "args", "target", "attrs"}
        if unknown:
            raise FormatError(f"workload: unknown field(s) {sorted(unknown)}")
        if not isinstance(obj["args"], list):
            raise FormatError(f"workload field 'args': expected a list, got {obj['args']!r}")
        return cls(obj["template"], obj["args"], obj["target"], obj.get("attrs", {}))

    def __str__(self) -> str:
        sig = ", ".join(f"{a.dtype}[{'x'.join(map(str, a.shape))}]" for a in self.args)
        return f"{self.template}({sig}) @{self.target} #{self.short_hash}"
