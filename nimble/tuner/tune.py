"""The tuning loop: measure configs proposed by a tuner and commit each batch to the records database.

    db = Database("tuning_logs/llvm.db")
    task = Task("dense", dense_signature("n", 768, 3072), "llvm", "n=33..64")
    [summary] = tune([task], db, n_trials=200, tuner="xgb")
    summary.best_cost, summary.speedup          # seconds, and the speedup over the fallback

Per task: with ``resume`` the records this host already has for the task's workload, bucket
and target are read back (their configs are never measured again and the tuner learns from
their costs), and ``n_trials`` counts them; the fallback config is measured first, so the
speedup over it is known; on a new host (no record of the task here) the nearest hosts' records
train the cost model and their best configs are measured beside the fallback (``_warm_start``);
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
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import TuningError
from .db import Database
from .nearest_host import rank_hosts
from .measure import MeasureOptions, MeasureResult, Measurer
from .records import TuningRecord, current_user
from .search import Tuner, make_tuner
from .task import Task
from .workload import WorkloadKey

log = logging.getLogger(__name__)


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
        """Fallback cost over best cost, when both are known."""
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
         address: str | None = None) -> list[TuneSummary]:
    """Tune each task for up to ``n_trials`` configs; returns one ``TuneSummary`` per task, in order.

    ``tuner``: ``"xgb"``, ``"random"`` or ``"grid"``; ``measurer``: an open ``Measurer`` or
    ``RayMeasurer`` to reuse (else one of ``runner``/``address`` is made from ``options`` and
    closed at the end).
    """
    tasks = [tasks] if isinstance(tasks, Task) else list(tasks)
    for name, value, least in (("n_trials", n_trials, 0), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise TuningError(f"tune: {name}: expected an int >= {least}, got {value!r}")
    if early_stopping is not None and (not isinstance(early_stopping, int) or early_stopping < 1):
        raise TuningError(f"tune: early_stopping: expected None or an int >= 1, got {early_stopping!r}")
    own = measurer is None
    measurer = measurer or make_measurer(runner, options, address)
    try:
        return [_tune_task(task, db, n_trials, tuner, batch_size, early_stopping, measurer, seed, resume, progress)
                for task in tasks]
    finally:
        if own:
            measurer.close()


def _tune_task(task: Task, db: Database, n_trials: int, tuner_name: str, batch_size: int,
               early_stopping: int | None, measurer: Measurer, seed: int, resume: bool, progress: bool) -> TuneSummary:
    start = time.perf_counter()
    host = measurer.host(task.target)
    user = current_user()
    key, bucket = task.workload_key, str(task.bucket)
    summary = TuneSummary(str(task), key, bucket, task.target, float(task.flops()))
    tuner = make_tuner(tuner_name, task, seed)
    fallback = task.fallback()
    measured = _resume(task, db, host, tuner, summary, fallback.index) if resume else set()
    _learn_other_buckets(task, db, host, tuner)
    seeds = [] if summary.trials else _warm_start(task, db, host, tuner, summary)
    best_at = summary.trials
    bar = _progress_bar(task, n_trials, summary, progress)
    try:
        while summary.trials < n_trials and len(measured) < len(task.space):
            want = min(batch_size, n_trials - summary.trials)
            batch = []
            if fallback.index not in measured:
                batch.append(fallback)
                tuner.mark_measured([fallback.index])
            first = [c for c in seeds if c.index not in measured and c.index != fallback.index][:want - len(batch)]
            seeds = []  # the nearest hosts' best configs go into the first batch only
            batch += first
            tuner.mark_measured([c.index for c in first])
            if len(batch) < want and tuner.has_next():
                batch += [c for c in tuner.next_batch(want - len(batch))
                          if c.index not in measured and c.index != fallback.index]
            batch = list({c.index: c for c in batch}.values())[:want]
            if not batch:
                log.info("%s: the tuner proposed nothing new; stopping after %d trials", task, summary.trials)
                break

            def commit(result: MeasureResult) -> None:  # as each config is measured
                db.add_records([_record(task, host, tuner_name, result, summary.flops, user)])

            results = measurer.measure(task, batch, on_result=commit)
            measured.update(c.index for c in batch)
            costs = [r.mean_cost for r in results]
            tuner.update(batch, costs)
            for config, result in zip(batch, results):
                if summary.add(config.index, config.to_json(), result.mean_cost, result.error_kind,
                               config.index == fallback.index):
                    best_at = summary.trials
                if not result.ok:
                    log.info("%s: config #%d: %s: %s", task, config.index, result.error_kind,
                             result.error_message.splitlines()[0] if result.error_message else "")
            summary.new_trials += len(batch)
            log.info("%s: committed %d records (%d trials)", task, len(results), summary.trials)
            _show(bar, summary, len(batch))
            if early_stopping is not None and summary.trials - best_at >= early_stopping:
                log.info("%s: no improvement in %d trials; stopping early", task, early_stopping)
                break
    finally:
        bar.close()
    summary.wall_s = time.perf_counter() - start
    return summary


def _learn_other_buckets(task: Task, db: Database, host, tuner: Tuner, limit: int = 400) -> None:
    """Records of the same workload in other buckets train a model that takes shape features
    (the xgb tuner's ``load_history``): one model learns across a task's buckets."""
    load = getattr(tuner, "load_history", None)
    if load is None:
        return
    by_bucket: dict = {}
    for record in db.records(workload=task.workload_key, target=task.target, host=host):
        if str(record.bucket) == str(task.bucket) or record.error_kind is not None:
            continue
        by_bucket.setdefault(str(record.bucket), []).append(record)
    for bucket, records in by_bucket.items():
        try:
            other = Task(task.template, task.signature, task.target, bucket)
        except TuningError:
            continue
        records = records[:limit]
        configs = [task.space.get(r.config_index) for r in records if r.config_index < len(task.space)]
        load(other, configs, [r.mean_cost for r in records][:len(configs)])


def _warm_start(task: Task, db: Database, host, tuner: Tuner, summary: TuneSummary, seeds: int = 3,
                limit: int = 400) -> list:
    """A new host (no record of this task): the records of the nearest hosts that have this workload
    (``nearest_host.rank_hosts``) train the cost model, every bucket of theirs (features hold the
    shape), and their ``seeds`` best configs of this bucket (else of any bucket, by throughput) are
    measured in the first batch beside the fallback. Returns those configs."""
    by_host: dict = {}
    for record in db.iter_records(workload=task.workload_key, target=task.target, include_errors=False):
        if record.host != host:
            by_host.setdefault(record.host, []).append(record)
        elif str(record.bucket) == str(task.bucket):
            return []  # this host has measured the task already (a run without resume)
    ranked = rank_hosts(host, by_host)[:2]
    if not ranked:
        return []
    load = getattr(tuner, "load_history", None)
    space_size, picked, loaded = len(task.space), [], 0
    candidates = []
    for m in ranked:
        per_bucket: dict = {}
        for record in by_host[m.host]:
            config = task.space.get(record.config_index) if record.config_index < space_size else None
            if config is None or config.to_json() != dict(record.config):
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
    fallback = task.fallback().index  # measured anyway
    for *_, index, config in sorted(candidates, key=lambda c: c[:4]):
        if len(picked) < seeds and index != fallback and index not in {c.index for c in picked}:
            picked.append(config)
    summary.warm_start = "; ".join(m.describe() for m in ranked)
    log.info("%s: no record of this host; warm start from %d records of %s, measuring their %d best configs first",
             task, loaded, summary.warm_start, len(picked))
    return picked


def _resume(task: Task, db: Database, host, tuner: Tuner, summary: TuneSummary, fallback_index: int) -> set[int]:
    """Read back this host's records of the task: count them, teach the tuner; returns their indices."""
    configs, costs, measured = [], [], set()
    space_size = len(task.space)
    for record in db.records(workload=task.workload_key, bucket=task.bucket, target=task.target, host=host):
        index = record.config_index
        if index in measured:
            continue
        config = task.space.get(index) if index < space_size else None
        if config is None or config.to_json() != dict(record.config):
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


def _record(task: Task, host, tuner_name: str, result: MeasureResult, flops: float, user: str) -> TuningRecord:
    return TuningRecord(
        workload=task.workload_key, bucket=str(task.bucket), target=task.target, host=host,
        config=result.config.to_json(), config_index=result.config.index, costs=result.costs,
        error_kind=result.error_kind, error_message=result.error_message, tuner=tuner_name,
        flops=flops or None, user=user,
    )


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
