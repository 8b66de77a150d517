"""extract_tasks: every templated fused group of a model is a task, with its share of run time."""
import pytest

from nimble.errors import NimbleError
from nimble.models import bert
from nimble.passes.pipeline import default_ir_passes
from nimble.tuner.task import Task
from nimble.vm.tasks import extract_tasks, model_signatures, model_tasks, shares, task_shares

CONFIG = bert.BertConfig(num_layers=2, hidden_size=64, num_heads=4, intermediate_size=128)
NO_ATTENTION = [p for p in default_ir_passes() if p.name != "attention"]


@pytest.fixture(scope="module")
def small_bert():
    return bert.build_module(bert.random_weights(CONFIG), CONFIG)


def test_extract_tasks_of_a_small_bert_lists_every_template_kind_it_uses(small_bert):
    fused = {t.template: t for t in model_tasks(small_bert)}
    assert set(fused) == {"dense", "layer_norm", "attention"}
    unfused = model_tasks(small_bert, NO_ATTENTION)
    assert {t.template for t in unfused} == {"dense", "layer_norm", "softmax", "batch_matmul"}
    by_kind = {t.template: t for t in unfused if t.template != "dense"}
    assert by_kind["softmax"].signature.args == (((4, "d0_1", "d0_2"), "float32"),)
    assert by_kind["batch_matmul"].signature.args == (((4, "n", "k"), "float32"), ((4, "k", 16), "float32"))
    assert by_kind["layer_norm"].calls == 2 * CONFIG.num_layers  # two per layer, one task
    assert fused["attention"].calls == CONFIG.num_layers
    assert len({(t.template, t.signature) for t in unfused}) == len(unfused)  # deduplicated
    assert model_signatures(small_bert, NO_ATTENTION) == [(t.template, t.signature) for t in unfused]


def test_each_signature_is_one_task_per_bucket_on_the_diagonal_of_its_dims(small_bert):
    tasks = extract_tasks(small_bert, buckets="n=1:8,9:32", ir_passes=NO_ATTENTION)
    assert len(tasks) == 2 * len(model_tasks(small_bert, NO_ATTENTION))
    softmax = [t for t in tasks if t.template == "softmax"]
    assert [str(t.bucket) for t in softmax] == ["d0_1=1..8,d0_2=1..8", "d0_1=9..32,d0_2=9..32"]
    assert softmax[1].dims == {"d0_1": 32, "d0_2": 32}
    dense_only = extract_tasks(small_bert, buckets="n=1:8,9:32", ir_passes=NO_ATTENTION, templates={"dense"})
    assert dense_only == [t for t in tasks if t.template == "dense"]
    for task in tasks:  # each is a task the tuner can build and measure
        assert isinstance(task, Task) and task.flops() > 0 and len(task.space) > 1


def test_a_buckets_traffic_points_reach_every_dim_of_the_diagonal(small_bert):
    from nimble.tuner.buckets import Bucket, BucketSpec

    spec = BucketSpec("n", (Bucket("n", 1, 8, 8), Bucket.parse("n=9..32@12*2+30")))
    softmax = [t for t in extract_tasks(small_bert, buckets=spec, ir_passes=NO_ATTENTION) if t.template == "softmax"]
    assert [str(t.bucket) for t in softmax] == ["d0_1=1..8,d0_2=1..8", "d0_1=9..32@12*2+30,d0_2=9..32@12*2+30"]
    assert softmax[1].points() == [({"d0_1": 12, "d0_2": 12}, 2), ({"d0_1": 30, "d0_2": 30}, 1)]


def test_shares_follow_flops_and_bytes_and_sum_to_one(small_bert):
    tasks = model_tasks(small_bert, NO_ATTENTION)
    at_8, at_512 = shares(tasks, 8), shares(tasks, 512)
    assert sum(at_8) == pytest.approx(1) and sum(at_512) == pytest.approx(1)
    kinds = [t.template for t in tasks]
    softmax, bmm = kinds.index("softmax"), kinds.index("batch_matmul")
    assert at_512[softmax] > at_8[softmax] and at_512[bmm] > at_8[bmm]  # quadratic in the length; dense is linear
    s = tasks[softmax]
    assert s.bytes_moved(10) == 8 * 4 * 10 * 10 and s.flops(10) == 5 * 4 * 10 * 10
    dense = next(t for t in tasks if t.template == "dense" and t.signature.attr("epilogue") == ("gelu",))
    assert dense.flops(8) == 2 * 8 * 64 * 128
    assert dense.bytes_moved(8) == 4 * (8 * 64 + 128 * 64 + 128)  # x, the weight, the bias
    ext = extract_tasks(small_bert, buckets="n=1:8", ir_passes=NO_ATTENTION)
    assert task_shares(small_bert, ext, NO_ATTENTION) == pytest.approx(at_8)
    with pytest.raises(NimbleError, match="not a task of the module"):
        attention = [t for t in extract_tasks(small_bert, buckets="n=1:8") if t.template == "attention"]
        task_shares(small_bert, attention, NO_ATTENTION)


def test_profile_shares_time_each_task_of_a_compiled_model():
    import numpy as np

    from nimble import ir
    from nimble import ops as nb
    from nimble.ir import Any
    from nimble.vm.tasks import profile_shares

    x = ir.var("x", shape=(Any, 32))
    g, b = ir.const(np.ones(32, "float32")), ir.const(np.zeros(32, "float32"))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], nb.softmax(nb.layer_norm(x, g, b, axis=-1), axis=-1)))
    rows = profile_shares(mod, (np.ones((64, 32), "float32"),), runs=2)
    assert [mt.template for mt, _, _ in rows] == ["layer_norm", "softmax"]
    assert all(secs > 0 and 0 < share <= 1 for _, secs, share in rows)
    assert 0.5 < sum(share for _, _, share in rows) <= 1 + 1e-9  # all but the VM's own packed helpers
    with pytest.raises(NimbleError, match="runs must be an int >= 1"):
        profile_shares(mod, (np.ones((4, 32), "float32"),), runs=0)
