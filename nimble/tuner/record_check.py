"""Is a record's config one of its template's space? Checked on import and on every read, so that
a record edited or written by another version never becomes a bucket's "best"."""
from __future__ import annotations

import functools
import logging

from ..errors import FormatError, NimbleError
from ..schedules.registry import Signature, TemplateError, get_template
from .records import TuningRecord
from .workload import WorkloadKey, canonical_json

log = logging.getLogger("nimble.tuner")


@functools.lru_cache(maxsize=1024)
def _space_of(canonical: str):
    """The config space of a workload (by canonical JSON), None if its template is not registered here."""
    key = WorkloadKey.from_json(canonical)
    try:
        template = get_template(key.template, key.target.split()[0])
    except TemplateError:
        return None
    sig = Signature.make([(a.shape, a.dtype) for a in key.args], **dict(key.attrs))
    try:
        return template.space(sig)
    except NimbleError as exc:
        return f"the template {key.template!r} has no space for these arguments ({exc})"


def config_problem(record: TuningRecord) -> str | None:
    """Why ``record``'s config is not in its template's space, or None when it is (or when the
    template is not registered in this process: then it cannot be checked here)."""
    space = _space_of(record.workload.canonical)
    if space is None:
        return None
    if isinstance(space, str):
        return space
    if record.config_index >= len(space):
        return f"config_index {record.config_index} is outside the space of {len(space)} configs"
    try:
        space.from_json(dict(record.config))
    except FormatError as exc:
        return f"config {canonical_json(dict(record.config))} is not in the space: {exc}"[:400]
    return None
