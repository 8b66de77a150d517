"""Brief fuzzing of the loaders (``scripts/fuzz_loaders.py`` runs the same targets for minutes)."""
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parent / "bad_inputs"))
from fuzz_targets import JsonlTarget, damaged_executables, jsonl_texts, load_target  # noqa: E402

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
