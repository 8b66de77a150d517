"""Executable files: save in one process, load and run in another without LLVM; every kind of
damage to the file gives a FormatError that says what is wrong."""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import vm_kernels as K
from test_vm_programs import broadcast_exe, countdown_exe, list_exe

import nimble
from nimble.vm import Executable, HostFuncEntry, LoadConst, Ret, VirtualMachine, VMFunction
from nimble.vm.executable import FORMAT_VERSION, MAGIC, serialize


def combined_exe():
    """The broadcast program plus the list and countdown programs as extra entry points."""
    exes = [broadcast_exe(), list_exe(), countdown_exe()]
    functions, packed, constants, entry = [], [], [], {}
    from nimble.vm import bytecode as bc

    for tag, exe in zip(("bcast", "list", "count"), exes):
        f0, p0, c0 = len(functions), len(packed), len(constants)
        for f in exe.functions:
            code = []
            for ins in f.instructions:
                if isinstance(ins, (bc.Invoke, bc.AllocClosure)):
                    ins = type(ins)(ins.func_index + f0, *[getattr(ins, n) for n in ins.__dataclass_fields__][1:])
                elif isinstance(ins, bc.InvokePacked):
                    ins = bc.InvokePacked(ins.packed_index + p0, ins.args, ins.output_count)
                elif isinstance(ins, bc.LoadConst):
                    ins = bc.LoadConst(ins.const_index + c0, ins.dst)
                code.append(ins)
            name = tag if f is exe.functions[0] else f"{tag}_{f.name}"
            functions.append(VMFunction(name, f.params, tuple(code), f.register_count))
        entry[tag] = f0
        packed += exe.packed
        constants += exe.constants
    meta = dict(exes[0].metadata)
    meta["inputs"] = {"bcast": exes[0].metadata["inputs"]["main"]}
    meta["outputs"] = {"list": exes[1].metadata["outputs"]["main"]}
    return Executable(tuple(functions), tuple(constants), tuple(packed), entry, meta)


def outputs_of(vm):
    x, b = np.arange(12, dtype=np.float32).reshape(3, 4), np.ones(4, np.float32)
    total, _ = vm.invoke("list", np.array(30))
    return {"bcast": vm.invoke("bcast", x, b), "sum": total, "count": vm.invoke("count", np.array(50))}


LOADER = """
import sys, numpy as np
from nimble.codegen import jit
from nimble.vm import Executable, VirtualMachine
sys.path.insert(0, sys.argv[3])
from test_vm_executable import outputs_of
vm = VirtualMachine(Executable.load(sys.argv[1]))
np.savez(sys.argv[2], **outputs_of(vm))
print(jit.stats["llvm_compiles"], jit.stats["cache_hits"])
"""


def test_saved_executable_runs_in_a_fresh_process_without_llvm(tmp_path):
    exe = combined_exe()
    path = tmp_path / "model.nimble"
    exe.save(path)
    here = outputs_of(VirtualMachine(exe))
    env = dict(os.environ, NIMBLE_CACHE_DIR=str(tmp_path / "empty_cache"))
    proc = subprocess.run([sys.executable, "-c", LOADER, str(path), str(tmp_path / "out.npz"),
                           os.path.dirname(__file__)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "0"]  # no LLVM compile, no object-cache use: linked from the file
    there = np.load(tmp_path / "out.npz")
    for name, value in here.items():
        np.testing.assert_array_equal(there[name], value)
        assert there[name].dtype == value.dtype


def test_load_round_trips_functions_constants_and_kernel_records(tmp_path):
    exe = combined_exe()
    exe.save(tmp_path / "m.nimble")
    back = Executable.load(tmp_path / "m.nimble")
    assert back.functions == exe.functions and back.entry == exe.entry and back.packed == exe.packed
    assert all(np.array_equal(a, b) for a, b in zip(back.constants, exe.constants))
    assert back.metadata == exe.metadata


@pytest.fixture(scope="module")
def saved_bytes():
    return serialize(broadcast_exe())


def load_bytes(tmp_path, data):
    path = tmp_path / "bad.nimble"
    path.write_bytes(data)
    return Executable.load(path)


def test_truncated_file_is_reported(tmp_path, saved_bytes):
    with pytest.raises(nimble.FormatError, match=rf"truncated: {len(saved_bytes) - 100} bytes, the file says"):
        load_bytes(tmp_path, saved_bytes[:-100])
    with pytest.raises(nimble.FormatError, match="truncated"):
        load_bytes(tmp_path, saved_bytes[:10])


def test_flipped_byte_fails_the_checksum(tmp_path, saved_bytes):
    data = bytearray(saved_bytes)
    data[len(data) // 2] ^= 0x01
    with pytest.raises(nimble.FormatError, match="checksum mismatch"):
        load_bytes(tmp_path, bytes(data))


def test_wrong_magic_is_reported(tmp_path, saved_bytes):
    with pytest.raises(nimble.FormatError, match="not a nimble executable"):
        load_bytes(tmp_path, b"PK\x03\x04" + saved_bytes[4:])


def test_other_format_version_is_reported(tmp_path, saved_bytes):
    data = saved_bytes[:8] + struct.pack("<I", FORMAT_VERSION + 1) + saved_bytes[12:]
    with pytest.raises(nimble.FormatError, match=f"format version {FORMAT_VERSION + 1} is not supported"):
        load_bytes(tmp_path, data)


def test_file_starts_with_magic_and_a_json_header():
    saved_bytes = serialize(K.executable([VMFunction("main", (), (LoadConst(0, 0), Ret(0)), 1)], [K.add_f32()],
                                         [np.arange(3)]))
    assert saved_bytes.startswith(MAGIC)
    header_len = struct.unpack_from("<Q", saved_bytes, 12)[0]
    header = json.loads(saved_bytes[28:28 + header_len])
    assert header["functions"][0]["instructions"] == [["LoadConst", 0, 0], ["Ret", 0]]
    base = 28 + header_len
    for i in header["constants"]:  # constants are plain .npy records
        offset, _ = header["sections"][i]
        assert saved_bytes[base + offset:base + offset + 6] == b"\x93NUMPY"
    assert [p["type"] for p in header["packed"]] == ["kernel"]
    assert header["packed"][0]["variants"] == [[[[0, 0, 8]], "add_f32_r0"], [[], "add_f32"]]


def test_missing_cpu_features_are_named(tmp_path):
    exe = broadcast_exe()
    meta = dict(exe.metadata, features=exe.metadata["features"] + ",+imaginary-matrix-unit")
    exe = Executable(exe.functions, exe.constants, exe.packed, exe.entry, meta)
    with pytest.raises(nimble.FormatError, match="lacks the features imaginary-matrix-unit"):
        load_bytes(tmp_path, serialize(exe))


def test_unknown_operator_of_a_host_function_is_reported_at_load(tmp_path):
    main = VMFunction("main", ("x",), (Ret(0),), 1)
    exe = K.executable([main], [HostFuncEntry("shape", "shape_func", "no_such_op", {})])
    with pytest.raises(nimble.FormatError, match="no operator named 'no_such_op'"):
        load_bytes(tmp_path, serialize(exe))


def test_object_constants_cannot_be_saved():
    exe = K.executable([VMFunction("main", (), (LoadConst(0, 0), Ret(0)), 1)], [], [np.array([{}, 1], dtype=object)])
    with pytest.raises(nimble.FormatError, match="cannot be written without pickle"):
        serialize(exe)


def test_attribute_tuples_survive_the_file(tmp_path):
    main = VMFunction("main", ("x",), (Ret(0),), 1)
    entry = HostFuncEntry("sum_shape", "shape_func", "sum", {"axis": (0, 1), "keepdims": True})
    exe = K.executable([main], [entry])
    back = load_bytes(tmp_path, serialize(exe))
    assert back.packed[0].attrs == {"axis": (0, 1), "keepdims": True}
