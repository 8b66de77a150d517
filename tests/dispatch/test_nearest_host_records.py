"""A host without records compiles with the nearest host's (when trusted) and ``explain`` says whose."""
import dataclasses

import pytest

from test_dispatch import K, M, dense_name, model, record

import nimble
from nimble.schedules.dense import dense_signature
from nimble.tuner import Database, host_fingerprint
from nimble.tuner.task import Task

pytestmark = pytest.mark.usefixtures("avx2_gemm")  # their tables name AVX2's tile heights


def _task():
    return Task("dense", dense_signature("n", K, M, bias=True, epilogue=["relu"], weight="const"), "llvm", "n=1..64")


def _lacked(here) -> tuple:
    """Codegen features this host lacks: AVX-512's, or on an AVX-512 host a later extension's."""
    return ("avx512f", "avx512vl") if "avx512f" not in here.features else ("avx10.2-512",)


def _hosts():
    here = host_fingerprint("llvm")
    twin = dataclasses.replace(here, cpu_model="A Fake Twin CPU [fake]", cores=here.cores * 2)  # same ISA, threads
    wider = dataclasses.replace(here, cpu_model="A Fake AVX-512 CPU [fake]",
                                features=here.features + _lacked(here))
    other_threads = dataclasses.replace(twin, cpu_model="Fake CPU at other threads", threads=here.threads + 3)
    return here, twin, wider, other_threads


def test_a_trusted_nearest_host_record_flows_into_compile_and_explain_names_it(tmp_path):
    _, twin, wider, _ = _hosts()
    db = Database(tmp_path / "r.db")
    db.add_records([record(_task(), "n=1..64", 3, 16, 2e-5, host=twin),
                    record(_task(), "n=1..64", 5, 32, 1e-5, host=wider)])  # cheaper, but needs AVX-512
    exe = nimble.compile(model(), records=db)
    info = exe.explain(dense_name(exe), (8, K))
    assert info["source"] == "nearest-host" and info["config"]["tile_rows"] == 3
    assert info["host"].startswith("A Fake Twin CPU [fake]") and f"#{twin.id}" in info["host"]
    text = str(info)
    assert "config from the record of the nearest host" in text and "A Fake Twin CPU [fake]" in text
    exe.save(tmp_path / "m.nimble")
    assert nimble.Executable.load(tmp_path / "m.nimble").explain(dense_name(exe), (8, K)) == info


def test_records_of_a_wider_isa_are_used_only_when_accepted_and_after_compatible_ones(tmp_path):
    here, _, wider, other_threads = _hosts()
    db = Database(tmp_path / "r.db")
    db.add_records([record(_task(), "n=1..64", 5, 32, 1e-5, host=wider)])
    exe = nimble.compile(model(), records=db)
    assert exe.explain(dense_name(exe), (8, K))["source"] == "fallback"  # AVX-512 configs: never by default
    info = nimble.compile(model(), records=db, accept_foreign=True).explain(dense_name(exe), (8, K))
    assert info["source"] == "foreign" and info["config"]["tile_rows"] == 5
    assert "which this host lacks" in str(info) and _lacked(here)[0] in info["host"]
    db.add_records([record(_task(), "n=1..64", 2, 16, 9e-5, host=other_threads)])  # slower, but compatible
    info = nimble.compile(model(), records=db, accept_foreign=True).explain(dense_name(exe), (8, K))
    assert info["source"] == "foreign" and info["config"]["tile_rows"] == 2
    assert info["host"].startswith("Fake CPU at other threads") and "lacks" not in info["host"]
    db.add_records([record(_task(), "n=1..64", 4, 16, 5e-5, host=here)])
    info = nimble.compile(model(), records=db, accept_foreign=True).explain(dense_name(exe), (8, K))
    assert info["source"] == "record" and info["host"] == "" and info["config"]["tile_rows"] == 4
