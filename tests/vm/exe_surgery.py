"""Take an executable file apart and put it back together with a valid checksum, as an attacker
editing one would: the loader's checks, not the checksum, must then stop the damage."""
from __future__ import annotations

import hashlib
import json

from nimble.vm.executable import _DIGEST, _PREAMBLE, FORMAT_VERSION, MAGIC


def split(data: bytes) -> tuple:
    """(header dict, section bytes) of a well-formed file."""
    _, _, header_len, _ = _PREAMBLE.unpack_from(data)
    header = json.loads(data[_PREAMBLE.size:_PREAMBLE.size + header_len])
    return header, data[_PREAMBLE.size + header_len:-_DIGEST]


def join(header, blob: bytes, raw_header: bytes | None = None, version: int = FORMAT_VERSION) -> bytes:
    """A file of ``header`` (or ``raw_header`` bytes) and section bytes, checksummed."""
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    total = _PREAMBLE.size + len(h) + len(blob) + _DIGEST
    body = _PREAMBLE.pack(MAGIC, version, len(h), total) + h + blob
    return body + hashlib.sha256(body).digest()


def object_sections(header) -> list:
    """Indices of the sections holding object code (kernels, also those inside dispatch tables)."""
    out = []

    def walk(p):
        if isinstance(p, dict):
            if p.get("type") == "kernel":
                out.extend(p["objects"])
            for v in p.values():
                walk(v)
        elif isinstance(p, list):
            for v in p:
                walk(v)

    walk(header["packed"])
    return sorted(set(out))


def replace_section(header, blob: bytes, index: int, new: bytes) -> tuple:
    """(header, blob) with section ``index`` replaced by ``new`` (the offsets after it shifted)."""
    secs = [blob[o:o + n] for o, n in header["sections"]]
    secs[index] = new
    offsets, pos = [], 0
    for s in secs:
        offsets.append([pos, len(s)])
        pos += len(s)
    header = dict(header, sections=offsets)
    return header, b"".join(secs)
