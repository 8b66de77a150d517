"""The default tuner (``xgb``) on real measurements: the shipped records of a Zen 4 host (configs
measured there, whatever CPU runs this test). The model must rank configs it never saw better
than chance, rank a bucket it never saw from the other buckets' records (history), and the
search, started from that history, must find a config within 5% of the best of the bucket's measured table
in its first batch where random picks do worse."""
import json
from collections import defaultdict

import numpy as np
import pytest

from nimble.dispatch.build import SHIPPED_RECORDS_DIR
from nimble.schedules.registry import Signature
from nimble.tuner.cost_model import CostModel, XGBTuner
from nimble.tuner.task import Task

pytest.importorskip("xgboost")
RECORDS = SHIPPED_RECORDS_DIR / "llvm-amd-epyc-znver4.jsonl"


def _spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


@pytest.fixture(scope="module")
def buckets():
    """{bucket: (task, configs, throughputs)} of the dense workload with the most measured buckets."""
    by_workload = defaultdict(lambda: defaultdict(list))
    for line in RECORDS.read_text().splitlines():
        r = json.loads(line)
        if r["workload"]["template"] == "dense" and not r["error_kind"] and r["mean_cost"] \
                and r["host"]["threads"] == 1:
            by_workload[json.dumps(r["workload"], sort_keys=True)][r["bucket"]].append((r["config"], r["mean_cost"]))
    workload, groups = max(by_workload.items(), key=lambda kv: (len(kv[1]), sum(map(len, kv[1].values()))))
    w = json.loads(workload)
    sig = Signature.make([(tuple(a["shape"]), a["dtype"]) for a in w["args"]], **w["attrs"])
    out = {}
    for bucket, rows in groups.items():
        task = Task("dense", sig, "llvm", bucket)
        configs = [task.space.from_json(c) for c, _ in rows]  # recorded before the prefetch knob: its default
        out[bucket] = (task, configs, np.array([task.flops() / cost for _, cost in rows]))
        _FEATURES[bucket] = np.stack([XGBTuner(task).features(c) for c in configs])
    return out


_FEATURES: dict = {}  # bucket -> feature rows of its configs (extracting them lowers each config)


def _features(task, configs):
    return _FEATURES[str(task.bucket)]


def test_there_are_real_tables_to_learn_from(buckets):
    assert len(buckets) >= 3
    for task, configs, ys in buckets.values():
        assert len(configs) >= 20
        assert ys.max() / ys.min() > 1.5  # the configs differ: ranking them means something


def test_ranks_held_out_configs_better_than_chance(buckets):
    xs = np.concatenate([_FEATURES[b] for b in buckets])
    ys = np.concatenate([y / y.max() for _, _, y in buckets.values()])
    rng = np.random.default_rng(0)
    scores, controls = [], []
    for seed in range(3):
        order = rng.permutation(len(ys))
        train, test = order[: len(ys) * 2 // 3], order[len(ys) * 2 // 3:]
        model = CostModel(seed=seed)
        model.fit(xs[train], ys[train])
        scores.append(_spearman(model.predict(xs[test]), ys[test]))
        control = CostModel(seed=seed)  # trained on shuffled throughputs: nothing to learn
        control.fit(xs[train], rng.permutation(ys[train]))
        controls.append(_spearman(control.predict(xs[test]), ys[test]))
    print("held-out rank correlation", np.round(scores, 2), "control", np.round(controls, 2))
    assert np.mean(scores) >= 0.5, scores
    assert np.mean(scores) > np.mean(controls) + 0.3, (scores, controls)


def _history_tuner(buckets, held_out: str, seed: int = 0) -> XGBTuner:
    task = buckets[held_out][0]
    tuner = XGBTuner(task, seed=seed)
    for bucket, (other, configs, ys) in buckets.items():
        if bucket != held_out:
            tuner.xs.extend(_FEATURES[bucket])
            tuner.ys.extend(ys)
    return tuner


def test_load_history_reads_another_buckets_records(buckets):
    (held_out, (task, _, _)), (bucket, (other, configs, ys)) = list(buckets.items())[:2]
    tuner = XGBTuner(task)
    tuner.load_history(other, configs[:3], [other.flops() / y for y in ys[:3]])
    np.testing.assert_allclose(np.stack(tuner.xs), _FEATURES[bucket][:3])
    np.testing.assert_allclose(tuner.ys, ys[:3], rtol=1e-9)


def test_other_buckets_rank_a_bucket_never_measured(buckets):
    rhos = []
    for held_out, (task, configs, ys) in buckets.items():
        tuner = _history_tuner(buckets, held_out)
        tuner.model.fit(np.stack(tuner.xs), np.array(tuner.ys))
        rhos.append(_spearman(tuner.model.predict(_features(task, configs)), ys))
    print("rank correlation from the other buckets", np.round(rhos, 2))
    assert np.mean(rhos) >= 0.4, rhos


def test_search_with_history_finds_a_near_best_config_in_its_first_batch(buckets):
    """Limited to each bucket's measured table (a table, not a machine): xgb with the other
    buckets' history vs uniform random picks of the same number of configs."""
    hits_xgb, hits_random = 0, 0.0
    batch = 2
    for held_out, (task, configs, ys) in buckets.items():
        table = {c.index: y for c, y in zip(configs, ys)}
        best = ys.max()
        tuner = _history_tuner(buckets, held_out)
        tuner.model.fit(np.stack(tuner.xs), np.array(tuner.ys))
        scores = tuner.model.predict(_FEATURES[held_out])
        ranked = [configs[k].index for k in np.argsort(-scores)]
        hits_xgb += max(table[i] for i in ranked[:batch]) >= 0.95 * best
        # random: the probability that `batch` picks without replacement include a near-best config
        good = sum(y >= 0.95 * best for y in ys)
        n = len(ys)
        p_miss = np.prod([(n - good - k) / (n - k) for k in range(batch)]) if n - good >= batch else 0.0
        hits_random += 1 - p_miss
    print(f"near-best in the first batch of {batch}: xgb {hits_xgb}/{len(buckets)}, random {hits_random:.2f}")
    assert hits_xgb >= len(buckets) - 1, (hits_xgb, len(buckets))
    assert hits_xgb > hits_random, (hits_xgb, hits_random)
