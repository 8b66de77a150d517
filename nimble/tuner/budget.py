"""Tuning a model within a time budget, spread over its tasks by their share of the model's time.

    summaries = tune_budget(extract_tasks(mod, "llvm", "n=1,2:4,5:16,17:64,65:128"), db, 60.0, measurer)

A task's share is its estimated part of the model's run time (``task_weights``: FLOPs x calls x
the lengths its bucket covers); the budget is handed out one measurement batch at a time (as
many configs as fit in what is left of the task's share, at least ``MIN_BATCH``), always to the task whose
time after that batch would be the smallest multiple of its share (weighted fair queuing), so a task with 4x the share gets about 4x the time, and a task whose share is
smaller than one batch gets none until the others have had theirs (its kernel then runs the
template's fallback, which the dispatch table uses wherever a bucket has no record). A batch is
started only before the deadline; the first one is small (``CALIBRATION_BATCH`` configs) and
times a config, and batches shrink near the deadline to the configs that fit, so the whole run
ends within the budget plus one small batch, usually one config. With ``xgb``, the last
``CONFIRM_SHARE`` of the budget re-measures each tuned task's best config beside its fallback
(``TaskTuner.confirm``), largest share first, so the model keeps only configs that win side by side.
Every record is committed as it is measured, so a second run resumes where the first stopped.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

from ..errors import TuningError
from .db import Database
from .task import Task, task_label
from .tune import TaskTuner, TuneSummary, confirm_rounds, recorded_summary

CALIBRATION_BATCH = 2  # configs in the run's first batch, which learns how long a config takes
MIN_BATCH = 2  # the smallest batch but near the deadline: two configs build in parallel on two builders
CONFIRM_SHARE = 0.1  # of the budget, kept for the side-by-side re-measures of each task's best


def task_weight(task: Task) -> float:
    """Estimated share of ``task`` in a model's run time, in FLOPs per model run over every value
    of its bucket: the FLOPs at the middle of each bucket dim, times the number of values the
    bucket holds (every value equally likely), times ``task.calls`` (kernel calls per model run)
    when the task carries it, else 1."""
    dims = {b.dim: (b.lo + b.hi) // 2 or 1 for b in task.bucket.buckets}
    width = 1
    for b in task.bucket.buckets:
        width *= b.hi - b.lo + 1
    try:
        flops = float(task.template_obj.flops(task.signature, dims))
    except (KeyError, TypeError, ValueError):
        flops = float(task.flops())
    calls = getattr(task, "calls", None) or 1
    return max(flops, 1.0) * width * float(calls)


def task_weights(tasks: Sequence[Task]) -> list[float]:
    """``task_weight`` of each task, normalised to sum to 1."""
    raw = [task_weight(t) for t in tasks]
    total = sum(raw)
    return [w / total for w in raw] if total > 0 else [1.0 / len(raw)] * len(raw)


class BudgetProgress:
    """An overall bar (seconds of the budget) and a bar per task (seconds of its share), on a
    terminal; elsewhere one line per batch. ``enabled=False`` shows nothing."""

    def __init__(self, tasks: Sequence[Task], shares: Sequence[float], budget_s: float, enabled: bool,
                 stream=None) -> None:
        self.tasks, self.shares, self.budget_s = list(tasks), list(shares), budget_s
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.bars = bool(enabled and getattr(self.stream, "isatty", lambda: False)())
        self._task_bars: dict[int, object] = {}
        self._overall = None
        if self.bars:
            from tqdm import tqdm

            self._tqdm = tqdm
            self._overall = tqdm(total=round(budget_s, 1), desc=f"all {len(tasks)} tasks", unit="s", position=0,
                                 file=self.stream, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s "
                                                              "{postfix}", dynamic_ncols=True)

    def batch_done(self, i: int, summary: TuneSummary, spent_s: float, elapsed_s: float, measured: int) -> None:
        if not self.enabled:
            return
        best = summary.best_gflops
        text = (f"{summary.trials} trials, best {best:.1f} GFLOP/s" if best is not None else
                f"{summary.trials} trials, best -")
        if summary.speedup is not None:
            text += f" ({summary.speedup:.2f}x fallback{', side by side' if summary.confirmed is not None else ''})"
        step = f"+{measured} ->" if measured else "best re-measured beside the fallback:"
        if not self.bars:
            print(f"[{elapsed_s:5.0f}/{self.budget_s:.0f} s] {task_label(self.tasks[i])}: {step} {text}; "
                  f"task {spent_s:.0f}/{self.shares[i]:.0f} s", file=self.stream, flush=True)
            return
        bar = self._task_bars.get(i)
        if bar is None:
            bar = self._tqdm(total=round(max(self.shares[i], 0.1), 1), desc=task_label(self.tasks[i]), unit="s",
                             position=len(self._task_bars) + 1, file=self.stream, dynamic_ncols=True,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s {postfix}")
            self._task_bars[i] = bar
        bar.n = round(min(spent_s, bar.total), 1)
        bar.set_postfix_str(text)
        self._overall.n = round(min(elapsed_s, self._overall.total), 1)
        self._overall.set_postfix_str(f"{len(self._task_bars)} tasks tuned so far")

    def close(self) -> None:
        for bar in self._task_bars.values():
            bar.close()
        if self._overall is not None:
            self._overall.close()


def _batch_size(left_s: float, per_config: float | None, batch_size: int) -> int:
    """Configs in a task's next batch: what fits in ``left_s`` of its share, ``MIN_BATCH`` to ``batch_size``."""
    if per_config is None:
        return batch_size
    return min(batch_size, max(MIN_BATCH, int(left_s / per_config)))


def tune_budget(tasks: Sequence[Task], db: Database, budget_s: float, measurer, *, tuner: str = "xgb",
                batch_size: int = 8, max_trials: int | None = None, early_stopping: int | None = None,
                seed: int = 0, weights: Sequence[float] | None = None, progress: bool = True,
                clock: Callable[[], float] = time.perf_counter, confirm: int | None = None) -> list[TuneSummary]:
    """Tune ``tasks`` for about ``budget_s`` seconds, by their shares; one summary per task, in order.

    ``weights``: each task's share of the model's time (default ``task_weights``); ``max_trials``
    caps a task's configs (records from earlier runs count); ``measurer`` an open ``Measurer``;
    ``confirm`` as for ``tune``. A task that got no batch has a summary of its records so far (none on a first run).
    """
    tasks = list(tasks)
    if not tasks:
        return []
    if isinstance(budget_s, bool) or not isinstance(budget_s, (int, float)) or not budget_s > 0:
        raise TuningError(f"tune_budget: budget_s: expected seconds > 0, got {budget_s!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TuningError(f"tune_budget: batch_size: expected an int >= 1, got {batch_size!r}")
    weights = task_weights(tasks) if weights is None else [float(w) for w in weights]
    if len(weights) != len(tasks) or any(not w >= 0 for w in weights) or not sum(weights) > 0:
        raise TuningError(f"tune_budget: weights: expected {len(tasks)} numbers >= 0, not all 0, got {weights!r}")
    total = sum(weights)
    shares = [budget_s * w / total for w in weights]
    rounds = confirm_rounds(tuner, confirm)
    start = clock()
    end = start + budget_s
    deadline = end - (CONFIRM_SHARE * budget_s if rounds else 0.0)
    shares = [s * (deadline - start) / budget_s for s in shares]
    spent = [0.0] * len(tasks)
    state: dict[int, TaskTuner] = {}
    active = {i for i, w in enumerate(weights) if w > 0}
    per_config: float | None = None  # seconds per measured config, all tasks (builds dominate)
    show = BudgetProgress(tasks, shares, budget_s, progress)
    try:
        while active and clock() < deadline:
            sizes = {k: _batch_size(shares[k] - spent[k], per_config, batch_size) for k in active}
            i = min(active, key=lambda k: ((spent[k] + (per_config or 0.0) * sizes[k]) / weights[k], -weights[k], k))
            t0 = clock()
            if i not in state:
                state[i] = TaskTuner(tasks[i], db, measurer, tuner, seed, resume=True)
            tt = state[i]
            want = sizes[i]
            if max_trials is not None:
                want = min(want, max_trials - tt.summary.trials)
            if per_config is None:  # the first batch times a config: a small one, in case the budget is too
                want = min(want, CALIBRATION_BATCH)
            else:  # near the deadline: only the configs that fit
                want = min(want, max(1, int((deadline - clock()) / per_config)))
            measured = tt.step(want) if want >= 1 and not tt.done else 0
            took = clock() - t0
            spent[i] += took
            if measured:
                now = took / measured
                per_config = now if per_config is None else 0.7 * per_config + 0.3 * now
                show.batch_done(i, tt.summary, spent[i], clock() - start, measured)
            if (not measured or tt.done or (max_trials is not None and tt.summary.trials >= max_trials)
                    or (early_stopping is not None and tt.stalled(early_stopping))):
                active.discard(i)
        tuned = sorted((i for i in state if state[i].summary.new_trials), key=lambda k: -weights[k])
        for i in tuned:  # largest share first; the rest are confirmed too, past the budget by a few pairs each
            t0 = clock()
            if state[i].confirm(rounds) is not None:
                spent[i] += clock() - t0
                show.batch_done(i, state[i].summary, spent[i], clock() - start, 0)
    finally:
        show.close()
    return [state[i].summary if i in state else recorded_summary(task, db, measurer.host(task.target))
            for i, task in enumerate(tasks)]
