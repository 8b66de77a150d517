"""The tuning loop: measure configs proposed by a tuner and commit each batch to the records database.

    db = Database("tuning_logs/llvm.db")
    task = Task("dense", dense_signature("n", 768, 3072), "llvm", "n=33..64")
    [summary] = tune([task], db, n_trials=200, tuner="xgb")
    summary.best_cost, summary.speedup          # seconds, and the speedup over the fallback

Per task: with ``resume`` the records this host already has for the task's workload, bucket
and target are read back (their configs are never measured again and the tuner learns from
their costs), and ``n_trials`` counts them; the fallback config is measured first, so the
speedup over it is known; on a new host (no record of the task here) the nearest ISA-compatible
hosts' records train the cost model and their best configs are measured beside the fallback
(``_warm_start``; a host whose records used instructions this one lacks is not used); with the
``xgb`` tuner, half of each later batch are one-knob neighbours of the best config so far;
then batches from the tuner until ``n_trials`` configs are measured,
the space is exhausted, or ``early_stopping`` trials in a row bring no improvement. Every
record is committed as soon as its config is measured, so an interrupted tuning loses at most
the configs in flight.

``runner="local"`` measures in processes on this machine (``Measurer``); ``runner="ray"`` builds
and measures on a Ray cluster (``ray_runner.RayMeasurer``; ``address`` as for ``ray.init``:
``"auto"``, ``"ray://head:10001"``, or None to join ``RAY_ADDRESS`` or start a local cluster).
Records carry the host fingerprint the measurer measures on and ``user`` (``user@machine``).
"""
from __future__ import annotations

import logging
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import TuningError
from .buckets import FALLBACK_RANGES
from .db import Database
from .history import learn_other_buckets, learn_same_template
from .measure import MeasureOptions, Measurer, MeasureResult
from .nearest_host import rank_hosts
from .records import CONFIRM_TUNER, TuningRecord, current_user
from .search import Tuner, make_tuner
from .task import Task
from .workload import WorkloadKey

log = logging.getLogger(__name__)

OWN_ENOUGH = 64  # records of its own after which a task no longer learns from other workloads
CONFIRM_ROUNDS = 3  # pairs (best, fallback) measured alternately at the end of a task's tuning


@dataclass
class TuneSummary:
    """What tuning one task found, counting records from earlier runs when resumed."""

    task: str
    workload: WorkloadKey
    bucket: str
    target: str
    flops: float
    trials: int = 0  # configs measured in all (this run and, with resume, earlier ones)
    new_trials: int = 0  # measured by this run
    errors: int = 0  # of ``trials``, how many failed
    error_kinds: Counter = field(default_factory=Counter)
    best_cost: float | None = None
    best_config: dict[str, Any] | None = None
    best_index: int | None = None
    fallback_cost: float | None = None
    wall_s: float = 0.0
    warm_start: str = ""  # the nearest hosts whose records started the cost model (a new host), if any
    history: int = 0  # records of the template's other workloads the cost model started from
    confirmed: float | None = None  # fallback / best re-measured side by side (``TaskTuner.confirm``), median

    def _gflops(self, cost: float | None) -> float | None:
        return self.flops / cost / 1e9 if cost and self.flops else None

    @property
    def best_gflops(self) -> float | None:
        return self._gflops(self.best_cost)

    @property
    def fallback_gflops(self) -> float | None:
        return self._gflops(self.fallback_cost)

    @property
    def speedup(self) -> float | None:
        """Fallback cost over best cost: as re-measured side by side when confirmed, else as first measured."""
        if self.confirmed is not None:
            return self.confirmed
        return self.fallback_cost / self.best_cost if self.fallback_cost and self.best_cost else None

    def add(self, index: int, config: dict, cost: float | None, error_kind: str | None, fallback: bool) -> bool:
        """Count one measured config; True when it is the new best."""
        self.trials += 1
        if cost is None:
            self.errors += 1
            self.error_kinds[error_kind or "unknown"] += 1
        if fallback and cost is not None:
            self.fallback_cost = cost
        if cost is not None and (self.best_cost is None or cost < self.best_cost):
            self.best_cost, self.best_config, self.best_index = cost, dict(config), index
            return True
        return False


RUNNERS = ("local", "ray")


def make_measurer(runner: str = "local", options: MeasureOptions | None = None, address: str | None = None):
    """A measurer of ``runner`` kind: ``"local"`` (processes here) or ``"ray"`` (a Ray cluster at ``address``)."""
    if runner == "local":
        if address is not None:
            raise TuningError(f"tune: address: the local runner takes no cluster address, got {address!r}")
        return Measurer(options)
    if runner == "ray":
        from .ray_runner import RayMeasurer

        return RayMeasurer(options, address=address)
    raise TuningError(f"tune: runner: expected one of {list(RUNNERS)}, got {runner!r}")


def tune(tasks: Task | Iterable[Task], db: Database, n_trials: int, tuner: str = "xgb", batch_size: int = 8,
         early_stopping: int | None = None, options: MeasureOptions | None = None, seed: int = 0,
         resume: bool = True, progress: bool = True, measurer=None, runner: str = "local",
         address: str | None = None, confirm: int | None = None) -> list[TuneSummary]:
    """Tune each task for up to ``n_trials`` configs; returns one ``TuneSummary`` per task, in order.

    ``tuner``: ``"xgb"``, ``"random"`` or ``"grid"``; ``measurer``: an open ``Measurer`` or
    ``RayMeasurer`` to reuse (else one of ``runner``/``address`` is made from ``options`` and
    closed at the end); ``confirm``: pairs of (best, fallback) re-measured side by side at the end of
    each task (``TaskTuner.confirm``; None: ``CONFIRM_ROUNDS`` with ``xgb``, 0 with the baselines).
    """
    tasks = [tasks] if isinstance(tasks, Task) else list(tasks)
    confirm = confirm_rounds(tuner, confirm)
    for name, value, least in (("n_trials", n_trials, 0), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise TuningError(f"tune: {name}: expected an int >= {least}, got {value!r}")
    if early_stopping is not None and (not isinstance(early_stopping, int) or early_stopping < 1):
        raise TuningError(f"tune: early_stopping: expected None or an int >= 1, got {early_stopping!r}")
    own = measurer is None
    measurer = measurer or make_measurer(runner, options, address)
    try:
        return [_tune_task(task, db, n_trials, tuner, batch_size, early_stopping, measurer, seed, resume, progress,
                           confirm) for task in tasks]
    finally:
        if own:
            measurer.close()


def _tune_task(task: Task, db: Database, n_trials: int, tuner_name: str, batch_size: int,
               early_stopping: int | None, measurer: Measurer, seed: int, resume: bool, progress: bool,
               confirm: int) -> TuneSummary:
    state = TaskTuner(task, db, measurer, tuner_name, seed, resume)
    bar = _progress_bar(task, n_trials, state.summary, progress)
    try:
        while state.summary.trials < n_trials and not state.done:
            measured = state.step(min(batch_size, n_trials - state.summary.trials))
            if not measured:
                break
            _show(bar, state.summary, measured)
            if early_stopping is not None and state.stalled(early_stopping):
                log.info("%s: no improvement in %d trials; stopping early", task, early_stopping)
                break
        if state.summary.new_trials:
            state.confirm(confirm)
            _show(bar, state.summary, 0)
    finally:
        bar.close()
    return state.summary


def confirm_rounds(tuner: str, confirm: int | None) -> int:
    """The pairs ``TaskTuner.confirm`` measures: ``confirm``, or by default ``CONFIRM_ROUNDS`` with ``xgb``
    and 0 with the baselines (random, grid stay pure: each config measured once)."""
    if confirm is None:
        return CONFIRM_ROUNDS if tuner == "xgb" else 0
    if isinstance(confirm, bool) or not isinstance(confirm, int) or confirm < 0:
        raise TuningError(f"tune: confirm: expected None or an int >= 0, got {confirm!r}")
    return confirm


def fallback_candidates(task: Task) -> list:
    """The configs a compiled model runs in ``task``'s bucket without a record, measured first so
    the best record of the bucket is never worse than them: the fallback config of the dispatch
    table's fallback range holding the representative (``buckets.FALLBACK_RANGES``) first,
    then the task's own fallback at its representative, then that of every other fallback range
    the bucket overlaps (a bucket 1..16 runs small register tiles at n <= 4 without a record)."""
    dims = task.signature.symbolic_dims
    if not dims:
        return [task.fallback()]
    dim, tmpl, sig, space = dims[0], task.template_obj, task.signature, task.space
    bucket, rep = task.bucket[dim], task.dims[dim]
    holding, overlapping = [], []
    for lo, hi, hint in FALLBACK_RANGES:
        if lo <= bucket.hi and bucket.lo <= hi:
            config = tmpl.fallback(sig, space, {**task.dims, dim: hint})
            (holding if lo <= rep <= hi else overlapping).append(config)
    out: dict = {}
    for config in holding + [task.fallback()] + overlapping:
        out.setdefault(config.index, config)
    return list(out.values())


class TaskTuner:
    """One task's tuning, advanced one batch at a time: ``step(n)`` measures up to ``n`` configs.

    On creation the host's records of the task are read back (``resume``), the cost model learns
    from the workload's other buckets, from the template's other workloads (``history``) and, on a
    new host, from the nearest hosts' records. The
    first batches hold the ``fallback_candidates`` configs (and the nearest hosts' best configs);
    later batches come from the tuner (with ``xgb``: half of them neighbours of the best so far). ``summary.fallback_cost`` is the cost of the first
    candidate, the config the model would run at the representative without a record.
    """

    def __init__(self, task: Task, db: Database, measurer, tuner_name: str = "xgb", seed: int = 0,
                 resume: bool = True) -> None:
        self._start = time.perf_counter()
        self.task, self.db, self.measurer, self.tuner_name = task, db, measurer, tuner_name
        self.host = measurer.host(task.target)
        self.user = current_user()
        self.summary = TuneSummary(str(task), task.workload_key, str(task.bucket), task.target, float(task.flops()))
        self.tuner = make_tuner(tuner_name, task, seed)
        self.fallbacks = fallback_candidates(task)
        self.measured = (_resume(task, db, self.host, self.tuner, self.summary, self.fallbacks[0].index,
                                 cache_mode(measurer))
                         if resume else set())
        learn_other_buckets(task, db, self.host, self.tuner)
        if self.summary.trials < OWN_ENOUGH:  # few measurements of its own: start from the template's other workloads
            self.summary.history = learn_same_template(task, db, self.host, self.tuner)
        self.seeds = [] if self.summary.trials else _warm_start(task, db, self.host, self.tuner, self.summary)
        self.best_at = self.summary.trials
        self.exhausted = False
        self.local = tuner_name == "xgb"  # the baselines (random, grid) stay pure
        self.summary.wall_s = time.perf_counter() - self._start

    @property
    def done(self) -> bool:
        """The space is measured through, or the tuner proposed nothing new."""
        return self.exhausted or len(self.measured) >= len(self.task.space)

    def stalled(self, trials: int) -> bool:
        """``trials`` configs in a row brought no improvement."""
        return self.summary.trials - self.best_at >= trials

    def _next_configs(self, want: int) -> list:
        tuner, measured = self.tuner, self.measured
        batch = [c for c in self.fallbacks if c.index not in measured][:want]
        tuner.mark_measured([c.index for c in batch])
        taken = {c.index for c in batch}
        first = [c for c in self.seeds if c.index not in measured and c.index not in taken][:max(0, want - len(batch))]
        self.seeds = []  # the nearest hosts' best configs go into the first batch only
        batch += first
        tuner.mark_measured([c.index for c in first])
        taken |= {c.index for c in first}
        if self.local and len(batch) < want:  # half of the rest: one-knob neighbours of the best so far
            near = self._neighbours(taken)[:(want - len(batch) + 1) // 2]
            batch += near
            tuner.mark_measured([c.index for c in near])
            taken |= {c.index for c in near}
        if len(batch) < want and tuner.has_next():
            batch += [c for c in tuner.next_batch(want - len(batch)) if c.index not in measured and c.index not in taken]
        return list({c.index: c for c in batch}.values())

    def _neighbours(self, taken: set) -> list:
        """Unmeasured configs one knob position away from the best measured config, in a seeded
        random order: with a few trials a task, steps from a good config beat random samples of a
        space where most configs spill registers."""
        index = self.summary.best_index
        if index is None:
            return []
        space = self.task.space
        out = [c for c in space.neighbours(space.get(index)) if c.index not in self.measured and c.index not in taken]
        self.tuner.rng.shuffle(out)
        return out

    def step(self, want: int) -> int:
        """Measure one batch of up to ``want`` configs (fallback candidates first), committing each record as it is measured; returns how many were measured (0: done)."""
        t0 = time.perf_counter()
        task, summary = self.task, self.summary
        if want < 1:
            raise TuningError(f"TaskTuner.step: want: expected an int >= 1, got {want!r}")
        batch = self._next_configs(want)
        if not batch:
            log.info("%s: the tuner proposed nothing new; stopping after %d trials", task, summary.trials)
            self.exhausted = True
            return 0

        def commit(result: MeasureResult) -> None:  # as each config is measured
            self.db.add_records([_record(task, self.host, self.tuner_name, result, summary.flops, self.user,
                                         cache_mode(self.measurer))])

        results = self.measurer.measure(task, batch, on_result=commit)
        self.measured.update(c.index for c in batch)
        self.tuner.update(batch, [r.mean_cost for r in results])
        primary = self.fallbacks[0].index
        for config, result in zip(batch, results):
            if summary.add(config.index, config.to_json(), result.mean_cost, result.error_kind, config.index == primary):
                self.best_at = summary.trials
            if not result.ok:
                log.info("%s: config #%d: %s: %s", task, config.index, result.error_kind,
                         result.error_message.splitlines()[0] if result.error_message else "")
        summary.new_trials += len(batch)
        summary.wall_s += time.perf_counter() - t0
        log.info("%s: committed %d records (%d trials)", task, len(results), summary.trials)
        return len(batch)


    def confirm(self, rounds: int = CONFIRM_ROUNDS) -> float | None:
        """Re-measure the best config beside the fallback: ``rounds`` pairs, alternating, in one batch,
        committed as records of tuner ``"confirm"``; the compiled model's dispatch picks among a bucket's
        confirmed configs by the median of those records (``dispatch.build``), so a best that won by a
        load spike in its own batch loses here. Updates the summary (best, fallback, ``confirmed``) and
        returns fallback / best by the medians, or None when there is nothing to confirm (the best is the
        fallback, or either failed)."""
        summary, primary = self.summary, self.fallbacks[0]
        if rounds < 1 or summary.best_index is None or summary.best_index == primary.index or not summary.fallback_cost:
            return None
        t0 = time.perf_counter()
        best = self.task.space.get(summary.best_index)

        def commit(result: MeasureResult) -> None:
            self.db.add_records([_record(self.task, self.host, CONFIRM_TUNER, result, summary.flops, self.user,
                                         cache_mode(self.measurer))])

        results = self.measurer.measure(self.task, [best, primary] * rounds, on_result=commit)
        pairs = [(b.mean_cost, f.mean_cost) for b, f in zip(results[::2], results[1::2]) if b.ok and f.ok]
        summary.wall_s += time.perf_counter() - t0
        if not pairs:
            return None
        best_cost, fallback_cost = statistics.median(b for b, _ in pairs), statistics.median(f for _, f in pairs)
        summary.fallback_cost = fallback_cost
        if best_cost < fallback_cost:
            summary.best_cost = best_cost
        else:
            log.info("%s: config #%d re-measured beside the fallback is no faster (%.3gx); the fallback stays",
                     self.task, best.index, fallback_cost / best_cost)
            summary.best_cost, summary.best_config, summary.best_index = fallback_cost, primary.to_json(), primary.index
        summary.confirmed = fallback_cost / summary.best_cost
        return summary.confirmed


def recorded_summary(task: Task, db: Database, host) -> TuneSummary:
    """What ``host``'s records already say about ``task`` (trials, best, fallback), measuring nothing."""
    summary = TuneSummary(str(task), task.workload_key, str(task.bucket), task.target, float(task.flops()))
    primary = fallback_candidates(task)[0].index
    seen: set = set()
    for record in db.records(workload=task.workload_key, bucket=task.bucket, target=task.target, host=host):
        if record.config_index not in seen:
            seen.add(record.config_index)
            summary.add(record.config_index, dict(record.config), record.mean_cost, record.error_kind,
                        record.config_index == primary)
    return summary


def _warm_start(task: Task, db: Database, host, tuner: Tuner, summary: TuneSummary, seeds: int = 3,
                limit: int = 400) -> list:
    """A new host (no record of this task): the records of the two nearest ISA-compatible hosts that
    have this workload (``nearest_host.rank_hosts``; AVX-512 configs are no start on an AVX2 host) train the cost model, every bucket of theirs (features hold the
    shape), and their ``seeds`` best configs of this bucket (else of any bucket, by throughput) are
    measured in the first batch beside the fallback. Returns those configs."""
    by_host: dict = {}
    for record in db.iter_records(workload=task.workload_key, target=task.target, include_errors=False):
        if record.host != host:
            by_host.setdefault(record.host, []).append(record)
        elif str(record.bucket) == str(task.bucket):
            return []  # this host has measured the task already (a run without resume)
    ranked = [m for m in rank_hosts(host, by_host) if m.compatible][:2]  # never configs tuned for missing ISAs
    if not ranked:
        return []
    load = getattr(tuner, "load_history", None)
    picked, loaded = [], 0
    candidates = []
    for m in ranked:
        per_bucket: dict = {}
        for record in by_host[m.host]:
            config = task.space.recorded(record.config_index, dict(record.config))
            if config is None:
                continue  # another version of the template's space
            per_bucket.setdefault(str(record.bucket), []).append((record, config))
            throughput = (record.flops or 1.0) / record.mean_cost
            candidates.append((str(record.bucket) != str(task.bucket), not m.trusted, -throughput, config.index, config))
        for bucket, pairs in per_bucket.items():
            try:
                other = task if bucket == str(task.bucket) else Task(task.template, task.signature, task.target, bucket)
            except TuningError:
                continue
            pairs = sorted(pairs, key=lambda p: p[0].mean_cost)[:limit]
            if load is not None:
                load(other, [c for _, c in pairs], [r.mean_cost for r, _ in pairs])
                loaded += len(pairs)
    fallbacks = {c.index for c in fallback_candidates(task)}  # measured anyway
    for *_, index, config in sorted(candidates, key=lambda c: c[:4]):
        if len(picked) < seeds and index not in fallbacks and index not in {c.index for c in picked}:
            picked.append(config)
    summary.warm_start = "; ".join(m.describe() for m in ranked)
    log.info("%s: no record of this host; warm start from %d records of %s, measuring their %d best configs first",
             task, loaded, summary.warm_start, len(picked))
    return picked


def _resume(task: Task, db: Database, host, tuner: Tuner, summary: TuneSummary, fallback_index: int,
            cache: str | None = None) -> set[int]:
    """Read back this host's records of the task measured the way this run measures (``cache``: a cold run
    resumes cold records only, a warm one the others): count them, teach the tuner; returns their indices."""
    configs, costs, measured = [], [], set()
    for record in db.records(workload=task.workload_key, bucket=task.bucket, target=task.target, host=host):
        if cache is not None and _measured_cold(record) != (cache == "cold"):
            continue
        index = record.config_index
        if index in measured:
            continue
        config = task.space.recorded(index, dict(record.config))
        if config is None:
            log.warning("%s: record of config #%d does not match the template's config space; ignored", task, index)
            continue
        measured.add(index)
        configs.append(config)
        costs.append(record.mean_cost)
        summary.add(index, config.to_json(), record.mean_cost, record.error_kind, index == fallback_index)
    if configs:
        tuner.mark_measured(measured)
        tuner.update(configs, costs)
        log.info("%s: resumed with %d measured configs", task, len(configs))
    return measured


def _record(task: Task, host, tuner_name: str, result: MeasureResult, flops: float, user: str,
            cache: str | None) -> TuningRecord:
    return TuningRecord(
        workload=task.workload_key, bucket=str(task.bucket), target=task.target, host=host,
        config=result.config.to_json(), config_index=result.config.index, costs=result.costs,
        error_kind=result.error_kind, error_message=result.error_message, tuner=tuner_name,
        flops=flops or None, user=user, cache=cache,
    )


def _measured_cold(record) -> bool:
    return record.cache == "cold"


def cache_mode(measurer) -> str | None:
    """How ``measurer`` measures: ``"cold"`` or ``"warm"`` (its ``MeasureOptions.cold_cache``), None when unknown."""
    options = getattr(measurer, "options", None)
    cold = getattr(options, "cold_cache", None)
    return None if cold is None else ("cold" if cold else "warm")


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(task: Task, n_trials: int, summary: TuneSummary, progress: bool):
    if not progress:
        return _NoBar()
    from tqdm import tqdm

    bar = tqdm(total=n_trials, initial=min(summary.trials, n_trials), desc=f"{task.template} {task.bucket}",
               unit="trial", file=sys.stderr, dynamic_ncols=True)
    _show(bar, summary, 0)
    return bar


def _show(bar, summary: TuneSummary, new: int) -> None:
    best = summary.best_gflops
    text = (f"best {best:.2f} GFLOP/s" if best is not None else
            f"best {summary.best_cost * 1e3:.4g} ms" if summary.best_cost is not None else "best -")
    bar.set_postfix_str(f"{text}, {summary.errors} errors", refresh=False)
    bar.update(new)
