"""The dense_integer_amx template (dense_integer on AMX tiles): every config exact against numpy, any row count and
zero point, the fallback and refit rules, the loop IR the cost model reads, and which template a model's
dense_integer groups take (AMX only where the CPU and the OS provide it, and ``NIMBLE_AMX`` allows)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nimble
from nimble import settings as nimble_settings
from nimble.codegen.isa import host_amx_int8
from nimble.schedules import TemplateError, get_template
from nimble.schedules.dense_integer import dense_integer_signature
from nimble.schedules.dense_integer_amx import dense_integer_template
from nimble.tir.nodes import TileMatmul
from nimble.tuner import features
from nimble.tuner.task import Task
from template_checks import built

T = get_template("dense_integer_amx")
amx = pytest.mark.skipif(not host_amx_int8(), reason="this CPU (or its OS) has no AMX-INT8 tiles")


@amx
@pytest.mark.parametrize("k, m", [(256, 96), (132, 40)])
def test_every_knob_value_is_exact_at_many_row_counts(k, m):
    """Each value of each knob, the others at the fallback's (every tile shape with both layouts of x)."""
    sig = dense_integer_signature("n", k, m)
    rng = np.random.default_rng(k)
    space = T.space(sig)
    base = T.fallback(sig, space, {"n": 64})
    picks = {space.config(**{**base.values, "tiles": t, "a_layout": a}).index
             for t in space.knobs["tiles"].values for a in space.knobs["a_layout"].values}
    picks |= {space.config(**{**base.values, name: v}).index for name in ("panel_kb", "parallel")
              for v in space.knobs[name].values}
    for index in sorted(picks):
        kernel = built("dense_integer_amx", sig, index)
        for n in (0, 1, 16, 33, 200):
            ins = T.random_inputs(sig, {"n": n}, rng)
            np.testing.assert_array_equal(kernel(*ins), T.reference(sig, ins)[0],
                                          err_msg=f"config {space.get(index)} n={n}")


@amx
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(n=st.sampled_from([0, 1, 2, 7, 16, 17, 53, 128, 331, 1024]), zero=st.integers(0, 255),
       seed=st.integers(0, 2**16))
def test_any_rows_and_zero_point(n, zero, seed):
    sig = dense_integer_signature("n", 192, 72)
    kernel = built("dense_integer_amx", sig, T.fallback(sig, T.space(sig), {"n": 64}).index)
    x, w, _ = T.random_inputs(sig, {"n": n}, np.random.default_rng(seed))
    np.testing.assert_array_equal(kernel(x, w, np.array(zero, np.uint8)),
                                  (x.astype(np.int32) - zero) @ w.astype(np.int32).T)


@amx
def test_a_static_row_count():
    sig = dense_integer_signature(7, 64, 20)
    kernel = built("dense_integer_amx", sig, T.fallback(sig, T.space(sig)).index)
    x, w = np.full((7, 64), 255, np.uint8), np.full((20, 64), -128, np.int8)
    np.testing.assert_array_equal(kernel(x, w, np.array(3, np.uint8)), np.full((7, 20), 252 * -128 * 64))


def test_fallback_and_refit_take_wide_groups_for_few_rows():
    sig = dense_integer_signature("n", 768, 768)
    space = T.space(sig)
    few, many = T.fallback(sig, space, {"n": 8}), T.fallback(sig, space, {"n": 128})
    assert few["tiles"] == "1x4" and many["tiles"] == "2x2"
    assert T.refit(sig, space, many, "n", 4)["tiles"] == "1x4"
    assert T.refit(sig, space, many, "n", 100) is None
    assert T.refit(sig, space, many, "other", 4) is None


def test_the_loop_ir_is_one_tile_product_per_column_group_and_the_cost_model_reads_it():
    sig = dense_integer_signature("n", 768, 200)  # 200 columns: 6 groups of 32 and one of 8
    space = T.space(sig)
    cfg = space.config(tiles="2x2", panel_kb=256, parallel="cols", a_layout="tiles")
    func = T.lower(sig, cfg)
    text = str(func)
    assert "cols=32, k=768)  # 2 x 2 tiles, a packed" in text and "cols=8, k=768)" in text
    assert "# parallel" in text
    task = Task("dense_integer_amx", sig, "llvm", "n=17..64")
    small, big = (features.extract(task, cfg, {"n": n}) for n in (17, 64))
    assert small.shape == big.shape and (big != small).any()


def test_the_statement_is_in_the_loop_ir_types():
    func = T.lower(dense_integer_signature("n", 64, 16), T.fallback(dense_integer_signature("n", 64, 16),
                                                                     T.space(dense_integer_signature("n", 64, 16))))
    from nimble.codegen.loop_analysis import stmts

    assert any(isinstance(s, TileMatmul) for s in stmts(func.body))


def test_it_is_never_a_te_schedule():
    sig = dense_integer_signature("n", 64, 16)
    with pytest.raises(TemplateError, match="hand-written loop IR"):
        T.instantiate(sig, T.fallback(sig, T.space(sig)))


def test_build_refuses_where_the_cpu_has_no_tiles(monkeypatch):
    import nimble.codegen.isa as isa

    monkeypatch.setattr(isa, "host_amx_int8", lambda: False)
    sig = dense_integer_signature("n", 64, 16)
    with pytest.raises(TemplateError, match="does not provide AMX-INT8"):
        T.build(sig, T.fallback(sig, T.space(sig)))
    assert dense_integer_template() == "dense_integer"


def test_the_setting_turns_the_tiles_off():
    old = nimble_settings.current().amx
    try:
        nimble_settings.update(amx=False)
        assert dense_integer_template() == "dense_integer"
        nimble_settings.update(amx=True)
        assert dense_integer_template() == ("dense_integer_amx" if host_amx_int8() else "dense_integer")
    finally:
        nimble_settings.update(amx=old)


@amx
@pytest.mark.parametrize("use_amx", [True, False])
def test_a_model_takes_the_tiles_only_where_allowed_and_both_are_exact(use_amx):
    from nimble import ir
    from nimble import ops as nb
    from nimble.passes.pipeline import Pipeline
    from nimble.vm.pipeline import compile_pipeline

    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, (48, 128)).astype(np.int8)
    x, z = ir.var("x", shape=(ir.Any, 128), dtype="uint8"), ir.var("z", shape=(), dtype="uint8")
    mod = ir.IRModule()
    mod.define("main", ir.Function([x, z], nb.dense_integer(x, ir.const(w), z)))
    passes = compile_pipeline("llvm", None, False).passes
    old = nimble_settings.current().amx
    try:
        nimble_settings.update(amx=use_amx)
        lowered = Pipeline(passes[:[p.name for p in passes].index("lower_kernels") + 1]).run(mod, print_after=(),
                                                                                            debug=0)
        exe = nimble.compile(mod)
    finally:
        nimble_settings.update(amx=old)
    kinds = [gk.template for gk in lowered.kernels]
    assert ("dense_integer_amx" if use_amx else "dense_integer") in kinds, kinds
    vm = nimble.VirtualMachine(exe)
    for n in (0, 1, 17, 70):
        xs = rng.integers(0, 256, (n, 128)).astype(np.uint8)
        got = np.asarray(vm.run(xs, np.array(9, np.uint8)))
        np.testing.assert_array_equal(got, (xs.astype(np.int32) - 9) @ w.astype(np.int32).T)


def _int8_module(w):
    from nimble import ir
    from nimble import ops as nb

    x, z = ir.var("x", shape=(ir.Any, w.shape[1]), dtype="uint8"), ir.var("z", shape=(), dtype="uint8")
    mod = ir.IRModule()
    mod.define("main", ir.Function([x, z], nb.dense_integer(x, ir.const(w), z)))
    return mod


@amx
def test_extract_tasks_names_the_tile_template_and_a_record_configures_the_model(tmp_path):
    from nimble.tuner import Database, TuningRecord, host_fingerprint
    from nimble.vm.tasks import extract_tasks

    w = np.random.default_rng(1).integers(-128, 128, (40, 192)).astype(np.int8)
    mod = _int8_module(w)
    tasks = [t for t in extract_tasks(mod, "llvm", "n=1:16,17:64") if t.template.startswith("dense_integer")]
    assert {t.template for t in tasks} == {"dense_integer_amx"} and len(tasks) == 2
    task = next(t for t in tasks if str(t.bucket) == "n=17..64")
    cfg = task.space.config(tiles="4x1", panel_kb=64, parallel="fused", a_layout="rows")
    db = Database(tmp_path / "r.db")
    db.add_records([TuningRecord(task.workload_key, task.bucket, "llvm", host_fingerprint("llvm"), cfg.to_json(),
                                 cfg.index, costs=(1e-6,), tuner="test")])
    exe = nimble.compile(mod, records=db)
    name = next(p.name for p in exe.packed if "dense_integer" in p.name)
    why = exe.explain(name, (40, 192))
    assert why["source"] == "record" and why["config"]["tiles"] == "4x1", why
    vm = nimble.VirtualMachine(exe)
    for n in (3, 40, 100):
        xs = np.random.default_rng(n).integers(0, 256, (n, 192)).astype(np.uint8)
        np.testing.assert_array_equal(np.asarray(vm.run(xs, np.array(5, np.uint8))),
                                      (xs.astype(np.int32) - 5) @ w.astype(np.int32).T)


@amx
def test_the_tuner_measures_tile_configs(tmp_path):
    from nimble.tuner import Database
    from nimble.tuner.task import Task
    from nimble.tuner.tune import tune

    task = Task("dense_integer_amx", dense_integer_signature("n", 128, 48), "llvm", "n=17..64")
    [summary] = tune(task, Database(tmp_path / "t.db"), n_trials=4, tuner="random", progress=False)
    assert summary.errors == 0 and summary.new_trials == 4 and summary.best_cost > 0


@amx
def test_a_saved_executable_runs_its_tiles_in_a_fresh_process(tmp_path):
    """Linux grants the tile state per process: a process that only loads an executable (no compile) must ask for
    it before the first tile instruction, or die of SIGILL."""
    import subprocess
    import sys
    import textwrap

    w = np.random.default_rng(3).integers(-128, 128, (48, 128)).astype(np.int8)
    nimble.compile(_int8_module(w)).save(tmp_path / "int8.nimble")
    np.save(tmp_path / "w.npy", w)
    script = textwrap.dedent(f"""
        import numpy as np, nimble
        from nimble.vm.executable import Executable
        vm = nimble.VirtualMachine(Executable.load({str(tmp_path / "int8.nimble")!r}))
        w = np.load({str(tmp_path / "w.npy")!r})
        x = np.random.default_rng(0).integers(0, 256, (37, 128)).astype(np.uint8)
        got = np.asarray(vm.run(x, np.array(4, np.uint8)))
        assert np.array_equal(got, (x.astype(np.int32) - 4) @ w.astype(np.int32).T)
        print("exact")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "exact" in out.stdout, (out.returncode, out.stderr[-2000:])
