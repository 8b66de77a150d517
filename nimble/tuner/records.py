"""Tuning records and their JSON Lines format (``"format": "nimble-record", "version": 1``).

A record is one measured config of one workload in one bucket on one target and host, with
its costs or its error. One record is one self-describing line of JSON (keys sorted)::

    {"bucket": "n=33..64", "config": {"tile_x": 16}, "config_index": 17,
     "costs": [0.00121, 0.00119], "error_kind": null, "error_message": "",
     "flops": 8388608.0, "format": "nimble-record", "host": {...}, "mean_cost": 0.0012,
     "nimble_version": "0.1.0", "target": "llvm -mcpu=znver4",
     "timestamp": "2026-11-28T10:11:12.123456Z", "tuner": "xgb", "version": 1,
     "workload": {"args": [...], "attrs": {}, "target": "llvm", "template": "dense"}}

Fields (all required unless marked optional):

- ``format``: the string ``"nimble-record"``; ``version``: the int ``1``.
- ``workload``: the workload key (``WorkloadKey.to_json``: template, args, target, attrs).
- ``bucket``: the bucket key string (``BucketKey``: ``"n=33..64"``, ``"m=1..8,n=9..16"``, ``"static"``).
- ``target``: the full target string the kernel was built for.
- ``host``: the hardware fingerprint (``HostFingerprint.to_json``; its ``id`` is checked).
- ``config``: the config as a JSON object (knob name -> value); ``config_index``: int >= 0,
  its index in the template's config space.
- ``costs``: seconds per repeat (positive finite numbers); non-empty unless ``error_kind`` is set.
- ``mean_cost`` (optional on input): mean of ``costs``, or null for an error; checked if present.
- ``error_kind``: null, or one of ``ERROR_KINDS``; ``error_message``: text (may be empty).
- ``timestamp``: ISO 8601 UTC time of the measurement, e.g. ``"2026-11-28T10:11:12.123456Z"``.
- ``nimble_version``: version of nimble that measured it; ``tuner``: name of the search
  (``"xgb"``, ``"random"``, ``"grid"`` ...).
- ``flops`` (optional): floating-point operations of one run at the bucket's representative,
  so GFLOP/s can be shown; null or absent when unknown.
- ``user`` (optional): who measured it, ``user@machine`` of the tuning process (provenance
  beside ``host``, ``nimble_version`` and ``timestamp``); absent when unknown.
- ``cache`` (optional): ``"cold"`` when each call found its arguments out of cache (``MeasureOptions.
  cold_cache``: as in a model whose other layers stream through the cache in between), ``"warm"`` when
  repeats reused them; absent when unknown (records before the field, treated as warm).

Unknown fields, a wrong ``format`` or ``version``, or a field of the wrong type are
``FormatError`` s naming the field. See ``docs/records.md``.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from types import MappingProxyType
from typing import IO, Any

from ..version import __version__
from ..errors import FormatError
from .buckets import BucketKey
from .fingerprint import HostFingerprint
from .workload import WorkloadKey, canonical_json, sha256_hex

RECORD_FORMAT = "nimble-record"
RECORD_VERSION = 1
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class ErrorKind(StrEnum):
    """Why a measurement produced no cost."""

    BUILD = "build"  # lowering or compilation failed
    RUNTIME = "runtime"  # the kernel raised or returned an error code
    TIMEOUT = "timeout"  # build or run exceeded its time limit
    CRASH = "crash"  # the measuring process died (segfault, OOM)
    WRONG_RESULT = "wrong_result"  # output differed from the reference
    INVALID_CONFIG = "invalid_config"  # the config violates a constraint of the template
    UNKNOWN = "unknown"


ERROR_KINDS = tuple(k.value for k in ErrorKind)
_REQUIRED = (
    "format", "version", "workload", "bucket", "target", "host", "config", "config_index",
    "costs", "error_kind", "error_message", "timestamp", "nimble_version", "tuner",
)
_OPTIONAL = ("mean_cost", "flops", "user", "cache")
CACHE_MODES = ("cold", "warm")


def format_timestamp(when: datetime) -> str:
    """``when`` as ISO 8601 UTC with microseconds and a ``Z``."""
    if when.tzinfo is None:
        raise FormatError(f"timestamp: expected a timezone-aware datetime, got naive {when!r}")
    return when.astimezone(timezone.utc).strftime(_TIME_FORMAT)


def current_user() -> str:
    """``user@machine`` of this process, the ``user`` provenance of the records it measures."""
    import getpass
    import socket

    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{name}@{socket.gethostname()}"


def now_timestamp() -> str:
    """The current time in the record timestamp format."""
    return format_timestamp(datetime.now(timezone.utc))


def _bad(name: str, expected: str, value: Any) -> FormatError:
    text = repr(value)
    return FormatError(f"record field {name!r}: expected {expected}, got {text[:120]}")


def _parse_timestamp(value: Any) -> str:
    if not isinstance(value, str):
        raise _bad("timestamp", "an ISO 8601 string", value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _bad("timestamp", "an ISO 8601 string such as '2026-11-28T10:11:12.000000Z'", value) from None
    if parsed.tzinfo is None:
        raise _bad("timestamp", "a time with a timezone ('Z' for UTC)", value)
    return format_timestamp(parsed)


CONFIRM_TUNER = "confirm"  # ``tuner`` of records re-measuring a bucket's best beside its fallback (``tune.TaskTuner.confirm``)


@dataclass(frozen=True)
class TuningRecord:
    """One measured config of ``workload`` in ``bucket`` on ``target``/``host``, with costs or an error."""

    workload: WorkloadKey
    bucket: str
    target: str
    host: HostFingerprint
    config: Mapping[str, Any] = field(hash=False)
    config_index: int
    costs: tuple[float, ...] = ()
    error_kind: str | None = None
    error_message: str = ""
    timestamp: str = field(default_factory=now_timestamp)
    nimble_version: str = __version__
    tuner: str = ""
    flops: float | None = None
    user: str | None = None
    cache: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.workload, WorkloadKey):
            raise _bad("workload", "a WorkloadKey", self.workload)
        if not isinstance(self.host, HostFingerprint):
            raise _bad("host", "a HostFingerprint", self.host)
        if isinstance(self.bucket, BucketKey):
            object.__setattr__(self, "bucket", str(self.bucket))
        if not isinstance(self.bucket, str):
            raise _bad("bucket", "a bucket key string such as 'n=33..64'", self.bucket)
        object.__setattr__(self, "bucket", str(BucketKey.parse(self.bucket)))
        for name in ("target", "error_message", "nimble_version", "tuner"):
            if not isinstance(getattr(self, name), str):
                raise _bad(name, "a string", getattr(self, name))
        if not self.target.strip():
            raise _bad("target", "a non-empty target string", self.target)
        if not isinstance(self.config, Mapping):
            raise _bad("config", "a JSON object", self.config)
        object.__setattr__(self, "config", MappingProxyType(json.loads(canonical_json(dict(self.config)))))
        if isinstance(self.config_index, bool) or not isinstance(self.config_index, int) or self.config_index < 0:
            raise _bad("config_index", "an int >= 0", self.config_index)
        if self.error_kind is not None and self.error_kind not in ERROR_KINDS:
            raise _bad("error_kind", f"null or one of {list(ERROR_KINDS)}", self.error_kind)
        if self.error_kind is not None:
            object.__setattr__(self, "error_kind", str(self.error_kind))
        if isinstance(self.costs, (str, bytes)) or not isinstance(self.costs, Iterable):
            raise _bad("costs", "a list of seconds", self.costs)
        costs = tuple(self.costs)
        for c in costs:
            if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or c <= 0:
                raise _bad("costs", "positive finite seconds", c)
        if self.error_kind is None and not costs:
            raise _bad("costs", "a non-empty list of seconds when error_kind is null", list(costs))
        object.__setattr__(self, "costs", tuple(float(c) for c in costs))
        object.__setattr__(self, "timestamp", _parse_timestamp(self.timestamp))
        if self.flops is not None:
            if isinstance(self.flops, bool) or not isinstance(self.flops, (int, float)) or not self.flops >= 0:
                raise _bad("flops", "null or a number >= 0", self.flops)
            object.__setattr__(self, "flops", float(self.flops))
        if self.user is not None and not isinstance(self.user, str):
            raise _bad("user", "null or a string such as 'ana@host3'", self.user)
        if self.cache is not None and self.cache not in CACHE_MODES:
            raise _bad("cache", f"null or one of {list(CACHE_MODES)}", self.cache)

    @property
    def ok(self) -> bool:
        """True when the measurement succeeded (no error kind)."""
        return self.error_kind is None

    @property
    def mean_cost(self) -> float | None:
        """Mean of ``costs`` in seconds, or None for an error record."""
        return sum(self.costs) / len(self.costs) if self.ok else None

    @property
    def gflops(self) -> float | None:
        """GFLOP/s at ``mean_cost`` when ``flops`` is known (else from a numeric workload attr ``flops``)."""
        flops = self.flops if self.flops is not None else self.workload.attrs.get("flops")
        if not self.ok or not isinstance(flops, (int, float)) or isinstance(flops, bool):
            return None
        return flops / self.mean_cost / 1e9

    def to_json(self) -> dict[str, Any]:
        """The JSON object of one line of the record format."""
        obj = {
            "format": RECORD_FORMAT,
            "version": RECORD_VERSION,
            "workload": self.workload.to_json(),
            "bucket": self.bucket,
            "target": self.target,
            "host": self.host.to_json(),
            "config": dict(self.config),
            "config_index": self.config_index,
            "costs": list(self.costs),
            "mean_cost": self.mean_cost,
            "error_kind": self.error_kind,
            "error_message": self.error_message,
            "timestamp": self.timestamp,
            "nimble_version": self.nimble_version,
            "tuner": self.tuner,
        }
        if self.flops is not None:
            obj["flops"] = self.flops
        if self.user is not None:
            obj["user"] = self.user
        if self.cache is not None:
            obj["cache"] = self.cache
        return obj

    def to_line(self) -> str:
        """One line of JSON (no trailing newline)."""
        return canonical_json(self.to_json())

    @property
    def digest(self) -> str:
        """sha256 of the canonical line: equal digests mean duplicate records."""
        return sha256_hex(self.to_line())

    @classmethod
    def from_json(cls, obj: Any) -> TuningRecord:
        """Validate and parse one record object; FormatError names the offending field."""
        if not isinstance(obj, Mapping):
            raise FormatError(f"record: expected a JSON object, got {type(obj).__name__}")
        if obj.get("format") != RECORD_FORMAT:
            raise _bad("format", repr(RECORD_FORMAT), obj.get("format"))
        if obj.get("version") != RECORD_VERSION:
            raise _bad("version", f"{RECORD_VERSION} (this nimble reads record version {RECORD_VERSION})",
                       obj.get("version"))
        missing = [f for f in _REQUIRED if f not in obj]
        if missing:
            raise FormatError(f"record: missing field(s) {missing}")
        unknown = sorted(set(obj) - set(_REQUIRED) - set(_OPTIONAL))
        if unknown:
            raise FormatError(f"record: unknown field(s) {unknown}")
        if not isinstance(obj["costs"], list):
            raise _bad("costs", "a list of seconds", obj["costs"])
        try:
            workload = WorkloadKey.from_json(obj["workload"])
        except FormatError as exc:
            raise FormatError(f"record field 'workload': {exc}") from None
        try:
            host = HostFingerprint.from_json(obj["host"])
        except FormatError as exc:
            raise FormatError(f"record field 'host': {exc}") from None
        record = cls(
            workload=workload, bucket=obj["bucket"], target=obj["target"], host=host,
            config=obj["config"], config_index=obj["config_index"], costs=obj["costs"],
            error_kind=obj["error_kind"], error_message=obj["error_message"], timestamp=obj["timestamp"],
            nimble_version=obj["nimble_version"], tuner=obj["tuner"], flops=obj.get("flops"),
            user=obj.get("user"), cache=obj.get("cache"),
        )
        stated = obj.get("mean_cost")
        actual = record.mean_cost
        if stated is not None or actual is None:
            consistent = stated is None if actual is None else (
                isinstance(stated, (int, float)) and math.isclose(stated, actual, rel_tol=1e-9))
            if not consistent:
                raise _bad("mean_cost", f"the mean of 'costs' ({actual})", stated)
        return record

    @classmethod
    def from_line(cls, line: str) -> TuningRecord:
        """Parse one JSON line of the record format."""
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FormatError(f"record: expected one JSON object per line, got invalid JSON: {exc}") from None
        return cls.from_json(obj)


@dataclass(frozen=True)
class MalformedLine:
    """A line of a JSON Lines file that was skipped, with why."""

    line_number: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line_number}: {self.message}"


@dataclass
class ImportReport:
    """What an import or merge did: records added, duplicates skipped, malformed lines skipped."""

    added: int = 0
    duplicates: int = 0
    malformed: list[MalformedLine] = field(default_factory=list)


def read_jsonl(stream: IO[str]) -> Iterator[tuple[int, TuningRecord | MalformedLine]]:
    """Yield ``(line number, record or MalformedLine)`` for each non-blank line (numbered from 1)."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            yield number, TuningRecord.from_line(line)
        except FormatError as exc:
            yield number, MalformedLine(number, str(exc))
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError) as exc:
            yield number, MalformedLine(number, f"not a record ({type(exc).__name__}: {exc})"[:400])


def write_jsonl(records: Iterable[TuningRecord], stream: IO[str]) -> int:
    """Write one line per record; returns how many were written."""
    count = 0
    for record in records:
        stream.write(record.to_line() + "\n")
        count += 1
    return count
