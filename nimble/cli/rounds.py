"""How ``nimble-tune`` walks its tasks: one after another on one measurer, each announced with a
label that tells workloads apart, or in rounds within a time budget (``--time-budget``)."""
from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from ..tuner.db import Database
from ..tuner.measure import MeasureOptions
from ..tuner.task import Task
from ..tuner.tune import TuneSummary, tune


def task_label(task: Task) -> str:
    """What tells one task from another in progress output: template, workload hash, shapes, bucket."""
    shapes = " ".join("(" + ",".join(str(d) for d in shape) + ")" for shape, _ in task.signature.args)
    return f"{task.template} #{task.workload_key.short_hash} {shapes} {task.bucket}"


def tune_each(tasks: Sequence[Task], db: Database, n_trials: int, measurer, *, announce: bool = True,
              **kwargs) -> list[TuneSummary]:
    """``tune`` one task at a time on one measurer, announcing each (``[i/n] label``) on stderr."""
    summaries = []
    for i, task in enumerate(tasks, 1):
        if announce:
            print(f"[{i}/{len(tasks)}] {task_label(task)}", file=sys.stderr, flush=True)
        summaries += tune([task], db, n_trials, measurer=measurer, **kwargs)
    return summaries


def tune_within(tasks: Sequence[Task], db: Database, n_trials: int, budget_s: float, options: MeasureOptions,
                step: int = 8, announce: bool = False, measurer=None, **kwargs) -> list[TuneSummary]:
    """Tune ``tasks`` in rounds of ``step`` trials each (largest FLOPs first) until every task has
    ``n_trials`` or about ``budget_s`` seconds have passed; one summary per task, in order.

    Every task gets its first round (fallback config included) whatever the budget, so each
    has a measured fallback and a best record; a round in progress is finished, not cut.
    """
    import contextlib

    from ..tuner.measure import Measurer

    deadline = time.perf_counter() + budget_s
    order = sorted(range(len(tasks)), key=lambda i: -float(tasks[i].flops()))
    latest: dict[int, TuneSummary] = {}
    with (contextlib.nullcontext(measurer) if measurer is not None else Measurer(options)) as measurer:
        for goal in range(step, n_trials + step, step):
            goal = min(goal, n_trials)
            for i in order:
                if latest and i in latest and time.perf_counter() > deadline:
                    continue
                if i in latest and latest[i].trials < goal - step:
                    continue  # the space ran out, or the tuner proposed nothing new
                if announce:
                    print(f"[{goal} trials] {task_label(tasks[i])}", file=sys.stderr, flush=True)
                latest[i] = tune([tasks[i]], db, goal, batch_size=step, measurer=measurer, resume=True,
                                 **kwargs)[0]
            if time.perf_counter() > deadline or goal >= n_trials:
                break
    return [latest[i] for i in range(len(tasks))]
