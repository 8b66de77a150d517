"""lstm_cell (and gru_cell) is a tuning task: one per signature (a step costs the same at any sequence length), and
the best record of its workload in any bucket configures the compiled model's kernel (its weight packed for that
block)."""
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
    lanes = task.space.knobs["block"].values[0]  # one vector of units
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
    lanes = task.space.knobs["block"].values[0]  # one vector of units
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


def _gru_module(hidden=24, batch=1, gate_order=(0, 1, 2), seed=5):
    """A GRU recursion over t whose step is gru_cell with constant R and bias_n (x: (T * batch, 3H) projections)."""
    from nimble import ops as nb
    from nimble.ir.builder import Builder, const, if_, var
    from nimble.ir.expr import Constant, Function, GlobalVar
    from nimble.ir.module import IRModule
    from nimble.ir.types import Any, TensorType

    rng = np.random.default_rng(seed)
    w = rng.uniform(-0.3, 0.3, (3 * hidden, hidden)).astype(np.float32)
    bias = rng.uniform(-0.3, 0.3, hidden).astype(np.float32)
    state_t = TensorType((1, batch, hidden))
    loop = GlobalVar("loop")
    t, n = var("t", shape=(), dtype="int64"), var("n", shape=(), dtype="int64")
    gx, state = var("gx", shape=(Any, 3 * hidden)), var("state", type=state_t)
    b = Builder()
    new = b.let("new", nb.gru_cell(gx, t, state, Constant(w, "w"), Constant(bias, "bias"), gate_order=gate_order))
    mod = IRModule()
    mod.define(loop, Function([t, n, gx, state], if_(nb.less(t, n), b.ret(loop(nb.add(t, const(1, "int64")), n, gx,
                                                                                   new)), state), state_t))
    xs = var("xs", shape=(Any, 3 * hidden))
    steps = nb.divide(nb.take(nb.shape_of(xs), const(0, "int64"), axis=0), const(batch, "int64"))
    mod.define("main", Function([xs], loop(const(0, "int64"), steps, xs, nb.zeros((1, batch, hidden))), state_t))
    return mod, w, bias


def test_gru_cell_is_one_task_whose_tuned_record_configures_the_kernel(tmp_path):
    from nimble.schedules.gru_cell import gru_cell_reference
    from nimble.tuner import tune
    from nimble.tuner.measure import MeasureOptions

    mod, w, bias = _gru_module()
    tasks = [t for t in extract_tasks(mod, "llvm", "n=1:8,9:32,33:128") if t.template == "gru_cell"]
    assert len(tasks) == 1 and str(tasks[0].bucket) == "n=1"
    db = Database(tmp_path / "r.db")
    [s] = tune(tasks[0], db, n_trials=3, batch_size=3, tuner="random", progress=False,
               options=MeasureOptions(repeat=2, min_repeat_ms=1.0, timeout_s=30.0))
    assert s.trials == 3 and s.errors == 0 and s.best_config is not None
    exe = nimble.compile(mod, records=db)
    name = next(p.name for p in exe.packed if p.name.endswith("gru_cell"))
    why = exe.explain(name, (9, 72))
    assert why["source"] == "record"
    vm = nimble.VirtualMachine(exe)
    for n in (1, 6):
        x = np.random.default_rng(n).standard_normal((n, 72)).astype(np.float32)
        want = np.zeros((1, 1, 24), np.float32)
        for step in range(n):
            want = gru_cell_reference(x, np.array(step), want, w, bias)
        np.testing.assert_allclose(vm.run(x), want, rtol=1e-5, atol=1e-5)


def test_a_compiled_gru_loop_matches_a_numpy_gru():
    """gru_cell inside a recursion over t (its weight a constant: the template packs it), batch 2, PyTorch's gate
    order, against numpy step by step."""
    from nimble.schedules.gru_cell import TORCH_GRU_ORDER, gru_cell_reference

    hidden, batch = 24, 2
    mod, w, bias = _gru_module(hidden, batch, TORCH_GRU_ORDER, seed=3)
    vm = nimble.VirtualMachine(nimble.compile(mod))
    rng = np.random.default_rng(3)
    for n_steps in (1, 4, 11):
        x = rng.standard_normal((n_steps * batch, 3 * hidden)).astype(np.float32)
        want = np.zeros((1, batch, hidden), np.float32)
        for s in range(n_steps):
            want = gru_cell_reference(x, np.array(s), want, w, bias, TORCH_GRU_ORDER)
        np.testing.assert_allclose(vm.run(x), want, rtol=1e-5, atol=1e-5)
