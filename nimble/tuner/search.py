"""Search strategies over a task's config space; all share one interface.

A tuner proposes batches of configs never measured before (``next_batch``) and learns from
their costs (``update``: seconds, or None for a config that failed). ``RandomTuner`` and
``GridTuner`` are the baselines; ``XGBTuner`` (``cost_model.py``) is the default.
"""
from __future__ import annotations

import random


class Tuner:
    """Base: remembers what was measured and the best cost so far."""

    name = "base"

    def __init__(self, task, seed: int = 0):
        self.task = task
        self.space = task.space
        self.rng = random.Random(seed)
        self.measured: set = set()
        self.best_cost = float("inf")
        self.best_config = None

    def has_next(self) -> bool:
        return len(self.measured) < len(self.space)

    def mark_measured(self, indices) -> None:
        """Configs measured in an earlier run (``--resume``): never proposed again."""
        self.measured.update(indices)

    def next_batch(self, size: int) -> list:
        """Up to ``size`` configs not measured yet (the base class proposes in random order)."""
        return RandomTuner.next_batch(self, size)

    def update(self, configs: list, costs: list) -> None:
        for cfg, cost in zip(configs, costs):
            self.measured.add(cfg.index)
            if cost is not None and cost < self.best_cost:
                self.best_cost, self.best_config = cost, cfg


class RandomTuner(Tuner):
    """Uniform samples without replacement."""

    name = "random"

    def next_batch(self, size: int) -> list:
        out, tries = [], 0
        n = len(self.space)
        picked = set()
        while len(out) < size and len(self.measured) + len(out) < n and tries < 100 * size + 1000:
            tries += 1
            i = self.rng.randrange(n)
            if i in self.measured or i in picked:
                continue
            picked.add(i)
            out.append(self.space.get(i))
        if len(out) < size:  # a nearly exhausted space: walk it
            for i in range(n):
                if len(out) >= size:
                    break
                if i not in self.measured and i not in picked:
                    picked.add(i)
                    out.append(self.space.get(i))
        return out


class GridTuner(Tuner):
    """Every config in index order."""

    name = "grid"

    def __init__(self, task, seed: int = 0):
        super().__init__(task, seed)
        self._next = 0

    def next_batch(self, size: int) -> list:
        out = []
        while len(out) < size and self._next < len(self.space):
            if self._next not in self.measured:
                out.append(self.space.get(self._next))
            self._next += 1
        return out


def make_tuner(name: str, task, seed: int = 0) -> Tuner:
    """``"xgb"`` (default), ``"random"`` or ``"grid"``."""
    if name == "xgb":
        from .cost_model import XGBTuner

        return XGBTuner(task, seed)
    if name == "random":
        return RandomTuner(task, seed)
    if name == "grid":
        return GridTuner(task, seed)
    from ..errors import TuningError

    raise TuningError(f"tuner: expected one of xgb, random, grid, got {name!r}")
