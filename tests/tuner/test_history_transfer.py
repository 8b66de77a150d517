"""Transfer across workloads: the records of a template's other workloads (``tuner.history``) teach the
xgb cost model to rank a workload it never measured. Real measurements: the shipped records of a Zen 4
host (six BERT-base dense workloads, four buckets each), whatever CPU runs this test."""
import dataclasses

import numpy as np
import pytest

from nimble.dispatch.build import SHIPPED_RECORDS_DIR
from nimble.schedules.registry import Signature
from nimble.tuner import Database
from nimble.tuner.cost_model import XGBTuner
from nimble.tuner.history import cached_features, learn_other_buckets, learn_same_template
from nimble.tuner.records import read_jsonl
from nimble.tuner.task import Task

pytest.importorskip("xgboost")
RECORDS = SHIPPED_RECORDS_DIR / "llvm-amd-epyc-znver4.jsonl"


def _spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """(database of the shipped dense records with a symbolic n, their host, the records)."""
    with open(RECORDS) as f:
        records = [r for _, r in read_jsonl(f) if getattr(r, "error_kind", "x") is None
                   and r.workload.template == "dense" and "n" in r.workload.symbolic_dims]
    db = Database(tmp_path_factory.mktemp("history") / "shipped.db")
    db.add_records(records)
    return db, records[0].host, records


def _task(key, bucket) -> Task:
    return Task("dense", Signature.make([(a.shape, a.dtype) for a in key.args], **dict(key.attrs)), "llvm", bucket)


def _own(records, key, bucket):
    return [r for r in records if r.workload == key and str(r.bucket) == bucket]


def test_there_are_several_workloads_to_transfer_between(shipped):
    db, _, records = shipped
    keys = db.workloads()
    assert len(keys) >= 4
    for key in keys:
        buckets = {str(r.bucket) for r in records if r.workload == key}
        assert len(buckets) >= 3
        ys = [r.flops / r.mean_cost for r in records if r.workload == key]
        assert max(ys) / min(ys) > 1.3  # configs differ: ranking them means something


def test_learn_same_template_teaches_other_workloads_only(shipped):
    db, host, records = shipped
    key = db.workloads()[0]
    task = _task(key, str(records[[r.workload for r in records].index(key)].bucket))
    tuner = XGBTuner(task)
    taught = learn_same_template(task, db, host, tuner, max_workloads=2, per_workload=10)
    assert taught == len(tuner.xs) == len(tuner.ys) == len(tuner.groups) == 20
    own = {f"{key.hash}/{b}" for b in {str(r.bucket) for r in records}}
    assert not own & set(tuner.groups)  # never its own workload
    assert len({g.split("/")[0] for g in tuner.groups}) == 2
    assert all(y > 0 for y in tuner.ys)


def test_learn_same_template_reads_nothing_of_another_host_or_template(shipped):
    db, host, records = shipped
    key = db.workloads()[0]
    task = _task(key, "n=1..16")
    other_host = dataclasses.replace(host, threads=host.threads + 1)  # records are keyed by thread count too
    assert learn_same_template(task, db, other_host, XGBTuner(task)) == 0
    softmax_task = Task("softmax", Signature.make([(("n", 768), "float32")]), "llvm", "n=1..16")
    assert learn_same_template(softmax_task, db, host, XGBTuner(softmax_task)) == 0


def test_other_workloads_rank_a_workload_never_measured(shipped):
    """Held out: one workload, all its buckets. Taught: the other workloads. Grouped by task, the model ranks
    the held-out measurements well above chance, and above a model trained on shuffled throughputs."""
    db, host, records = shipped
    rhos, controls = [], []
    rng = np.random.default_rng(0)
    for key in db.workloads():
        for bucket in sorted({str(r.bucket) for r in records if r.workload == key}):
            task = _task(key, bucket)
            tuner = XGBTuner(task)
            assert learn_same_template(task, db, host, tuner) > 0
            own = _own(records, key, bucket)
            xs = np.stack([cached_features(task, task.space.recorded(r.config_index, dict(r.config))) for r in own])
            ys = np.array([task.flops() / r.mean_cost for r in own])
            tuner.model.fit(np.stack(tuner.xs), np.array(tuner.ys), tuner._group_ids())
            rhos.append(_spearman(tuner.model.predict(xs), ys))
            shuffled = np.array(tuner.ys)[rng.permutation(len(tuner.ys))]
            tuner.model.fit(np.stack(tuner.xs), shuffled, tuner._group_ids())
            controls.append(_spearman(tuner.model.predict(xs), ys))
    print(f"rank correlation from other workloads: mean {np.mean(rhos):.2f} (control {np.mean(controls):.2f}) "
          f"over {len(rhos)} held-out tasks")
    assert np.mean(rhos) >= 0.45, rhos
    assert np.mean(rhos) > np.mean(controls) + 0.3, (rhos, controls)


def test_other_buckets_and_other_workloads_together(shipped):
    """A task with both sources: its workload's other buckets and the template's other workloads."""
    db, host, records = shipped
    key = db.workloads()[1]
    bucket = sorted({str(r.bucket) for r in records if r.workload == key})[0]
    task = _task(key, bucket)
    tuner = XGBTuner(task)
    same = learn_other_buckets(task, db, host, tuner)
    other = learn_same_template(task, db, host, tuner)
    assert same > 0 and other > 0
    assert len(set(tuner.groups)) >= 3 + 4  # 3 other buckets, 4 other workloads x their buckets
    own = _own(records, key, bucket)
    xs = np.stack([cached_features(task, task.space.recorded(r.config_index, dict(r.config))) for r in own])
    tuner.model.fit(np.stack(tuner.xs), np.array(tuner.ys), tuner._group_ids())
    assert _spearman(tuner.model.predict(xs), [task.flops() / r.mean_cost for r in own]) > 0.2
