"""lstm_cell is a tuning task: one per signature (a step costs the same at any sequence length), and the best
record of its workload in any bucket configures the compiled model's kernel (its W_hh packed for that block)."""
import numpy as np
import pytest

import nimble
from nimble import ir
from nimble.models import lstm
from nimble.tuner import Database, TuningRecord, host_fingerprint
from nimble.tuner.records import CONFIRM_TUNER
from nimble.vm.tasks import extract_tasks

CFG = lstm.LSTMConfig(input_size=24, hidden_size=40, num_layers=1)


@pytest.fixture(scope="module")
def mod():
    return lstm.build_module(lstm.random_weights(CFG, 0), CFG)


def _record(task, values, cost, tuner="test"):
    cfg = task.space.config(**{**task.fallback().values, **values})
    return TuningRecord(task.workload_key, task.bucket, "llvm", host_fingerprint("llvm"), cfg.to_json(), cfg.index,
                        costs=(cost,), tuner=tuner)


def _explain_lstm(exe, n):
    name = next(p.name for p in exe.packed if p.name.endswith("lstm_cell"))
    return exe.explain(name, (n, 4 * CFG.hidden_size))


def test_extract_tasks_gives_one_lstm_cell_task_whatever_the_buckets(mod):
    tasks = [t for t in extract_tasks(mod, "llvm", "n=1:8,9:32,33:128") if t.template == "lstm_cell"]
    assert len(tasks) == 1 and str(tasks[0].bucket) == "n=1"


def test_the_best_record_configures_the_kernel_at_every_length(tmp_path, mod):
    [task] = [t for t in extract_tasks(mod, "llvm") if t.template == "lstm_cell"]
    lanes = task.fallback().values["block"] // 2
    db = Database(tmp_path / "r.db")
    db.add_records([_record(task, {"block": lanes, "k_unroll": 1, "parallel": "none"}, 2e-6),
                    _record(task, {"block": 3 * lanes, "k_unroll": 2}, 5e-6)])
    exe = nimble.compile(mod, records=db)
    why = _explain_lstm(exe, 17)
    assert why["source"] == "record" and why["config"]["block"] == lanes and why["config"]["k_unroll"] == 1
    assert _explain_lstm(nimble.compile(mod, records=Database(tmp_path / "none.db")), 17)["source"] == "fallback"
    vm = nimble.VirtualMachine(exe)
    for n in (1, 2, 17, 50):  # the record's bucket was n=1: the config serves every length
        x = np.random.default_rng(n).standard_normal((n, CFG.input_size)).astype(np.float32)
        want = ir.evaluate(mod, *lstm.to_inputs(x))
        got = vm.run(*lstm.to_inputs(x))
        for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-5)


def test_a_confirmed_pick_wins_over_a_cheaper_first_measure(tmp_path, mod):
    [task] = [t for t in extract_tasks(mod, "llvm") if t.template == "lstm_cell"]
    lanes = task.fallback().values["block"] // 2
    fb = task.fallback().values
    db = Database(tmp_path / "r.db")
    db.add_records([_record(task, {"block": lanes, "k_unroll": 1}, 1e-6),  # noise: never confirmed
                    *[_record(task, {}, 3e-6, CONFIRM_TUNER) for _ in range(3)],
                    *[_record(task, {"block": lanes, "k_unroll": 1}, 4e-6 + k * 1e-9, CONFIRM_TUNER) for k in range(3)]])
    why = _explain_lstm(nimble.compile(mod, records=db), 5)
    assert why["config"]["block"] == fb["block"] and why["config"]["k_unroll"] == fb["k_unroll"]


def test_the_lstm_cell_task_tunes_and_its_scalar_step_input_stays_a_scalar(tmp_path, mod):
    """The measurer keeps the 0-d step ``t`` 0-d (``np.ascontiguousarray`` made it (1,): every config failed)."""
    from nimble.tuner import tune
    from nimble.tuner.measure import MeasureOptions

    [task] = [t for t in extract_tasks(mod, "llvm") if t.template == "lstm_cell"]
    db = Database(tmp_path / "r.db")
    [s] = tune(task, db, n_trials=3, batch_size=3, tuner="random", progress=False,
               options=MeasureOptions(repeat=2, min_repeat_ms=1.0, timeout_s=30.0))
    assert s.trials == 3 and s.errors == 0 and s.best_config is not None
    assert _explain_lstm(nimble.compile(mod, records=db), 9)["source"] == "record"
