"""Config spaces: the knobs a schedule template declares, and configs (one point of a space).

Knobs follow AutoTVM: ``define_split`` (candidate factors of a static or symbolic extent),
``define_reorder`` (loop orders), ``define_annotate`` (unroll / vectorize / parallel choices)
and ``define_knob`` (plain options). A space is the product of its knobs; a config is one value
per knob, with a stable index (mixed radix in declaration order) and a JSON form.
"""
from __future__ import annotations

import json
import random as _random
from dataclasses import dataclass

from ..errors import FormatError

DEFAULT_SPLIT_FACTORS = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Knob:
    name: str
    kind: str  # "split" | "reorder" | "annotate" | "option"
    values: tuple
    default: object = None  # what a config without this knob means (one recorded before the knob existed)

    def __len__(self) -> int:
        return len(self.values)


def _jsonable(v):
    return list(_jsonable(x) for x in v) if isinstance(v, tuple) else v


def _from_json(v):
    return tuple(_from_json(x) for x in v) if isinstance(v, list) else v


class ConfigSpace:
    """An ordered set of knobs; ``len(space)`` configs, each reachable by index."""

    def __init__(self, name: str = ""):
        self.name = name
        self.knobs: dict = {}

    # ----------------------------------------------------------------------- definitions
    def _add(self, knob: Knob) -> Knob:
        if knob.name in self.knobs:
            raise FormatError(f"config space {self.name}: knob {knob.name!r} defined twice")
        if not knob.values:
            raise FormatError(f"config space {self.name}: knob {knob.name!r} has no candidate values")
        self.knobs[knob.name] = knob
        return knob

    def define_split(self, name: str, extent, candidates=None, max_factor: int = 64) -> Knob:
        """Inner factors for splitting a loop of ``extent`` (an int, or None when symbolic).

        A static extent gets its divisors up to ``max_factor`` plus the power-of-two
        candidates (non-divisors leave a guarded tail); a symbolic one gets the candidates.
        """
        cands = tuple(candidates) if candidates is not None else DEFAULT_SPLIT_FACTORS
        if isinstance(extent, int) and candidates is None:
            divs = [d for d in range(1, min(extent, max_factor) + 1) if extent % d == 0]
            cands = tuple(sorted(set(divs) | {c for c in cands if c <= max(extent, 1)}))
        cands = tuple(c for c in cands if isinstance(c, int) and 1 <= c <= max_factor) or (1,)
        return self._add(Knob(name, "split", cands))

    def define_reorder(self, name: str, orders) -> Knob:
        return self._add(Knob(name, "reorder", tuple(tuple(o) for o in orders)))

    def define_annotate(self, name: str, choices) -> Knob:
        return self._add(Knob(name, "annotate", tuple(choices)))

    def define_knob(self, name: str, values, default=None) -> Knob:
        """Plain options; ``default`` (one of them) is what a config recorded without this knob means,
        so records made before a knob was added stay readable."""
        values = tuple(values)
        if default is not None and default not in values:
            raise FormatError(f"config space {self.name}: knob {name!r}: default {default!r} is not one of {list(values)}")
        return self._add(Knob(name, "option", values, default))

    # --------------------------------------------------------------------------- access
    def __len__(self) -> int:
        total = 1
        for k in self.knobs.values():
            total *= len(k)
        return total

    def get(self, index: int) -> "Config":
        if not 0 <= index < len(self):
            raise FormatError(f"config space {self.name}: index must be in [0, {len(self)}), got {index}")
        values, rest = {}, index
        for k in self.knobs.values():
            rest, pos = divmod(rest, len(k))
            values[k.name] = k.values[pos]
        return Config(self, index, values)

    def index_of(self, values: dict) -> int:
        index, scale = 0, 1
        for k in self.knobs.values():
            if k.name not in values:
                raise FormatError(f"config for {self.name}: knob {k.name!r} is missing")
            v = values[k.name]
            if v not in k.values:
                raise FormatError(f"config for {self.name}: knob {k.name!r} = {v!r} is not one of {list(k.values)}")
            index += k.values.index(v) * scale
            scale *= len(k)
        extra = set(values) - set(self.knobs)
        if extra:
            raise FormatError(f"config for {self.name}: unknown knobs {sorted(extra)}")
        return index

    def config(self, **values) -> "Config":
        """The config with these knob values (every knob named)."""
        return self.get(self.index_of(values))

    def random(self, rng: _random.Random) -> "Config":
        return self.get(rng.randrange(len(self)))

    def from_json(self, data) -> "Config":
        """A config from its JSON form (a dict or its text); checks every knob and value."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise FormatError(f"config for {self.name}: not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise FormatError(f"config for {self.name}: expected a JSON object, got {type(data).__name__}")
        values = {k: _from_json(v) for k, v in data.items()}
        for k in self.knobs.values():
            if k.name not in values and k.default is not None:
                values[k.name] = k.default
        return self.config(**values)

    def recorded(self, index: int, data) -> "Config | None":
        """The config a tuning record names by its JSON ``data``, or None when that is not a config of this space;
        knobs the JSON lacks take their defaults. The record's ``index`` is not checked: a knob that gained values
        (the gemm space's 10- and 12-row tiles) renumbers every config after it, and the knob values are what a
        record means."""
        try:
            return self.from_json(data)
        except FormatError:
            return None

    def neighbours(self, config: "Config") -> list:
        """Configs differing from ``config`` in one knob by one position."""
        out = []
        for k in self.knobs.values():
            pos = k.values.index(config.values[k.name])
            for p in (pos - 1, pos + 1):
                if 0 <= p < len(k):
                    vals = dict(config.values)
                    vals[k.name] = k.values[p]
                    out.append(self.get(self.index_of(vals)))
        return out

    def __repr__(self):
        knobs = ", ".join(f"{k.name}[{len(k)}]" for k in self.knobs.values())
        return f"ConfigSpace({self.name}: {len(self)} configs: {knobs})"


@dataclass(frozen=True)
class Config:
    """One point of a config space."""

    space: ConfigSpace
    index: int
    values: dict

    def __getitem__(self, name: str):
        return self.values[name]

    def to_json(self) -> dict:
        return {k: _jsonable(v) for k, v in self.values.items()}

    def __repr__(self):
        return f"Config(#{self.index} {self.to_json()})"

    def __hash__(self):
        return hash((self.space.name, self.index))

    def __eq__(self, other):
        return isinstance(other, Config) and other.space is self.space and other.index == self.index
