"""Ed25519 signatures for executable files (optional: needs the ``cryptography`` package).

An executable is code; its checksum catches accidents, a signature catches tampering. The
signature is detached (``model.nvm.sig``, one JSON object) over the file's exact bytes, and
``load_verified`` reads the file once, verifies those bytes and parses the same bytes (no window
for the file to change in between)::

    key = Ed25519PrivateKey.generate()
    save_signed(exe, "model.nvm", key)
    exe = load_verified("model.nvm", trusted_keys=[key.public_key()])
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import FormatError

SIGNATURE_FORMAT = "nimble-signature"
SIGNATURE_VERSION = 1


def _crypto():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise FormatError("signed executables need the 'cryptography' package (pip install cryptography)") from exc
    return Ed25519PrivateKey, Ed25519PublicKey, InvalidSignature


def _raw_public(key) -> bytes:
    _, public_cls, _ = _crypto()
    from cryptography.hazmat.primitives import serialization

    if isinstance(key, (bytes, bytearray)) and len(key) == 32:
        return bytes(key)
    if isinstance(key, public_cls):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raise FormatError(f"trusted key: expected an Ed25519PublicKey or its 32 raw bytes, got {type(key).__name__}")


def key_id(public_key) -> str:
    """Short id of a public key (the first 16 hex digits of the sha256 of its raw bytes)."""
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]


def signature_path(path) -> Path:
    return Path(f"{os.fspath(path)}.sig")


def sign_file(path, signing_key) -> Path:
    """Write ``path``'s detached signature next to it; returns the signature's path."""
    private_cls, _, _ = _crypto()
    if not isinstance(signing_key, private_cls):
        raise FormatError(f"signing_key: expected an Ed25519PrivateKey, got {type(signing_key).__name__}")
    data = Path(path).read_bytes()
    sig = {"format": SIGNATURE_FORMAT, "version": SIGNATURE_VERSION, "key_id": key_id(signing_key.public_key()),
           "sha256": hashlib.sha256(data).hexdigest(), "signature": signing_key.sign(data).hex()}
    out = signature_path(path)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(sig, sort_keys=True) + "\n")
    os.replace(tmp, out)
    return out


def verify_bytes(data: bytes, path, trusted_keys) -> str:
    """The id of the trusted key that signed ``data`` (read from ``path``); FormatError otherwise."""
    _, public_cls, invalid = _crypto()
    keys = [public_cls.from_public_bytes(_raw_public(k)) for k in trusted_keys]
    if not keys:
        raise FormatError(f"{path}: trusted_keys is empty: no signature can be accepted")
    sig_path = signature_path(path)
    try:
        sig = json.loads(sig_path.read_text())
        if not isinstance(sig, dict) or sig.get("format") != SIGNATURE_FORMAT or sig.get("version") != SIGNATURE_VERSION:
            raise ValueError("not a nimble signature")
        signature = bytes.fromhex(sig["signature"])
    except FileNotFoundError:
        raise FormatError(f"{path}: no signature ({sig_path} is missing); the file is unsigned") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"{sig_path}: malformed signature file ({exc})") from None
    for key in keys:
        try:
            key.verify(signature, data)
            return key_id(key)
        except invalid:
            continue
    raise FormatError(f"{path}: the signature does not verify with any of the {len(keys)} trusted keys "
                      f"(signed by key {sig.get('key_id')!r}, or the file was altered)")


def save_signed(exe, path, signing_key) -> Path:
    """``exe.save(path)`` and its signature; returns the signature's path."""
    exe.save(path)
    return sign_file(path, signing_key)


def load_verified(path, trusted_keys):
    """``Executable.load(path)`` for a file signed by one of ``trusted_keys``; FormatError otherwise."""
    from .executable import deserialize

    data = Path(path).read_bytes()
    verify_bytes(data, path, trusted_keys)
    exe = deserialize(data, str(path))
    exe.library()
    if "_native_saved" in exe.__dict__:
        from .native import native_program

        native_program(exe)
    return exe
