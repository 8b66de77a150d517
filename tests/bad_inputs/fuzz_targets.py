"""Fuzz targets for the loaders (hypothesis strategies + the property each must keep).

* ``Executable.load``: random damage to a real executable, raw or re-checksummed (as an attacker
  editing one would), at the byte level, in the JSON header, or in the object code; the load
  (parse, validate, link) must succeed or raise ``FormatError`` — never crash or raise anything else.
* JSONL import: random lines and mutated real records; every line is imported or reported
  malformed, nothing raises.

Used by ``tests/test_fuzz_loaders.py`` (briefly) and ``scripts/fuzz_loaders.py`` (for minutes).
"""
from __future__ import annotations

import functools
import io
import json
import sys
from pathlib import Path

from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "vm"), str(HERE)]

EXECUTIONS = {"executable": 0, "jsonl": 0}


@functools.lru_cache(maxsize=None)
def good_exe() -> bytes:
    from test_vm_programs import broadcast_exe

    from nimble.vm.executable import serialize

    return serialize(broadcast_exe())


# ------------------------------------------------------------------ Executable.load
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                      st.text(max_size=12))
json_value = st.recursive(json_leaf, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), kids, max_size=4)),
                          max_leaves=12)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _set(obj, path, value):
    if not path:
        return value
    parent = obj
    for p in path[:-1]:
        parent = parent[p]
    parent[path[-1]] = value
    return obj


@st.composite
def damaged_executables(draw) -> bytes:
    """A real executable damaged one of four ways (the last three re-checksummed)."""
    from exe_surgery import join, object_sections, replace_section, split

    data = good_exe()
    how = draw(st.sampled_from(["bytes", "bytes+checksum", "header", "object"]))
    if how.startswith("bytes"):
        b = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            op = draw(st.sampled_from(["flip", "set", "cut", "insert"]))
            pos = draw(st.integers(0, max(len(b) - 1, 0)))
            if op == "flip" and b:
                b[pos] ^= 1 << draw(st.integers(0, 7))
            elif op == "set" and b:
                b[pos] = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, 1]))
            elif op == "cut":
                del b[pos:pos + draw(st.integers(1, 64))]
            else:
                b[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        return bytes(b) if how == "bytes" else _rechecksum(bytes(b))
    header, blob = split(data)
    if how == "header":
        paths = list(_paths(header))
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(paths))
            try:
                header = _set(header, path, draw(json_value))
            except (TypeError, KeyError, IndexError):
                pass
            paths = list(_paths(header)) if isinstance(header, (dict, list)) else [()]
        try:
            raw = json.dumps(header, separators=(",", ":")).encode()
        except (ValueError, TypeError):
            raw = b"{}"
        return join(None, blob, raw_header=raw)
    i = draw(st.sampled_from(object_sections(header)))
    o, n = header["sections"][i]
    obj = bytearray(blob[o:o + n])
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, max(len(obj) - 1, 0)))
        if draw(st.booleans()) and obj:  # in the headers, where the parser must catch it
            pos = draw(st.sampled_from([p for p in range(0, min(64, len(obj)))] or [0]))
        op = draw(st.sampled_from(["flip", "set", "cut"]))
        if op == "flip" and obj:
            obj[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and obj:
            obj[pos] = draw(st.integers(0, 255))
        else:
            del obj[pos:pos + draw(st.integers(1, 256))]
    return join(*replace_section(header, blob, i, bytes(obj)))


def _rechecksum(b: bytes) -> bytes:
    """``b`` with its total-length field and trailing sha256 made consistent again."""
    import hashlib
    import struct

    from nimble.vm.executable import _DIGEST, _PREAMBLE

    if len(b) < _PREAMBLE.size + _DIGEST:
        return b
    body = bytearray(b[:-_DIGEST])
    struct.pack_into("<Q", body, 20, len(body) + _DIGEST)
    return bytes(body) + hashlib.sha256(bytes(body)).digest()


def load_target(data: bytes) -> None:
    """Load ``data`` as an executable file: success or ``FormatError``, nothing else."""
    from nimble.errors import FormatError
    from nimble.vm.executable import deserialize

    EXECUTIONS["executable"] += 1
    try:
        exe = deserialize(data, "fuzzed.nvm")
        exe.library()
    except FormatError:
        pass


# ------------------------------------------------------------------ JSONL import
@functools.lru_cache(maxsize=None)
def good_record() -> dict:
    from nimble.tuner.fingerprint import HostFingerprint
    from nimble.tuner.record_check import _space_of
    from nimble.tuner.records import TuningRecord
    from nimble.tuner.workload import WorkloadKey

    key = WorkloadKey("dense", [(("n", 64), "float32"), ((64, 64), "float32")], "llvm")
    host = HostFingerprint("Test CPU", "TestVendor", ("avx2",), 4, 4, "llvm")
    rec = TuningRecord(key, "n=33..64", "llvm", host, _space_of(key.canonical).get(3).to_json(), 3, [1e-3],
                       timestamp="2026-11-28T10:00:00.000001Z", tuner="fuzz")
    return json.loads(rec.to_line())


@st.composite
def jsonl_texts(draw) -> str:
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["mutated", "random_json", "text"]))
        if kind == "mutated":
            rec = json.loads(json.dumps(good_record()))
            paths = [p for p in _paths(rec) if p]
            for _ in range(draw(st.integers(1, 3))):
                try:
                    rec = _set(rec, draw(st.sampled_from(paths)), draw(json_value))
                except (TypeError, KeyError, IndexError):
                    pass
            try:
                lines.append(json.dumps(rec))
            except (TypeError, ValueError):
                lines.append("{}")
        elif kind == "random_json":
            lines.append(json.dumps(draw(json_value)))
        else:
            lines.append(draw(st.text(max_size=200)).replace("\n", " "))
    return "\n".join(lines) + "\n"


class JsonlTarget:
    """Imports texts into one in-memory database; each line is added, a duplicate or reported."""

    def __init__(self):
        from nimble.tuner.db import Database

        self.db = Database("sqlite://")

    def __call__(self, text: str) -> None:
        EXECUTIONS["jsonl"] += 1
        lines = [ln for ln in text.split("\n") if ln.strip()]  # as a file is read: \n only
        report = self.db.import_jsonl(io.StringIO(text))
        assert report.added + report.duplicates + len(report.malformed) == len(lines), (report, lines)
