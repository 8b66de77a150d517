"""ONNX's backend node test cases through from_onnx -> compile -> VM: a fixed sample (at most ~150 cases, one or
two per claimed operator; `scripts/onnx_node_report.py` runs all of them)."""
import pathlib
import warnings

import pytest

pytest.importorskip("onnx")

from nimble.frontend.onnx import supported_ops  # noqa: E402
from nimble.frontend.onnx_conformance import compare, node_cases, run_case  # noqa: E402

SAMPLE = [line.strip() for line in (pathlib.Path(__file__).parent / "onnx_node_sample.txt").read_text().splitlines()
          if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def cases():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {case.name: case for case in node_cases()}


def test_sample_is_small_and_names_claimed_ops():
    assert 50 <= len(SAMPLE) <= 150
    assert {"MatMul", "Reshape", "Conv", "LSTM", "If"} <= set(supported_ops())


@pytest.mark.parametrize("name", SAMPLE)
def test_node_case_matches_expected_outputs(cases, name):
    if name not in cases:
        pytest.skip(f"{name} is not in this onnx version's node tests")
    result = run_case(cases[name], set(supported_ops()))
    assert result.status == "pass", result.reason
    assert result.reason != "frozen inputs", "passed only with its shape / axes inputs bound to constants"


def test_compare_reports_shape_and_value_differences():
    import numpy as np

    assert compare(np.zeros(3), np.zeros(3)) == ""
    assert "shape" in compare(np.zeros(3), np.zeros(4))
    assert "differ" in compare(np.ones(3, np.float32), np.zeros(3, np.float32))
