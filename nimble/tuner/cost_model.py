"""The XGBoost cost model and the tuner that searches with it (the default, ``"xgb"``).

The model ranks configs (``rank:pairwise`` by default) from the loop-IR features of
``features.py``; the features hold the bucket's shape values, so records of every bucket of a
workload train one model (``load_history`` adds another bucket's measurements). Each batch is
chosen by simulated annealing over the model's predictions, started from the best measured
configs and random points, then filled epsilon-greedily: most picks are the top predictions
not measured yet, ``epsilon`` of them random, so the model keeps seeing new regions.
"""
from __future__ import annotations

import heapq
import logging
import math

import numpy as np

from .features import extract
from .search import Tuner

log = logging.getLogger("nimble.tuner")


class CostModel:
    """XGBoost on feature vectors; ``fit(xs, throughputs)``, ``predict(xs)`` (higher is better)."""

    def __init__(self, objective: str = "rank:pairwise", num_rounds: int = 60, seed: int = 0):
        self.objective = objective
        self.num_rounds = num_rounds
        self.seed = seed
        self.booster = None

    def fit(self, xs: np.ndarray, ys: np.ndarray, groups=None) -> None:
        """``groups``: a group id per row (a task and bucket); throughputs are then relative to their
        group's best, and a ranking objective compares configs within a group only."""
        import xgboost as xgb

        xs, ys = np.asarray(xs), np.asarray(ys, dtype=np.float64)
        if groups is None:
            sizes, y = [len(ys)], ys / max(float(ys.max()), 1e-12)  # relative throughput in [0, 1]
        else:
            ids = np.asarray(groups)
            order = np.argsort(ids, kind="stable")
            xs, ys, ids = xs[order], ys[order], ids[order]
            starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
            sizes = list(np.diff(np.r_[starts, len(ids)]))
            best = np.maximum.reduceat(ys, starts)
            y = ys / np.maximum(np.repeat(best, sizes), 1e-12)
        params = {"objective": self.objective, "max_depth": 6, "eta": 0.3, "gamma": 1e-4,
                  "min_child_weight": 1, "subsample": 1.0, "seed": self.seed, "nthread": 1, "verbosity": 0}
        if self.objective.startswith("rank:"):
            params["eval_metric"] = "ndcg"
        data = xgb.DMatrix(xs, label=y)
        if self.objective.startswith("rank:"):
            data.set_group(sizes)
        self.booster = xgb.train(params, data, num_boost_round=self.num_rounds)

    def predict(self, xs: np.ndarray) -> np.ndarray:
        import xgboost as xgb

        if self.booster is None:
            return np.zeros(len(xs))
        return self.booster.predict(xgb.DMatrix(xs))

    def save(self, path: str) -> None:
        """The model as JSON (XGBoost's own format; no pickle)."""
        self.booster.save_model(path)


class XGBTuner(Tuner):
    """Model-guided search: XGBoost ranking + simulated annealing + epsilon-greedy batches."""

    name = "xgb"

    def __init__(self, task, seed: int = 0, objective: str = "rank:pairwise", min_train: int = 8,
                 epsilon: float = 0.1, sa_chains: int = 24, sa_steps: int = 12, sa_temp: tuple = (1.0, 0.0)):
        super().__init__(task, seed)
        self.model = CostModel(objective, seed=seed)
        self.min_train = min_train
        self.epsilon = epsilon
        self.sa_chains = sa_chains
        self.sa_steps = sa_steps
        self.sa_temp = sa_temp
        self._features: dict = {}  # config index -> feature vector at this task's bucket
        self.xs: list = []  # features of every measurement (this bucket and loaded history)
        self.ys: list = []  # their throughputs (FLOP/s; 0 for errors)
        self.groups: list = []  # their (workload, bucket): rankings compare configs of one group
        self.own: list = []  # (throughput, config index) measured in this task
        self._trained_on = 0

    @property
    def _group(self) -> str:
        return _group(self.task)

    def _group_ids(self):
        """Group ids for ``CostModel.fit``, or None when every row is this task's."""
        ids = {g: i for i, g in enumerate(dict.fromkeys(self.groups))}
        return None if len(ids) <= 1 or len(self.groups) != len(self.ys) else [ids[g] for g in self.groups]

    def features(self, cfg) -> np.ndarray:
        f = self._features.get(cfg.index)
        if f is None:
            f = extract(self.task, cfg)
            self._features[cfg.index] = f
        return f

    def load_history(self, other_task, configs: list, costs: list, features: list | None = None) -> None:
        """Measurements of another bucket or another workload of the template: they train the model
        too (``features``: their vectors when already extracted)."""
        flops = max(other_task.flops(), 1)
        group = _group(other_task)
        for i, (cfg, cost) in enumerate(zip(configs, costs)):
            self.xs.append(extract(other_task, cfg) if features is None else features[i])
            self.ys.append(flops / cost if cost else 0.0)
            self.groups.append(group)

    def update(self, configs: list, costs: list) -> None:
        super().update(configs, costs)
        flops = max(self.task.flops(), 1)
        for cfg, cost in zip(configs, costs):
            y = flops / cost if cost else 0.0
            self.xs.append(self.features(cfg))
            self.ys.append(y)
            self.groups.append(self._group)
            self.own.append((y, cfg.index))

    def _own_successes(self) -> int:
        return sum(1 for y, _ in self.own if y > 0)

    def next_batch(self, size: int) -> list:
        if len(self.ys) < self.min_train or self._own_successes() + (len(self.ys) - len(self.own)) < 2:
            return super().next_batch(size)
        if len(self.ys) != self._trained_on:
            self.model.fit(np.stack(self.xs), np.array(self.ys, dtype=np.float64), self._group_ids())
            self._trained_on = len(self.ys)
        ranked = self._anneal(max(size * 4, 16))
        n_random = max(0, int(round(size * self.epsilon))) if size > 1 else 0
        out, chosen = [], set()
        for _, idx in ranked:
            if len(out) >= size - n_random:
                break
            if idx not in self.measured and idx not in chosen:
                chosen.add(idx)
                out.append(self.space.get(idx))
        for cfg in super().next_batch(size * 2):
            if len(out) >= size:
                break
            if cfg.index not in chosen:
                chosen.add(cfg.index)
                out.append(cfg)
        return out

    def _score(self, cfgs: list) -> np.ndarray:
        return self.model.predict(np.stack([self.features(c) for c in cfgs]))

    def _anneal(self, keep: int) -> list:
        """Top ``keep`` (score, index) pairs among unmeasured configs visited by annealing."""
        space = self.space
        best_measured = [self.space.get(i) for i in self._top_measured(self.sa_chains // 2)]
        points = best_measured + [space.random(self.rng) for _ in range(self.sa_chains - len(best_measured))]
        scores = self._score(points)
        heap: list = []
        seen: set = set()

        def offer(score, cfg):
            if cfg.index in self.measured or cfg.index in seen:
                return
            seen.add(cfg.index)
            if len(heap) < keep:
                heapq.heappush(heap, (score, cfg.index))
            elif score > heap[0][0]:
                heapq.heapreplace(heap, (score, cfg.index))

        for s, p in zip(scores, points):
            offer(float(s), p)
        t0, t1 = self.sa_temp
        for step in range(self.sa_steps):
            temp = t0 + (t1 - t0) * step / max(self.sa_steps - 1, 1)
            proposals = [self._mutate(p) for p in points]
            new_scores = self._score(proposals)
            for k, (p, s_new) in enumerate(zip(proposals, new_scores)):
                offer(float(s_new), p)
                delta = float(s_new) - float(scores[k])
                if delta >= 0 or (temp > 0 and self.rng.random() < math.exp(delta / temp)):
                    points[k], scores[k] = p, s_new
        return sorted(heap, reverse=True)

    def _mutate(self, cfg):
        """A random change of one knob."""
        knobs = list(self.space.knobs.values())
        knob = knobs[self.rng.randrange(len(knobs))]
        values = dict(cfg.values)
        values[knob.name] = knob.values[self.rng.randrange(len(knob))]
        return self.space.get(self.space.index_of(values))

    def _top_measured(self, k: int) -> list:
        return [idx for y, idx in sorted(self.own, reverse=True)[:k] if y > 0]


def _group(task) -> str:
    return f"{task.workload_key.hash}/{task.bucket}"
