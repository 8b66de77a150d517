"""Signed executables: a trusted signature loads, anything else is a FormatError."""
import numpy as np
import pytest
from test_vm_programs import broadcast_exe

import nimble
from nimble.vm import VirtualMachine

ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
from nimble.vm.signing import load_verified, save_signed, signature_path  # noqa: E402


@pytest.fixture
def signed(tmp_path):
    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "b.nvm"
    save_signed(broadcast_exe(), path, key)
    return path, key


def test_a_file_signed_by_a_trusted_key_loads_and_runs(signed):
    path, key = signed
    exe = load_verified(path, trusted_keys=[key.public_key()])
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(VirtualMachine(exe).run(x, np.ones(3, np.float32)), x + 1)


def test_raw_public_key_bytes_are_accepted(signed):
    from cryptography.hazmat.primitives import serialization

    path, key = signed
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    load_verified(path, trusted_keys=[raw])


def test_another_key_is_refused(signed):
    path, _ = signed
    with pytest.raises(nimble.FormatError, match="does not verify"):
        load_verified(path, trusted_keys=[ed25519.Ed25519PrivateKey.generate().public_key()])


def test_an_altered_and_re_checksummed_file_is_refused(signed):
    from exe_surgery import join, split

    path, key = signed
    header, blob = split(path.read_bytes())
    header["entry"] = {"main": 0, "evil": 0}
    path.write_bytes(join(header, blob))
    with pytest.raises(nimble.FormatError, match="does not verify"):
        load_verified(path, trusted_keys=[key.public_key()])


def test_an_unsigned_file_is_refused(signed):
    path, key = signed
    signature_path(path).unlink()
    with pytest.raises(nimble.FormatError, match="unsigned"):
        load_verified(path, trusted_keys=[key.public_key()])


def test_a_garbled_signature_file_is_refused(signed):
    path, key = signed
    signature_path(path).write_text("{not json")
    with pytest.raises(nimble.FormatError, match="malformed signature"):
        load_verified(path, trusted_keys=[key.public_key()])


def test_no_trusted_keys_accepts_nothing(signed):
    with pytest.raises(nimble.FormatError, match="trusted_keys is empty"):
        load_verified(signed[0], trusted_keys=[])


def test_save_and_load_take_the_key_and_the_trusted_keys(tmp_path):
    from nimble.vm import Executable

    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "c.nvm"
    broadcast_exe().save(path, signing_key=key)
    assert signature_path(path).exists()
    exe = Executable.load(path, trusted_keys=[key.public_key()])
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(VirtualMachine(exe).run(x, np.ones(3, np.float32)), x + 1)
    with pytest.raises(nimble.FormatError, match="does not verify"):
        Executable.load(path, trusted_keys=[ed25519.Ed25519PrivateKey.generate().public_key()])
