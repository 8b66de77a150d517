"""How ``nimble-tune`` walks its tasks without a budget: one after another on one measurer, each
announced with a label that tells workloads apart (with ``--budget``: ``nimble.tuner.budget``)."""
from __future__ import annotations

import sys
from collections.abc import Sequence

from ..tuner.db import Database
from ..tuner.task import Task, task_label
from ..tuner.tune import TuneSummary, tune


def tune_each(tasks: Sequence[Task], db: Database, n_trials: int, measurer, *, announce: bool = True,
              **kwargs) -> list[TuneSummary]:
    """``tune`` one task at a time on one measurer, announcing each (``[i/n] label``) on stderr."""
    summaries = []
    for i, task in enumerate(tasks, 1):
        if announce:
            print(f"[{i}/{len(tasks)}] {task_label(task)}", file=sys.stderr, flush=True)
        summaries += tune([task], db, n_trials, measurer=measurer, **kwargs)
    return summaries
