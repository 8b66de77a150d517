"""Records of softmax, layer_norm, batch_matmul and attention flow into compiled models, keyed on
any symbolic dim of any argument."""
import functools
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nimble
from nimble import ir
from nimble import ops as nb
from nimble.dispatch.build import _ranges_from_records, template_dispatch
from nimble.ir import Any
from nimble.schedules import Signature
from nimble.schedules.softmax import softmax_signature
from nimble.tuner import Database, TuningRecord, host_fingerprint
from nimble.tuner.task import Task
from nimble.vm.tasks import model_tasks

rng = np.random.default_rng(0)


def f32(*shape):
    return rng.standard_normal(shape).astype("float32")


def record(task, values, cost=1e-5):
    cfg = task.space.config(**{**task.fallback().values, **values})
    return TuningRecord(task.workload_key, task.bucket, "llvm", host_fingerprint("llvm"), cfg.to_json(), cfg.index,
                        costs=(cost,), tuner="test")


def module(params, body):
    mod = ir.IRModule()
    mod.define("main", ir.Function(params, body))
    return mod


def softmax_case():
    x = ir.var("x", shape=(3, Any, 20))
    return module([x], nb.softmax(x, axis=-1)), lambda n: (f32(3, n, 20),), (3, 9, 20)


def layer_norm_case():
    x = ir.var("x", shape=(Any, 24))
    gamma, beta = ir.const(f32(24) + 1, name="g"), ir.const(f32(24), name="b")
    return module([x], nb.layer_norm(x, gamma, beta, axis=-1, epsilon=1e-5)), lambda n: (f32(n, 24),), (9, 24)


def batch_matmul_case():
    x, y = ir.var("x", shape=(2, Any, 16)), ir.var("y", shape=(2, Any, 16))
    return module([x, y], nb.batch_matmul(x, y)), lambda n: (f32(2, n, 16), f32(2, n + 3, 16)), (2, 9, 16)


def attention_case():
    q, k, v = (ir.var(c, shape=(Any, 32)) for c in "qkv")
    mask = ir.const(np.zeros((1, 1), "float32"), name="mask")
    body = nb.attention(q, k, v, mask, heads=2, head_size=16, scale=0.25)
    return module([q, k, v], body), lambda n: (f32(n, 32), f32(n + 2, 32), f32(n + 2, 32)), (9, 32)


# per template: a config far from the fallback's, so only the record can have chosen it
DISTINCT = {
    "softmax": (softmax_case, {"lanes": 64, "vec": 16, "exp_store": "recompute", "sum_method": "lanes",
                               "parallel": "none"}),
    "layer_norm": (layer_norm_case, {"lanes": 64, "vec": 16, "passes": "one", "sum_method": "lanes",
                                     "parallel": "none"}),
    "batch_matmul": (batch_matmul_case, {"tile_rows": 1, "tile_cols": 32, "k_unroll": 1, "col_block": 2,
                                         "parallel": "none"}),
    "attention": (attention_case, {"s_rows": 1, "s_unroll": 1, "c_rows": 1, "c_unroll": 1, "lanes": 8,
                                   "parallel": "none"}),
}  # (small tiles, no unrolling: quick to compile)


@pytest.mark.parametrize("template", sorted(DISTINCT))
def test_a_record_of_each_template_kind_flows_into_the_compiled_model(tmp_path, template):
    make, values = DISTINCT[template]
    mod, inputs, probe_shape = make()
    [mt] = model_tasks(mod)
    assert mt.template == template
    bucket = ",".join(f"{d}=1..64" for d in mt.signature.symbolic_dims)
    task = Task(template, mt.signature, "llvm", bucket)
    db = Database(tmp_path / "records.db")
    db.add_records([record(task, values)])
    exe = nimble.compile(mod, records=db)
    name = next(p.name for p in exe.packed if p.name.endswith(template))
    why = exe.explain(name, probe_shape)
    assert why["source"] == "record" and why["bucket"] == str(task.bucket)
    assert why["config"] == task.space.config(**{**task.fallback().values, **values}).to_json()
    assert why["measured_cost_s"] == pytest.approx(1e-5)
    assert "a tuning record of this host" in str(why)
    hints = {d: 64 for d in mt.signature.symbolic_dims}  # what compile's one fallback kernel is configured for
    assert why["config"] != task.template_obj.fallback(mt.signature, task.space, hints).to_json()
    vm = nimble.VirtualMachine(exe)
    for n in (0, 1, 9, 64, 70):  # 70: outside the record's bucket, its nearest range's kernel
        args = inputs(n)
        np.testing.assert_allclose(vm.run(*args), ir.evaluate(mod, *args), rtol=1e-4, atol=1e-5)


def test_records_of_the_one_length_signature_serve_a_model_whose_dims_are_unnamed(tmp_path):
    """nimble-tune --op softmax --shape 3,n,n writes (3, n, n); the model's softmax is (3, d0_1, d0_2)."""
    x = ir.var("x", shape=(3, Any, Any))
    mod = module([x], nb.softmax(x, axis=-1))
    [mt] = model_tasks(mod)
    assert mt.signature.args[0][0] == (3, "d0_1", "d0_2")
    one_length = Task("softmax", softmax_signature((3, "n", "n")), "llvm", "n=9..32")
    db = Database(tmp_path / "records.db")
    db.add_records([record(one_length, DISTINCT["softmax"][1])])
    exe = nimble.compile(mod, records=db)
    name = next(p.name for p in exe.packed if p.name.endswith("softmax"))
    why = exe.explain(name, (3, 20, 20))
    assert why["source"] == "record" and why["bucket"] == "n=9..32" and why["config"]["exp_store"] == "recompute"
    args = f32(3, 7, 11)
    np.testing.assert_allclose(nimble.VirtualMachine(exe).run(args), ir.evaluate(mod, args), rtol=1e-5, atol=1e-6)


K = 8


@functools.cache
def keyed_on_second_argument():
    """batch_matmul of a static x (3, 5, K) and y (3, m, K): its table keys on argument 1, axis 1."""
    x, y = ir.var("x", shape=(3, 5, K)), ir.var("y", shape=(3, Any, K))
    mod = module([x, y], nb.batch_matmul(x, y))
    sig = Signature.make([((3, 5, K), "float32"), ((3, "m", K), "float32")], transpose_b=True)
    small, large = Task("batch_matmul", sig, "llvm", "m=1..16"), Task("batch_matmul", sig, "llvm", "m=17..128")
    db = Database(Path(tempfile.mkdtemp()) / "records.db")
    db.add_records([record(small, {"tile_rows": 5, "tile_cols": 16, "k_unroll": 1}, 1e-6),
                    record(large, {"tile_rows": 1, "tile_cols": 32, "k_unroll": 1, "parallel": "none"}, 2e-6)])
    exe = nimble.compile(mod, records=db)
    return mod, exe, nimble.VirtualMachine(exe, backend="python"), nimble.VirtualMachine(exe, backend="native")


def test_a_table_keyed_on_a_dim_of_the_second_argument_dispatches_on_it(tmp_path):
    _, exe, _, _ = keyed_on_second_argument()
    [table] = [p for p in exe.packed if p.name.endswith("batch_matmul")]
    assert table.dim == (1, 1) and [r.label for r in table.ranges] == ["m=1..16", "m=17..128"]
    assert str(exe.explain(table.name, (3, 16, K))).startswith(f"{table.name}: m=16 is inside bucket m=1..16")
    exe.save(tmp_path / "m.nimble")
    loaded = nimble.Executable.load(tmp_path / "m.nimble")
    assert loaded.explain(table.name, (3, 40, K)) == exe.explain(table.name, (3, 40, K))
    assert exe.explain(table.name, (3, 16, K))["config"]["tile_cols"] == 16
    assert exe.explain(table.name, (3, 17, K))["config"]["tile_cols"] == 32
    outside = exe.explain(table.name, (3, 500, K))
    assert outside["bucket"] == "m=17..128" and outside["inside"] is False


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.sampled_from([0, 1, 2, 3, 5, 7, 13, 16, 17, 31, 127, 128, 129]), st.integers(0, 300)))
def test_dispatch_on_the_second_argument_is_correct_on_every_shape(m):
    _, _, vm, native = keyed_on_second_argument()
    x, y = f32(3, 5, K), f32(3, m, K)
    want = np.einsum("bnk,bmk->bnm", x.astype("float64"), y.astype("float64"))
    got = vm.run(x, y)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(native.run(x, y), got)


def test_records_on_the_diagonal_of_several_dims_win_over_cheaper_off_diagonal_ones(tmp_path):
    sig = Signature.make([((2, "n", 16), "float32"), ((2, "m", 16), "float32")], transpose_b=True)
    diag, off = Task("batch_matmul", sig, "llvm", "m=1..64,n=1..64"), Task("batch_matmul", sig, "llvm",
                                                                           "m=65..128,n=1..64")
    db = Database(tmp_path / "records.db")
    cheap = {"tile_rows": 1, "k_unroll": 1, "col_block": 2, "parallel": "none"}
    db.add_records([record(diag, {**cheap, "tile_cols": 32}, 5e-5), record(off, {**cheap, "tile_cols": 16}, 1e-6)])
    entry, configs = template_dispatch("batch_matmul", sig, "bmm", (0, 1), lambda c, cs: (0, 1, 2), db)
    assert [r.label for r in entry.ranges] == ["m=1..64,n=1..64"]
    assert configs[0]["tile_cols"] == 32 and entry.ranges[0].source == "record"
    keyed_on_m = _ranges_from_records(diag, db, "llvm", False, "m")  # each record has its own range of m
    assert [(r.lo, r.hi, r.label) for r, _ in keyed_on_m] == [(1, 64, "m=1..64,n=1..64"),
                                                            (65, 128, "m=65..128,n=1..64")]
    with pytest.raises(nimble.NimbleError, match="dim_name 'k'"):
        template_dispatch("batch_matmul", sig, "bmm", (0, 1), lambda c, cs: (0, 1, 2), db, dim_name="k")
