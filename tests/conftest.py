"""Suite-wide rules.

- With ``CI`` set (``.ci/run`` sets it), a test skipped because an optional package does not
  import (``pytest.importorskip``) fails instead: CI installs every extra the tests use, so such
  a skip means CI lost coverage silently (the ONNX frontend once ran nowhere).
- The session runs with ``TMPDIR`` pointed at a private folder (worker processes inherit it);
  a ``nimble-measure-*`` folder left there at the end (a ``Measurer`` never closed) is an error.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

MISSING_PACKAGE = ("could not import", "No module named")


def _missing_package_skip(report) -> str | None:
    if not report.skipped or not isinstance(report.longrepr, tuple):
        return None
    reason = str(report.longrepr[2])
    return reason if any(m in reason for m in MISSING_PACKAGE) else None


def _fail_in_ci(report) -> None:
    reason = _missing_package_skip(report)
    if reason is not None and os.environ.get("CI"):
        report.outcome = "failed"
        report.longrepr = (f"skipped for a missing optional package, which CI must install "
                           f"(see .ci/run and pyproject.toml's extras): {reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_in_ci(outcome.get_result())


_PRIVATE_TMP = Path(tempfile.mkdtemp(prefix="nt-"))  # short: Ray puts unix sockets under TMPDIR
os.environ["TMPDIR"] = str(_PRIVATE_TMP)
os.environ["NIMBLE_TEST_TMPDIR"] = str(_PRIVATE_TMP)
tempfile.tempdir = str(_PRIVATE_TMP)


@pytest.fixture(scope="session", autouse=True)
def no_measure_folder_left_behind():
    yield
    left = sorted(p.name for p in _PRIVATE_TMP.glob("nimble-measure-*"))
    assert not left, f"tests left measurement folders behind (a Measurer not closed): {left}"


def pytest_unconfigure(config):
    shutil.rmtree(_PRIVATE_TMP, ignore_errors=True)


@pytest.fixture
def nimble_env(monkeypatch):
    """Set ``NIMBLE_*`` variables for one test, ``nimble_env(NIMBLE_VM="python")`` (None unsets one):
    ``nimble.settings`` reads the environment once, so it is re-read here, and again after the test."""
    from nimble import settings

    def set_env(**values):
        for name, value in values.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        return settings.reload()

    yield set_env
    monkeypatch.undo()
    settings.reload()


@pytest.fixture
def avx2_gemm(monkeypatch):
    """The gemm template's decisions (fallback tile heights, refit) as on an AVX2 host, whatever this host's
    vector ISA: for tests whose expected tables name AVX2's tile heights (4, 5, 6 rows). The kernels run
    anywhere; AVX-512's own heights are tested with the ISA passed explicitly (tests/codegen/test_isa.py)."""
    from nimble.codegen.isa import AVX2
    from nimble.schedules import gemm
    from nimble.tuner.record_check import _space_of

    _space_of.cache_clear()  # spaces depend on the ISA (10- and 12-row tiles on AVX-512): none cached across
    monkeypatch.setattr(gemm, "host_isa", lambda: AVX2)
    yield AVX2
    _space_of.cache_clear()
