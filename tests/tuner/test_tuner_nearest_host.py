"""Records of another CPU: hosts ranked nearest first, and ``tune`` on a new host warm-started from them."""
import dataclasses

import pytest

from nimble.schedules.dense import dense_signature
from nimble.tuner import Database, TuningRecord
from nimble.tuner.cost_model import XGBTuner
from nimble.tuner.fingerprint import HostFingerprint
from nimble.tuner.measure import MeasureResult
from nimble.tuner.nearest_host import match, rank_hosts, vector_isa
from nimble.tuner.task import Task
from nimble.tuner.tune import TuneSummary, _warm_start, fallback_candidates, tune

AVX2 = ("avx", "avx2", "fma", "sse", "sse2", "sse41", "sse42")
HERE = HostFingerprint("Zen 3 [znver3]", "AuthenticAMD", AVX2, 2, 2, "llvm", "test")
ZEN4 = HostFingerprint("Zen 4 [znver4]", "AuthenticAMD", AVX2 + ("avx512f", "avx512bw", "avx512vl"), 2, 2, "llvm", "test")
OTHER_AVX2 = HostFingerprint("Some Intel [haswell]", "GenuineIntel", AVX2, 2, 2, "llvm", "test")
AVX2_4T = dataclasses.replace(OTHER_AVX2, threads=4)
SSE_ONLY = HostFingerprint("Old CPU", "GenuineIntel", ("sse", "sse2", "sse41", "sse42"), 2, 2, "llvm", "test")


def test_vector_isa_is_the_widest_family():
    assert vector_isa(ZEN4) == ("avx512", 512) and vector_isa(HERE) == ("avx2", 256)
    assert vector_isa(SSE_ONLY) == ("sse", 128)
    assert vector_isa(dataclasses.replace(HERE, features=())) == ("scalar", 0)


def test_hosts_rank_compatible_same_isa_same_threads_first_and_avx512_last_on_an_avx2_host():
    ranked = rank_hosts(HERE, [ZEN4, SSE_ONLY, AVX2_4T, OTHER_AVX2, HERE])
    assert [m.host for m in ranked] == [OTHER_AVX2, AVX2_4T, SSE_ONLY, ZEN4]  # HERE itself is left out
    assert [m.trusted for m in ranked] == [True, False, False, False]
    zen4 = match(HERE, ZEN4)
    assert not zen4.compatible and zen4.missing == ("avx512bw", "avx512f", "avx512vl")
    assert "needs avx512bw, avx512f, avx512vl, which this host lacks" in zen4.describe()
    assert match(ZEN4, HERE).compatible and not match(ZEN4, HERE).same_isa  # AVX2 records on an AVX-512 host


class FakeMeasurer:
    """Measures nothing: a config's cost is a fixed function of its tile sizes; remembers batches."""

    def __init__(self, host):
        self._host, self.batches = host, []

    def host(self, target):
        return self._host

    def measure(self, task, batch, on_result=None):
        self.batches.append([c.index for c in batch])
        out = []
        for c in batch:
            r = MeasureResult(c, (1e-4 / (1 + c.values["tile_rows"] * c.values["tile_cols"] / 64),))
            if on_result:
                on_result(r)
            out.append(r)
        return out

    def close(self):
        pass


def _task(bucket="n=1..64"):
    return Task("dense", dense_signature("n", 32, 48, bias=True, epilogue=["relu"], weight="const"), "llvm", bucket)


def _foreign(task, host, n):
    space, fb = task.space, task.fallback()
    recs = []
    for k, (rows, cols) in enumerate([(4, 16), (2, 32), (6, 32), (1, 16), (3, 48)][:n]):
        cfg = space.config(**{**fb.values, "tile_rows": rows, "tile_cols": cols})
        recs.append(TuningRecord(task.workload_key, str(task.bucket), "llvm", host, cfg.to_json(), cfg.index,
                                 costs=(1e-5 * (k + 1),), tuner="test"))
    return recs


def test_a_new_host_starts_from_the_nearest_hosts_records_and_measures_their_best_beside_the_fallback(tmp_path):
    task = _task()
    db = Database(tmp_path / "r.db")
    near, far = _foreign(task, OTHER_AVX2, 5), _foreign(task, ZEN4, 2)
    db.add_records(near + far)
    m = FakeMeasurer(HERE)
    [summary] = tune(task, db, n_trials=12, tuner="random", batch_size=6, measurer=m, progress=False)
    first = m.batches[0]
    fallbacks = [c.index for c in fallback_candidates(task)]  # n=1..64 overlaps the fallback ranges 1, 2..4, >=5
    assert first[:len(fallbacks)] == fallbacks and fallbacks[0] == task.fallback().index and len(fallbacks) == 3
    best = [r.config_index for r in near if r.config_index not in fallbacks][:3]
    assert first[3:6] == best  # the nearest host's three best (but the fallbacks), in order
    assert summary.warm_start.startswith("Some Intel [haswell], 2 threads")
    assert summary.trials == 12 and len(db.records(host=HERE)) == 12


def test_warm_start_only_on_a_host_without_records_of_the_task(tmp_path):
    task = _task()
    db = Database(tmp_path / "r.db")
    db.add_records(_foreign(task, OTHER_AVX2, 3))
    tune(task, db, n_trials=2, batch_size=2, measurer=FakeMeasurer(HERE), progress=False, tuner="random")
    m = FakeMeasurer(HERE)
    [summary] = tune(task, db, n_trials=6, batch_size=4, measurer=m, progress=False, tuner="random")
    assert summary.warm_start == "" and summary.trials == 6 and len(m.batches[0]) == 4


def test_the_cost_model_of_a_new_host_is_trained_on_the_nearest_hosts_records_at_once(tmp_path):
    task = _task()
    db = Database(tmp_path / "r.db")
    db.add_records(_foreign(task, OTHER_AVX2, 5) + _foreign(task, ZEN4, 2) + _foreign(task, SSE_ONLY, 1))
    tuner = XGBTuner(task)
    summary = TuneSummary(str(task), task.workload_key, str(task.bucket), "llvm", float(task.flops()))
    seeds = _warm_start(task, db, HERE, tuner, summary)
    assert len(tuner.ys) == 5 + 1  # the two nearest hosts (haswell, then the SSE one; not the AVX-512 one)
    fallbacks = {c.index for c in fallback_candidates(task)}  # measured anyway, never a seed
    assert [c.index for c in seeds][:1] == [r.config_index for r in _foreign(task, OTHER_AVX2, 5)
                                            if r.config_index not in fallbacks][:1]


def test_cache_sizes_rank_hosts_of_the_same_isa_and_old_records_keep_the_old_rules():
    here = dataclasses.replace(HERE, caches=(("l1d", 32), ("l2", 512), ("l3", 32768)))
    same_caches = dataclasses.replace(OTHER_AVX2, cpu_model="A", caches=here.caches)
    small_l2 = dataclasses.replace(OTHER_AVX2, cpu_model="B", caches=(("l1d", 32), ("l2", 256), ("l3", 32768)))
    tiny_l2 = dataclasses.replace(OTHER_AVX2, cpu_model="C", caches=(("l1d", 32), ("l2", 64), ("l3", 8192)))
    unknown = dataclasses.replace(OTHER_AVX2, cpu_model="D")  # written before caches were fingerprinted
    ranked = rank_hosts(here, [tiny_l2, small_l2, unknown, same_caches])
    assert [m.host.cpu_model for m in ranked[:2]] == ["A", "D"]  # equal caches, then unknown (old rules)
    assert [m.host.cpu_model for m in ranked[2:]] == ["B", "C"]
    assert match(here, small_l2).cache_gap == pytest.approx(1.0) and match(here, small_l2).trusted  # 2x: close
    far = match(here, tiny_l2)
    assert far.cache_gap == pytest.approx(3 + 2) and not far.cache_close and not far.trusted
    assert "caches L1D 32K, L2 64K, L3 8M" in far.describe()
    assert match(here, unknown).cache_gap is None and match(here, unknown).trusted
    assert rank_hosts(HERE, [tiny_l2])[0].trusted  # this host without caches: old rules for every record
