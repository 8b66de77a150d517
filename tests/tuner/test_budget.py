"""Tuning within a time budget: time spread by the tasks' shares, the deadline kept, records resumed."""
import pytest

from fake_clock import Clock

from nimble.errors import TuningError
from nimble.schedules.dense import dense_signature
from nimble.tuner import Database
from nimble.tuner.budget import task_weight, task_weights, tune_budget
from nimble.tuner.fingerprint import host_fingerprint
from nimble.tuner.measure import MeasureResult
from nimble.tuner.task import Task
from nimble.tuner.tune import fallback_candidates

SIG = dense_signature("n", 32, 48, bias=True, epilogue=["relu"], weight="const")


class TimedMeasurer:
    """Measures nothing: each config 'takes' ``per_config`` seconds of the fake clock; cost falls with the tile."""

    def __init__(self, clock, per_config=1.0):
        self.clock, self.per_config, self.batches = clock, per_config, []

    def host(self, target):
        return host_fingerprint(target)

    def measure(self, task, batch, on_result=None):
        self.batches.append((str(task.bucket), len(batch), self.clock.now))
        out = []
        for c in batch:
            self.clock.now += self.per_config
            r = MeasureResult(c, (1e-4 / (1 + c.values["tile_rows"] * c.values["tile_cols"] / 64),))
            if on_result:
                on_result(r)
            out.append(r)
        return out

    def close(self):
        pass


def tasks(buckets=("n=1", "n=2..4", "n=5..16", "n=17..64", "n=65..128")):
    return [Task("dense", SIG, "llvm", b) for b in buckets]


def test_weights_follow_flops_times_bucket_width():
    small, large = tasks(("n=1..4", "n=65..128"))
    assert task_weight(large) / task_weight(small) == pytest.approx((64 * 96) / (4 * 2))
    assert sum(task_weights(tasks())) == pytest.approx(1.0)
    assert task_weights([small]) == [1.0]


@pytest.mark.parametrize("budget", [0.5, 3.0, 20.0])
def test_a_budget_is_kept_to_within_one_measurement(tmp_path, budget):
    clock = Clock()
    m = TimedMeasurer(clock, per_config=1.0)
    summaries = tune_budget(tasks(), Database(tmp_path / "r.db"), budget, m, tuner="random", batch_size=8,
                            progress=False, clock=clock)
    # the first batch (2 configs) times a config; later ones shrink near the deadline to the configs that fit
    assert budget <= clock.now <= max(2.0, budget + 1.0)
    assert sum(s.new_trials for s in summaries) == clock.now  # one second a config
    assert [s.bucket for s in summaries] == ["n=1", "n=2..4", "n=5..16", "n=17..64", "n=65..128"]


def test_time_goes_to_tasks_by_their_share_and_the_largest_first(tmp_path):
    clock = Clock()
    m = TimedMeasurer(clock, per_config=1.0)
    ts = tasks()
    summaries = tune_budget(ts, Database(tmp_path / "r.db"), 80.0, m, tuner="random", batch_size=4,
                            progress=False, clock=clock)
    assert m.batches[0][0] == "n=65..128"
    trials = {s.bucket: s.new_trials for s in summaries}
    shares = dict(zip((str(t.bucket) for t in ts), task_weights(ts)))
    assert trials["n=65..128"] == pytest.approx(80 * shares["n=65..128"], abs=4)
    assert trials["n=17..64"] == pytest.approx(80 * shares["n=17..64"], abs=4)
    assert trials["n=1"] == trials["n=2..4"] == 0  # shares far below one batch: left to the fallback


def test_each_bucket_measures_its_fallbacks_first_and_a_second_run_resumes(tmp_path):
    clock = Clock()
    db = Database(tmp_path / "r.db")
    [task] = tasks(("n=1..64",))
    m = TimedMeasurer(clock, per_config=1.0)
    [first] = tune_budget([task], db, 4.0, m, tuner="random", batch_size=8, progress=False, clock=clock)
    fallbacks = [c.index for c in fallback_candidates(task)]
    assert len(fallbacks) == 3  # n=1..64 runs three fallback configs (1, 2..32, >=33) without a record
    records = db.records(workload=task.workload_key, bucket=task.bucket)
    assert [r.config_index for r in records[:3]] == fallbacks
    assert first.fallback_cost is not None and first.best_cost <= first.fallback_cost
    [second] = tune_budget([task], db, 4.0, m, tuner="random", batch_size=8, progress=False, clock=clock)
    indices = [r.config_index for r in db.records(workload=task.workload_key)]
    assert second.trials == first.trials + second.new_trials == len(indices) == len(set(indices))


def test_max_trials_caps_a_task_and_bad_arguments_are_named(tmp_path):
    clock = Clock()
    db = Database(tmp_path / "r.db")
    [s] = tune_budget(tasks(("n=5..16",)), db, 100.0, TimedMeasurer(clock), tuner="random", max_trials=5,
                      progress=False, clock=clock)
    assert s.trials == 5 and clock.now == 5.0  # stops early once every task is capped
    with pytest.raises(TuningError, match="budget_s"):
        tune_budget(tasks(), db, 0, TimedMeasurer(clock))
    with pytest.raises(TuningError, match="weights"):
        tune_budget(tasks(), db, 1.0, TimedMeasurer(clock), weights=[1.0])
