"""A bucket's best config is re-measured beside its fallback before a model uses it: a best that won its
first batch by noise (a load spike slowing the fallback, a lucky repeat) loses side by side."""
import pytest

from fake_clock import Clock

from nimble.dispatch.build import host_pick
from nimble.schedules.dense import dense_signature
from nimble.tuner import Database
from nimble.tuner.budget import tune_budget
from nimble.tuner.fingerprint import host_fingerprint
from nimble.tuner.measure import MeasureOptions, MeasureResult
from nimble.tuner.records import CONFIRM_TUNER
from nimble.tuner.task import Task
from nimble.tuner.tune import CONFIRM_ROUNDS, fallback_candidates, tune

SIG = dense_signature("n", 32, 48, bias=True, epilogue=["relu"], weight="const")


class ScriptedMeasurer:
    """Costs by config: the fallback always 1e-4; every other config ``first`` at its first measurement
    and ``later`` when measured again (the re-measure beside the fallback)."""

    def __init__(self, fallback_index, first, later, clock=None):
        self.fallback_index, self.first, self.later, self.clock = fallback_index, first, later, clock
        self.seen, self.batches = set(), []

    def host(self, target):
        return host_fingerprint(target)

    def measure(self, task, batch, on_result=None):
        self.batches.append([c.index for c in batch])
        out = []
        for c in batch:
            if self.clock is not None:
                self.clock.now += 1.0
            if c.index == self.fallback_index:
                cost = 1e-4
            else:
                cost = self.later if (str(task.bucket), c.index) in self.seen else self.first
            self.seen.add((str(task.bucket), c.index))
            r = MeasureResult(c, (cost,))
            if on_result:
                on_result(r)
            out.append(r)
        return out

    def close(self):
        pass


def _task(bucket="n=65..128"):
    return Task("dense", SIG, "llvm", bucket)


def _primary(task):
    return fallback_candidates(task)[0].index


def test_a_best_that_won_by_noise_loses_side_by_side_and_the_model_keeps_the_fallback(tmp_path):
    task, db = _task(), Database(tmp_path / "r.db")
    m = ScriptedMeasurer(_primary(task), first=0.5e-4, later=1.3e-4)
    [s] = tune(task, db, n_trials=4, batch_size=4, measurer=m, progress=False)  # xgb: confirms by default
    assert s.best_index == _primary(task) and s.confirmed == pytest.approx(1.0)
    assert s.speedup == pytest.approx(1.0) and s.best_cost == pytest.approx(1e-4)
    confirm = [r for r in db.records(workload=task.workload_key) if r.tuner == CONFIRM_TUNER]
    assert len(confirm) == 2 * CONFIRM_ROUNDS
    assert m.batches[-1][1::2] == [_primary(task)] * CONFIRM_ROUNDS  # alternating with the fallback
    picked = host_pick(db.records(workload=task.workload_key, bucket=task.bucket))
    assert picked.config_index == _primary(task)  # the first batch's 0.5e-4 is not what the model runs


def test_a_best_that_wins_side_by_side_is_kept_with_its_confirmed_speedup(tmp_path):
    task, db = _task(), Database(tmp_path / "r.db")
    m = ScriptedMeasurer(_primary(task), first=0.4e-4, later=0.5e-4)
    [s] = tune(task, db, n_trials=4, batch_size=4, measurer=m, progress=False)
    assert s.best_index != _primary(task)
    assert s.confirmed == pytest.approx(2.0) and s.speedup == pytest.approx(2.0)
    picked = host_pick(db.records(workload=task.workload_key, bucket=task.bucket))
    assert picked.config_index == s.best_index and picked.mean_cost == pytest.approx(0.5e-4)


def test_baseline_tuners_measure_each_config_once_unless_asked(tmp_path):
    task, db = _task(), Database(tmp_path / "r.db")
    m = ScriptedMeasurer(_primary(task), first=0.5e-4, later=1.3e-4)
    [s] = tune(task, db, n_trials=4, batch_size=4, tuner="random", measurer=m, progress=False)
    assert s.confirmed is None and s.best_index != _primary(task)
    indices = [r.config_index for r in db.records()]
    assert len(indices) == len(set(indices))
    [again] = tune(task, db, n_trials=6, batch_size=2, tuner="random", measurer=m, progress=False, confirm=2)
    assert again.confirmed is not None
    assert sum(r.tuner == CONFIRM_TUNER for r in db.records()) == 4


def test_a_budget_keeps_a_tenth_for_confirming_and_confirms_every_tuned_task(tmp_path):
    clock, db = Clock(), Database(tmp_path / "r.db")
    tasks = [_task("n=17..64"), _task("n=65..128")]
    m = ScriptedMeasurer(None, first=0.5e-4, later=1.3e-4, clock=clock)
    m.fallback_index = _primary(tasks[1])  # both buckets share their fallback config here
    assert _primary(tasks[0]) == _primary(tasks[1])
    summaries = tune_budget(tasks, db, 40.0, m, tuner="random", confirm=CONFIRM_ROUNDS, batch_size=4, progress=False,
                            clock=clock)
    assert all(s.confirmed == pytest.approx(1.0) for s in summaries)
    tuning = [b for b in m.batches if len(set(b)) > 2 or len(b) < 2 * CONFIRM_ROUNDS]
    assert sum(len(b) for b in tuning) <= 36 + 1  # tuning stopped near 90% of the budget
    assert clock.now <= 37.0 + len(tasks) * 2 * CONFIRM_ROUNDS  # then one side-by-side round per tuned task


def test_host_pick_without_confirmations_is_the_lowest_cost(tmp_path):
    task, db = _task(), Database(tmp_path / "r.db")
    m = ScriptedMeasurer(_primary(task), first=0.5e-4, later=1.3e-4)
    tune(task, db, n_trials=4, batch_size=4, tuner="grid", measurer=m, progress=False)
    picked = host_pick(db.records(workload=task.workload_key, bucket=task.bucket))
    assert picked.mean_cost == pytest.approx(0.5e-4)


def test_confirm_rejects_bad_rounds(tmp_path):
    from nimble.errors import TuningError

    task, db = _task(), Database(tmp_path / "r.db")
    with pytest.raises(TuningError, match="confirm"):
        tune(task, db, n_trials=1, measurer=ScriptedMeasurer(0, 1e-4, 1e-4), progress=False, confirm=-1)


class CacheMeasurer(ScriptedMeasurer):
    """Measures with cold or warm caches (``options.cold_cache``): the fallback costs 1e-4 cold, 0.33e-4 warm;
    every other config 2e-4 cold, 0.3e-4 warm (warm, another config would win)."""

    def __init__(self, fallback_index, cold: bool):
        super().__init__(fallback_index, 0, 0)
        self.options = MeasureOptions(cold_cache=cold)

    def measure(self, task, batch, on_result=None):
        self.batches.append([c.index for c in batch])
        out = []
        for c in batch:
            if self.options.cold_cache:
                cost = 1e-4 if c.index == self.fallback_index else 2e-4
            else:
                cost = 0.33e-4 if c.index == self.fallback_index else 0.3e-4
            r = MeasureResult(c, (cost,))
            if on_result:
                on_result(r)
            out.append(r)
        return out


def test_records_say_how_they_were_measured_and_the_model_takes_cold_ones(tmp_path):
    task, db = _task(), Database(tmp_path / "r.db")
    fallback = _primary(task)
    tune(task, db, n_trials=6, batch_size=6, tuner="grid", measurer=CacheMeasurer(fallback, True), progress=False,
         confirm=0)
    assert {r.cache for r in db.records()} == {"cold"}
    warm = CacheMeasurer(fallback, False)
    tune(task, db, n_trials=6, batch_size=6, tuner="grid", measurer=warm, progress=False, confirm=0)
    assert len(warm.batches[0]) == 6  # a warm run does not resume the cold run's measurements: it measures
    records = db.records(workload=task.workload_key, bucket=task.bucket)
    assert sorted(r.cache for r in records) == ["cold"] * 6 + ["warm"] * 6
    picked = host_pick(records)
    assert picked.cache == "cold" and picked.config_index == fallback  # the warm records' lower costs do not win
    warm_pick = host_pick([r for r in records if r.cache == "warm"])
    assert warm_pick.cache == "warm" and warm_pick.config_index != fallback
    resumed = CacheMeasurer(fallback, True)
    tune(task, db, n_trials=6, batch_size=6, tuner="grid", measurer=resumed, progress=False, confirm=0)
    assert resumed.batches == []  # a cold run resumes the cold records: nothing left to measure
