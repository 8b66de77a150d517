"""The parallel-for runtime travels in the executable file: checked like kernel code on load."""
import numpy as np
import pytest
from exe_surgery import join, replace_section, split
from test_vm_programs import broadcast_exe

import nimble
from nimble.codegen import parallel
from nimble.errors import FormatError
from nimble.vm.executable import serialize


@pytest.fixture(scope="module")
def saved():
    return serialize(broadcast_exe())


def test_file_carries_this_runtime(saved):
    header, _ = split(saved)
    assert header["parallel"]["abi"] == parallel.ENTRY
    assert header["parallel"]["version"] == parallel.version()


def _load(tmp_path, data):
    p = tmp_path / "edited.nimble"
    p.write_bytes(data)
    return nimble.Executable.load(p)


def test_other_abi_is_refused(saved, tmp_path):
    header, blob = split(saved)
    header["parallel"] = dict(header["parallel"], abi="nimble_parallel_for_v0")
    with pytest.raises(FormatError, match="ABI"):
        _load(tmp_path, join(header, blob))


def test_damaged_runtime_object_is_refused(saved, tmp_path):
    header, blob = split(saved)
    index = header["parallel"]["object"]
    n = header["sections"][index][1]
    header, blob = replace_section(header, blob, index, bytes(n))
    with pytest.raises(FormatError, match="parallel runtime"):
        _load(tmp_path, join(header, blob))


def test_an_older_runtime_version_is_ignored(saved, tmp_path):
    header, blob = split(saved)
    header["parallel"] = dict(header["parallel"], version="0" * 16)
    exe = _load(tmp_path, join(header, blob))
    x, b = np.ones((3, 5), np.float32), np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(nimble.VirtualMachine(exe).run(x, b)), x + b)
