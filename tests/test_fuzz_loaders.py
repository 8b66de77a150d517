"""Brief fuzzing of the loaders and ``from_onnx`` (``scripts/fuzz_loaders.py`` runs the same targets for minutes)."""
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent / "bad_inputs"))
from fuzz_targets import JsonlTarget, damaged_executables, jsonl_texts, load_target

FAST = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FAST
@given(damaged_executables())
def test_a_damaged_executable_loads_or_is_a_format_error(data):
    load_target(data)


_JSONL = []


@FAST
@given(jsonl_texts())
def test_every_jsonl_line_is_imported_or_reported(text):
    if not _JSONL:
        _JSONL.append(JsonlTarget())
    _JSONL[0](text)


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_a_mutated_onnx_model_is_a_nimble_error_or_runs_like_onnx_runtime(data):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx_fuzz import HypothesisChooser, check_drawn

    check_drawn(HypothesisChooser(data))  # raises Finding on a raw exception or a result unlike ONNX Runtime's


def test_every_onnx_fuzz_seed_converts_and_matches_onnx_runtime():
    pytest.importorskip("onnxruntime")
    import onnx
    from onnx_fuzz import check, seeds

    assert [check(onnx.ModelProto.FromString(s), f"seed {i}") for i, s in enumerate(seeds())] == ["correct"] * len(seeds())
