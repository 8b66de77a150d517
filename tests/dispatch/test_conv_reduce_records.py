"""conv2d groups and lone reductions are tuning tasks: extract_tasks lists them, their records key the
compiled model's dispatch table, and the kernels compute what numpy computes at every size."""
import functools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nimble
from nimble import ir
from nimble import ops as nb
from nimble.ir import Any
from nimble.tuner import Database, TuningRecord, host_fingerprint
from nimble.vm.tasks import extract_tasks, model_tasks, task_shares

rng = np.random.default_rng(0)
SIZES = st.sampled_from([0, 1, 2, 3, 7, 13, 31, 64, 257])


def f32(*shape):
    return rng.standard_normal(shape).astype("float32")


def module(params, body):
    mod = ir.IRModule()
    mod.define("main", ir.Function(params, body))
    return mod


def record(task, values, cost=1e-5):
    cfg = task.space.config(**{**task.fallback().values, **values})
    return TuningRecord(task.workload_key, task.bucket, "llvm", host_fingerprint("llvm"), cfg.to_json(), cfg.index,
                        costs=(cost,), tuner="test")


def np_conv2d(x, w, pad):
    """Direct convolution in float64, stride 1."""
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    o, _, kh, kw = w.shape
    oh, ow = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    out = np.zeros((x.shape[0], o, max(oh, 0), max(ow, 0)))
    for ky in range(kh):
        for kx in range(kw):
            out += np.einsum("nchw,oc->nohw", x[:, :, ky:ky + oh, kx:kx + ow], w[:, :, ky, kx].astype(np.float64))
    return out


W = f32(16, 8, 3, 3) * 0.3
BIAS = f32(16, 1, 1)
RESIDUAL_W = f32(16, 16, 3, 3) * 0.1


def conv_case():
    """conv(3x3, pad 1) + bias -> relu -> conv(3x3, pad 1) + residual -> relu: two conv2d groups, batch, height
    and width dynamic."""
    x = ir.var("x", shape=(Any, 8, Any, Any))
    b = ir.Builder()
    h = b.let("h", nb.relu(nb.add(nb.conv2d(x, ir.const(W), padding=(1, 1)), ir.const(BIAS))))
    y = b.let("y", nb.relu(nb.add(nb.conv2d(h, ir.const(RESIDUAL_W), padding=(1, 1)), h)))
    return module([x], b.ret(y))


def conv_reference(x):
    h = np.maximum(np_conv2d(x, W, 1) + BIAS[None], 0)
    return np.maximum(np_conv2d(h, RESIDUAL_W, 1) + h, 0)


def reduce_case():
    x = ir.var("x", shape=(Any, 16, Any, Any))
    return module([x], nb.mean(x, axis=(2, 3)))


# per task kind: the model, a config far from the fallback's, and a concrete input shape
CASES = {
    "conv2d": (conv_case, {"tile_w": 8, "tile_oc": 1, "parallel": "batch"}, (6, 8, 9, 9)),
    "reduce": (reduce_case, {"method": "plain", "lanes": 64, "parallel": "none"}, (6, 16, 9, 9)),
}


def test_extract_tasks_lists_conv2d_and_reduce_groups_with_their_symbolic_dims():
    convs = [t for t in model_tasks(conv_case()) if t.template == "conv2d"]
    assert len(convs) == 2
    first = convs[0].signature
    assert first.args[0] == ((("d0_0", 8, "d0_2", "d0_3")), "float32") and first.attr("epilogue") == ("relu",)
    assert convs[1].signature.attr("epilogue") == ("residual", "relu")
    [mean] = model_tasks(reduce_case())
    assert mean.template == "reduce" and mean.signature.args == ((("d0_0", 16, "d0_2", "d0_3"), "float32"),)
    tasks = extract_tasks(conv_case(), buckets="n=1:4,5:16")
    assert [str(t.bucket) for t in tasks if t.signature == first] == ["d0_0=1..4,d0_2=1..4,d0_3=1..4",
                                                                      "d0_0=5..16,d0_2=5..16,d0_3=5..16"]
    for task in tasks:  # each is a task the tuner can build and measure, with a share of the model's time
        assert task.flops() > 0 and len(task.space) > 1
    shares = task_shares(conv_case(), tasks)
    assert all(s > 0 for s in shares)
    residual = next(t for t in model_tasks(conv_case()) if t.signature.attr("epilogue") == ("residual", "relu"))
    assert residual.flops(4) == 2 * 4 * 16 * 4 * 4 * 16 * 9  # n * O * oh * ow * C * KH * KW, twice
    assert residual.bytes_moved(4) == 4 * (4 * 16 * 16 + 16 * 16 * 9 + 2 * 4 * 16 * 16)  # data, weight, out, residual
    assert mean.bytes_moved(4) == 4 * 4 * 16 * 4 * 4


def test_extract_tasks_leaves_out_buckets_too_big_to_measure(caplog):
    """Batch, height and width on the diagonal at 512: the residual conv would move ~4 GiB. Left out, said."""
    with caplog.at_level("WARNING", logger="nimble.tasks"):
        tasks = extract_tasks(conv_case(), buckets="n=1:16,257:512")
    convs = [t for t in tasks if t.template == "conv2d"]
    assert [str(t.bucket).split(",")[0] for t in convs] == ["d0_0=1..16", "d0_0=1..16"]
    assert "left out" in caplog.text and "GiB" in caplog.text
    everything = extract_tasks(conv_case(), buckets="n=1:16,257:512", max_bytes=None)
    assert len([t for t in everything if t.template == "conv2d"]) == 4


@pytest.mark.parametrize("template", sorted(CASES))
def test_a_record_of_each_new_task_kind_flows_into_the_compiled_model(tmp_path, template):
    make, values, probe = CASES[template]
    mod = make()
    task = next(t for t in extract_tasks(mod, buckets="n=1:4,5:16") if t.template == template
                and str(t.bucket).startswith("d0_0=5..16"))
    db = Database(tmp_path / "records.db")
    db.add_records([record(task, values)])
    exe = nimble.compile(mod, records=db)
    names = [p.name for p in exe.packed if template in p.name or (template == "reduce" and p.name.endswith("mean"))]
    why = exe.explain(names[0], probe)
    want = task.space.config(**{**task.fallback().values, **values}).to_json()
    assert why["source"] == "record" and why["bucket"] == str(task.bucket) and why["config"] == want
    assert why["config"] != task.fallback().to_json()
    small = exe.explain(names[0], (1,) + probe[1:])  # outside the record's bucket: the fallback config
    assert small["source"] == "fallback"
    vm = nimble.VirtualMachine(exe)
    for n in (1, 3, 7):
        x = f32(n, probe[1], 5 + n, 6)
        want = conv_reference(x) if template == "conv2d" else x.astype(np.float64).mean(axis=(2, 3))
        np.testing.assert_allclose(vm.run(x), want, rtol=1e-4, atol=1e-4)


def test_without_records_conv2d_runs_one_fallback_kernel_configured_as_before():
    exe = nimble.compile(conv_case(), records=None)
    name = next(p.name for p in exe.packed if "conv2d" in p.name)
    why = exe.explain(name, (2, 8, 9, 9))
    assert why["source"] == "fallback" and why["config"]["tile_w"] == 32  # the 56-wide output the fallback assumes


@functools.lru_cache(maxsize=None)
def _compiled(op, axes, keepdims):
    x = ir.var("x", shape=(Any, Any, Any))
    mod = module([x], getattr(nb, op)(x, axis=axes, keepdims=keepdims))
    [mt] = model_tasks(mod)
    assert mt.template == "reduce"
    return nimble.VirtualMachine(nimble.compile(mod, records=None))


REDUCTIONS = [(op, axes, keepdims) for op in ("sum", "mean", "max", "min")
              for axes, keepdims in (((2,), False), ((0,), True), ((0, 2), False), (None, False))]


@pytest.mark.parametrize("op,axes,keepdims", REDUCTIONS)
@settings(max_examples=12, deadline=None)
@given(a=SIZES, b=st.sampled_from([1, 2, 5, 17]), c=SIZES)
def test_reductions_in_a_model_match_numpy_at_every_size(op, axes, keepdims, a, b, c):
    reduced = [(a, b, c)[k] for k in (axes if axes is not None else (0, 1, 2))]
    if op in ("max", "min") and 0 in reduced:
        return  # numpy has no max of nothing
    x = f32(a, b, c)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's mean of nothing is NaN, with a warning
        want = getattr(np, op)(x.astype(np.float64), axis=axes, keepdims=keepdims)
    got = _compiled(op, axes, keepdims).run(x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1, *reduced))


@functools.lru_cache(maxsize=None)
def _conv_vm():
    return nimble.VirtualMachine(nimble.compile(conv_case(), records=None))


@settings(max_examples=15, deadline=None)
@given(n=st.sampled_from([0, 1, 2, 3, 7]), h=st.sampled_from([1, 2, 3, 7, 13, 31, 64]),
       w=st.sampled_from([1, 2, 3, 7, 13, 31, 67]))
def test_conv2d_groups_in_a_model_match_numpy_at_every_size(n, h, w):
    x = f32(n, 8, h, w)
    np.testing.assert_allclose(_conv_vm().run(x), conv_reference(x), rtol=1e-4, atol=1e-3)


TINY_CNN = """
import numpy as np
from nimble import ir, ops as nb
from nimble.ir import Any

W = np.random.default_rng(1).standard_normal((8, 4, 3, 3)).astype('float32')
B = np.random.default_rng(2).standard_normal((8, 1, 1)).astype('float32')

def build():
    x = ir.var('x', shape=(Any, 4, 10, 10))
    b = ir.Builder()
    h = b.let('h', nb.relu(nb.add(nb.conv2d(x, ir.const(W), padding=(1, 1)), ir.const(B))))
    p = b.let('p', nb.add(nb.mean(h, axis=(2, 3)), nb.max(h, axis=(2, 3))))  # h used twice: max stays alone
    mod = ir.IRModule()
    mod.define('main', ir.Function([x], b.ret(p)))
    return mod
"""


def test_nimble_tune_model_tunes_a_tiny_cnn_and_compile_uses_each_best_record(tmp_path, monkeypatch):
    import sys

    from nimble.cli import tune as tune_cli

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "tiny_cnn_model.py").write_text(TINY_CNN)
    db = tmp_path / "t.db"
    try:
        rc = tune_cli.main(["--model", "tiny_cnn_model:build", "--bucket", "n=1..4", "--trials", "3",
                            "--tuner", "random", "--db", str(db), "--repeat", "2", "--min-repeat-ms", "1",
                            "--parallel", "0", "--no-progress", "--no-busy-check"])
        model = sys.modules["tiny_cnn_model"]
        mod = model.build()
    finally:
        sys.modules.pop("tiny_cnn_model", None)
    assert rc == 0
    records = Database(db).records()
    assert {(r.workload.template, str(r.bucket)) for r in records} == {("conv2d", "d0_0=1..4"), ("reduce", "d0_0=1..4")}
    exe = nimble.compile(mod, records=db)
    for template, suffix in (("conv2d", "conv2d_add_relu"), ("reduce", "max")):
        name = next(p.name for p in exe.packed if p.name.endswith(suffix))
        why = exe.explain(name, (3, 4, 10, 10) if template == "conv2d" else (3, 8, 10, 10))
        best = min((r for r in records if r.workload.template == template), key=lambda r: r.mean_cost)
        assert why["source"] == "record" and why["config"] == dict(best.config)
    x = f32(3, 4, 10, 10)
    h = np.maximum(np_conv2d(x, model.W, 1) + model.B[None], 0)
    np.testing.assert_allclose(nimble.VirtualMachine(exe).run(x), h.mean(axis=(2, 3)) + h.max(axis=(2, 3)),
                               rtol=1e-4, atol=1e-4)


def test_conv2d_records_over_boxes_of_batch_and_width_key_a_multi_dim_table(tmp_path):
    """Records bucketed per (batch, height, width) box (``nimble-tune --bucket d0_0=.. --bucket d0_3=..``) pick
    each box's kernel; points outside every box run the fallback."""
    from nimble.tuner.task import Task

    mod = conv_case()
    sig = model_tasks(mod)[0].signature
    boxes = {"d0_0=1..4,d0_2=1..64,d0_3=1..16": {"tile_w": 8, "tile_oc": 1, "parallel": "batch"},
             "d0_0=1..4,d0_2=1..64,d0_3=17..64": {"tile_w": 64, "tile_oc": 2, "parallel": "batch"}}
    db = Database(tmp_path / "records.db")
    db.add_records([record(Task("conv2d", sig, "llvm", key), values) for key, values in boxes.items()])
    exe = nimble.compile(mod, records=db)
    name = next(p.name for p in exe.packed if p.name.endswith("conv2d_add_relu"))
    vm = nimble.VirtualMachine(exe)
    narrow, wide = boxes
    for (n, h, w), key in (((2, 9, 9), narrow), ((3, 5, 40), wide), ((6, 9, 9), None)):
        why = exe.explain(name, {"d0_0": n, "d0_2": h, "d0_3": w})
        if key is None:
            assert why["source"] == "fallback"
        else:
            assert why["source"] == "record" and why["bucket"] == key
            assert {k: why["config"][k] for k in boxes[key]} == boxes[key]
        x = f32(n, 8, h, w)
        np.testing.assert_allclose(vm.run(x), conv_reference(x), rtol=1e-4, atol=1e-3)
