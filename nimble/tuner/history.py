"""What the records database already knows about a task, taught to its cost model before tuning.

Two sources, both of this host: the task's own workload measured in other buckets
(``learn_other_buckets``) and other workloads of the same template (``learn_same_template``:
dense 768x768 teaches dense 768x3072). The cost model's features describe the lowered kernel
(loop extents, bytes per buffer, the bucket's dims), so a measurement of another shape says
what kind of loop nest runs fast on this CPU. Feature vectors are cached per process: tuning a
model's tasks reads the same history many times.
"""
from __future__ import annotations

import logging
from collections import OrderedDict

from ..errors import NimbleError
from ..schedules.registry import Signature
from .features import extract
from .task import Task

log = logging.getLogger(__name__)

MAX_OTHER_WORKLOADS = 4  # other workloads of the template taught per task, the most similar first
PER_WORKLOAD = 96  # their records taught per workload, spread over the cost range
_CACHE_SIZE = 20000
_features: OrderedDict = OrderedDict()  # (workload hash, bucket, space size, config index) -> feature vector


def cached_features(task: Task, config):
    """``extract(task, config)``, cached by workload, bucket and config (an index numbers a config in a space of
    its size: the gemm space has more tile heights on AVX-512)."""
    key = (task.workload_key.hash, str(task.bucket), len(config.space), config.index)
    f = _features.get(key)
    if f is None:
        f = extract(task, config)
        _features[key] = f
        if len(_features) > _CACHE_SIZE:
            _features.popitem(last=False)
    else:
        _features.move_to_end(key)
    return f


def _teach(load, other: Task, records) -> int:
    """Load ``records`` of ``other`` whose config is the one at its index in ``other``'s space."""
    space = other.space
    configs, costs = [], []
    for r in records:
        config = space.recorded(r.config_index, dict(r.config))
        if config is None:
            continue  # measured with another version of the template's space
        configs.append(config)
        costs.append(r.mean_cost)
    if configs:
        load(other, configs, costs, [cached_features(other, c) for c in configs])
    return len(configs)


def _spread(records: list, limit: int) -> list:
    """Up to ``limit`` records spread evenly over their cost order (fast and slow: a ranking needs both)."""
    records = sorted(records, key=lambda r: r.mean_cost)
    if len(records) <= limit:
        return records
    step = len(records) / limit
    return [records[int(i * step)] for i in range(limit)]


def learn_other_buckets(task: Task, db, host, tuner, limit: int = 400) -> int:
    """Teach ``tuner`` (its ``load_history``) the host's records of ``task``'s workload in other
    buckets; returns how many."""
    load = getattr(tuner, "load_history", None)
    if load is None:
        return 0
    by_bucket: dict = {}
    for record in db.records(workload=task.workload_key, target=task.target, host=host):
        if str(record.bucket) == str(task.bucket) or record.error_kind is not None:
            continue
        by_bucket.setdefault(str(record.bucket), []).append(record)
    taught = 0
    for bucket, records in by_bucket.items():
        try:
            other = Task(task.template, task.signature, task.target, bucket)
        except NimbleError:
            continue
        taught += _teach(load, other, _spread(records, limit))
    return taught


def _similarity(a: Signature, b: Signature) -> tuple:
    """Sort key, most similar first: same attrs, same arg ranks, same symbolic-dim pattern."""
    ranks = [len(s) for s, _ in a.args] == [len(s) for s, _ in b.args]
    pattern = [[isinstance(d, str) for d in s] for s, _ in a.args] == [[isinstance(d, str) for d in s] for s, _ in b.args]
    return (a.attrs != b.attrs, not ranks, not pattern)


def learn_same_template(task: Task, db, host, tuner, max_workloads: int = MAX_OTHER_WORKLOADS,
                        per_workload: int = PER_WORKLOAD) -> int:
    """Teach ``tuner`` the host's records of up to ``max_workloads`` other workloads of ``task``'s
    template and target (the most similar signatures first, then the most measured); returns how many."""
    load = getattr(tuner, "load_history", None)
    if load is None:
        return 0
    mine = task.workload_key
    others = []
    for key in db.workloads():
        if key.template != task.template or key.target != task.target or key == mine:
            continue
        try:
            sig = Signature.make([(a.shape, a.dtype) for a in key.args], **dict(key.attrs))
        except (NimbleError, TypeError, ValueError):
            continue
        records = [r for r in db.records(workload=key, target=task.target, host=host)
                   if r.error_kind is None and r.mean_cost]
        if records:
            others.append((_similarity(task.signature, sig), -len(records), key.hash, sig, records))
    taught = 0
    for *_, sig, records in sorted(others, key=lambda o: o[:3])[:max_workloads]:
        by_bucket: dict = {}
        for r in _spread(records, per_workload):
            by_bucket.setdefault(str(r.bucket), []).append(r)
        for bucket, rs in by_bucket.items():
            try:
                other = Task(task.template, sig, task.target, bucket)
                taught += _teach(load, other, rs)
            except NimbleError as e:  # a signature this version's template refuses
                log.debug("%s: history of %s skipped: %s", task, sig, e)
    if taught:
        log.info("%s: cost model starts from %d records of %d other workloads of %s", task, taught,
                 min(len(others), max_workloads), task.template)
    return taught
