"""Executables edited and re-checksummed: every kind of damage is a FormatError before the linker."""
import copy
import struct

import numpy as np
import pytest
from exe_surgery import join, object_sections, replace_section, split
from test_vm_programs import broadcast_exe

import nimble
from nimble.vm import Executable
from nimble.vm.executable import deserialize, serialize
from nimble.vm.validate import object_symbols


@pytest.fixture(scope="module")
def good():
    return serialize(broadcast_exe())


def _load(data):
    exe = deserialize(data, "edited.nvm")
    exe.library()
    return exe


def _with_object(good, fn):
    header, blob = split(good)
    i = object_sections(header)[-1]
    obj = blob[header["sections"][i][0]:header["sections"][i][0] + header["sections"][i][1]]
    return join(*replace_section(header, blob, i, fn(obj)))


def test_the_object_code_of_a_real_kernel_parses_and_defines_its_entry_point(good):
    header, blob = split(good)
    i = object_sections(header)[-1]
    o, n = header["sections"][i]
    defined, _ = object_symbols(blob[o:o + n])
    assert any(s.endswith(".pyarrays") for s in defined)


@pytest.mark.parametrize("damage", [
    lambda o: bytes(len(o)), lambda o: o[:len(o) // 2], lambda o: o[:40], lambda o: b"",
    lambda o: o[:20] + bytes(20) + o[40:], lambda o: b"\x7fELF" + bytes(len(o) - 4),
    lambda o: o[:0x28] + struct.pack("<Q", 2**62) + o[0x30:],  # section table offset
    lambda o: o[:0x3C] + struct.pack("<H", 60000) + o[0x3E:],  # section count
    lambda o: o[:0x12] + struct.pack("<H", 40) + o[0x14:],  # machine
], ids=["zeroed", "half", "40-bytes", "empty", "zeroed-ident", "only-magic", "shoff", "shnum", "machine"])
def test_damaged_object_code_is_a_format_error_not_an_llvm_abort(good, damage):
    with pytest.raises(nimble.FormatError, match="object code|symbol"):
        _load(_with_object(good, damage))


def test_every_byte_of_the_elf_headers_zeroed_or_flipped_is_caught_or_harmless(good):
    header, blob = split(good)
    i = object_sections(header)[-1]
    o, n = header["sections"][i]
    obj = blob[o:o + n]
    for pos in range(0, 64):
        for val in (0, 0xFF):
            bad = obj[:pos] + bytes([val]) + obj[pos + 1:]
            if bad == obj:
                continue
            try:
                object_symbols(bad)
            except nimble.FormatError:
                pass


@pytest.mark.parametrize("edit", [
    lambda h: h["sections"].__setitem__(0, [0, 10**9]),
    lambda h: h["sections"].__setitem__(0, [-5, 10]),
    lambda h: h["sections"].__setitem__(0, [2**70, 1]),
    lambda h: h["sections"].__setitem__(0, "x"),
    lambda h: h.__setitem__("sections", {}),
    lambda h: h.__setitem__("constants", [99]),
    lambda h: h.__setitem__("constants", [-1]),
    lambda h: h["packed"][1].__setitem__("objects", [99]),
    lambda h: h["packed"][1].__setitem__("objects", [True]),
    lambda h: h["packed"][1].__setitem__("arg_dtypes", ["object", "int64"]),
    lambda h: h["packed"][1].__setitem__("arg_ndims", [1]),
    lambda h: h["packed"][1].__setitem__("arg_ndims", [-1, 0]),
    lambda h: h["packed"][1].__setitem__("variants", [[[], "no_such_symbol"]]),
    lambda h: h["packed"][1].__setitem__("variants", []),
    lambda h: h["packed"][2].__setitem__("shape_vars", [[0, 7]]),
    lambda h: h["packed"][2].__setitem__("variants", [[[[0, 0, 0]], "add_rows_f32"], [[], "add_rows_f32"]]),
    lambda h: h["packed"].__setitem__(0, [1, 2]),
    lambda h: h["packed"].__setitem__(0, {"type": 5}),
    lambda h: h["packed"][0].__setitem__("op", None),
    lambda h: h.__setitem__("entry", {"main": 50}),
    lambda h: h.__setitem__("metadata", [1]),
    lambda h: h.__setitem__("metadata", {"__dict__": [["target", 7]]}),
    lambda h: h.__setitem__("metadata", {"__dict__": [[["unhashable"], 7]]}),
    lambda h: h.__setitem__("functions", [{"name": 3}]),
], ids=lambda f: None)
def test_edited_headers_are_format_errors(good, edit):
    header, blob = split(good)
    header = copy.deepcopy(header)
    edit(header)
    with pytest.raises(nimble.FormatError):
        _load(join(header, blob))


@pytest.mark.parametrize("raw", [b"[]", b"null", b"{", b"\xff\xfe", b"[" * 100000 + b"]" * 100000, b"{}"])
def test_a_header_that_is_not_the_expected_json_object_is_a_format_error(good, raw):
    _, blob = split(good)
    with pytest.raises(nimble.FormatError):
        _load(join(None, blob, raw_header=raw))


def test_a_header_length_past_the_end_is_a_format_error(good):
    data = bytearray(good)
    struct.pack_into("<Q", data, 12, 2**40)
    with pytest.raises(nimble.FormatError):
        deserialize(bytes(data))


def test_a_pickled_or_object_constant_is_refused(good, tmp_path):
    header, blob = split(good)
    import io
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    header = copy.deepcopy(header)
    header["sections"].append([len(blob), len(buf.getvalue())])
    header["constants"] = [len(header["sections"]) - 1]
    with pytest.raises(nimble.FormatError, match="constant 0"):
        _load(join(header, blob + buf.getvalue()))


def test_an_untouched_executable_still_loads_and_runs(good, tmp_path):
    path = tmp_path / "b.nvm"
    path.write_bytes(join(*split(good)))
    exe = Executable.load(path)
    assert exe.library()
