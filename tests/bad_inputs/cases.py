"""The bad-input corpus: what a user or an attacker hands each public entry point.

A case is a function registered with ``case(expect)``:

* ``"error"``: it must raise a clear error (a ``nimble`` error naming what is wrong, an ``OSError``
  for a missing file, a CLI exiting non-zero with a message); returning normally is a silent
  wrong result.
* ``"correct"``: an odd but valid input; the case checks the answer itself (``AssertionError``
  is a silent wrong result).

Cases of one group share the artefacts they build (cached per process), so a batch builds once.
"""
from __future__ import annotations

import copy
import functools
import io
import json
import struct
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "vm"), str(HERE.parent / "frontend")]

CASES: dict = {}  # name -> (expect, fn, group)


def case(expect: str, name: str | None = None, group: str | None = None):
    def register(fn):
        key = name or fn.__name__
        assert key not in CASES, key
        CASES[key] = (expect, fn, group or key.split(".")[0])
        return fn

    return register


def scratch() -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix="nimble-corpus-"))


# ============================================================== kernel calls (nimble.build)
@functools.lru_cache(maxsize=None)
def gather(index_dtype="int64", checks=True):
    import nimble
    from nimble import te

    n, m, k = te.var("n"), te.var("m"), te.var("k")
    D = te.placeholder((n, m), "float32", name="D")
    I = te.placeholder((k,), index_dtype, name="I")
    out = te.compute((k, m), lambda i, j: D[I[i], j], name="out")
    return nimble.build(out, [D, I, out], name="gather", bounds_checks=checks)


@functools.lru_cache(maxsize=None)
def add_one(static=False):
    import nimble
    from nimble import te

    n = 3 if static else te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] + 1.0, name="B")
    return nimble.build(B, [A, B], name="add_one")


@functools.lru_cache(maxsize=None)
def pair_add():
    import nimble
    from nimble import te

    n, m = te.var("n"), te.var("m")
    A = te.placeholder((n, m), name="A")
    B = te.placeholder((n, m), name="B")
    C = te.compute((n, m), lambda i, j: A[i, j] + B[i, j], name="C")
    return nimble.build(C, [A, B, C], name="pair_add")


TABLE = np.arange(20, dtype="float32").reshape(10, 2)
for _dt in ("int64", "int32"):
    for _bad in (10, 12, 2**31 - 1, -1, -7, -(2**31)) + ((10**12, 2**62, -(2**62)) if _dt == "int64" else ()):
        def _gather_bad(dt=_dt, bad=_bad):
            gather(dt)(TABLE, np.array([1, bad], dt))

        case("error", f"kernel.gather_{_dt}_index_{_bad}")(_gather_bad)


@case("correct", "kernel.gather_in_range")
def _():
    idx = np.array([0, 9, 3, 9], "int64")
    np.testing.assert_array_equal(gather()(TABLE, idx), TABLE[idx])


@case("correct", "kernel.gather_no_rows")
def _():
    assert gather()(TABLE, np.zeros(0, "int64")).shape == (0, 2)


@case("error", "kernel.gather_from_an_empty_table")
def _():
    gather()(np.zeros((0, 2), "float32"), np.array([0], "int64"))


@case("correct", "kernel.gather_unchecked_in_range")
def _():
    np.testing.assert_array_equal(gather("int64", False)(TABLE, np.array([2], "int64")), TABLE[[2]])


@case("error", "kernel.take_template_index_out_of_range")
def _():
    from nimble.schedules.registry import get_template
    from nimble.schedules.take import take_signature

    sig = take_signature("v", "d", ("n",), "int32")
    t = get_template("take")
    kern = t.build(sig, t.fallback(sig, t.space(sig)))
    kern(np.ones((5, 16), "float32"), np.array([0, 5], "int32"))


@case("error", "kernel.wrong_dtype")
def _():
    add_one()(np.ones(3, "float64"))


@case("error", "kernel.wrong_rank")
def _():
    add_one()(np.ones((3, 1), "float32"))


@case("error", "kernel.not_an_array")
def _():
    add_one()([1.0, 2.0, 3.0])


@case("error", "kernel.none_argument")
def _():
    add_one()(None)


@case("error", "kernel.too_many_arguments")
def _():
    a = np.ones(3, "float32")
    add_one()(a, a, a)


@case("error", "kernel.no_arguments")
def _():
    add_one()()


@case("error", "kernel.wrong_static_dim")
def _():
    add_one(True)(np.ones(4, "float32"))


@case("error", "kernel.symbolic_dims_disagree")
def _():
    pair_add()(np.ones((2, 3), "float32"), np.ones((2, 4), "float32"))


@case("error", "kernel.output_of_the_wrong_shape")
def _():
    a = np.ones((2, 3), "float32")
    pair_add()(a, a, np.empty((3, 2), "float32"))


@case("error", "kernel.output_read_only")
def _():
    a, out = np.ones(3, "float32"), np.empty(3, "float32")
    out.flags.writeable = False
    add_one()(a, out)


@case("error", "kernel.output_overlaps_input")
def _():
    a = np.ones(3, "float32")
    add_one()(a, a)


@case("correct", "kernel.non_contiguous_is_refused_or_right")
def _():
    import nimble

    a = np.arange(6, dtype="float32")[::2]
    try:
        np.testing.assert_array_equal(add_one()(a), a + 1)
    except nimble.ShapeError:
        pass


@case("correct", "kernel.memmap_input_and_output")
def _():
    d = scratch()
    mm = np.memmap(d / "a", dtype="float32", mode="w+", shape=(4,))
    mm[:] = np.arange(4)
    out = np.memmap(d / "b", dtype="float32", mode="w+", shape=(4,))
    add_one()(mm, out)
    np.testing.assert_array_equal(np.asarray(out), np.arange(4) + 1)


@case("correct", "kernel.dtype_with_metadata")
def _():
    a = np.zeros(3, dtype=np.dtype("float32", metadata={"unit": "m"}))
    np.testing.assert_array_equal(add_one()(a), [1, 1, 1])


@case("correct", "kernel.big_endian_is_refused_or_right")
def _():
    import nimble

    try:
        np.testing.assert_array_equal(add_one()(np.ones(3, ">f4")), [2, 2, 2])
    except nimble.TypeError:
        pass


@case("correct", "kernel.zero_length")
def _():
    assert add_one()(np.ones(0, "float32")).shape == (0,)


@case("correct", "kernel.nan_and_inf_propagate")
def _():
    out = add_one()(np.array([np.nan, np.inf, -np.inf], "float32"))
    assert np.isnan(out[0]) and out[1] == np.inf and out[2] == -np.inf


@case("error", "kernel.output_too_large_for_int64_bytes")
def _():
    import nimble
    from nimble import te

    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n, n, n, n), lambda i, j, k, l: A[i], name="B")
    nimble.build(B, [A, B], name="huge")(np.ones(2**16, "float32"))


@case("error", "kernel.build_bad_name")
def _():
    import nimble
    from nimble import te

    A = te.placeholder((3,), name="A")
    nimble.build(te.compute((3,), lambda i: A[i], name="B"), [A], name="no spaces")


@case("error", "kernel.build_bad_target")
def _():
    import nimble
    from nimble import te

    A = te.placeholder((3,), name="A")
    B = te.compute((3,), lambda i: A[i], name="B")
    nimble.build(B, [A, B], target="tpu")


# ============================================================== VirtualMachine.run
@functools.lru_cache(maxsize=None)
def bcast_vm():
    import nimble
    from test_vm_programs import broadcast_exe

    return nimble.VirtualMachine(broadcast_exe())  # main(x: (?, ?) float32, b: (?,) float32)


@functools.lru_cache(maxsize=None)
def square_vm():
    import nimble
    import nimble.ir as ir
    from nimble import ops as nb

    x = ir.var("x", shape=(ir.Any, ir.Any))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], nb.dense(x, x)))
    return nimble.VirtualMachine(nimble.compile(mod))


@functools.lru_cache(maxsize=None)
def dense_vm():
    import nimble
    import nimble.ir as ir
    from nimble import ops as nb

    x = ir.var("x", shape=(ir.Any, 8))
    w = np.random.default_rng(0).standard_normal((4, 8)).astype("float32")
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], nb.dense(x, w)))
    return nimble.VirtualMachine(nimble.compile(mod)), w


X23 = np.ones((2, 3), "float32")
B3 = np.ones(3, "float32")
for _name, _args in {
    "wrong_dtype": lambda: (X23, np.ones(3)), "wrong_rank": lambda: (np.ones(3, "float32"), B3),
    "missing_input": lambda: (X23,), "extra_input": lambda: (X23, B3, B3), "tuple_input": lambda: ((1, 2), B3),
    "string_input": lambda: ("x", B3), "none_input": lambda: (None, B3), "object_array": lambda: (X23.astype(object), B3),
    "broadcast_mismatch": lambda: (X23, np.ones(4, "float32")), "int_input": lambda: (X23.astype("int32"), B3),
}.items():
    def _vm_bad(args=_args):
        bcast_vm().run(*args())

    case("error", f"vm.{_name}")(_vm_bad)


@case("correct", "vm.broadcast_right")
def _():
    x = np.arange(6, dtype="float32").reshape(2, 3)
    np.testing.assert_array_equal(bcast_vm().run(x, B3), x + 1)


@case("correct", "vm.non_contiguous_input")
def _():
    x = np.arange(24, dtype="float32").reshape(4, 6)[:, ::2]
    np.testing.assert_array_equal(bcast_vm().run(x, B3), x + 1)


@case("correct", "vm.empty_rows")
def _():
    assert bcast_vm().run(np.ones((0, 3), "float32"), B3).shape == (0, 3)


@case("error", "vm.unknown_function")
def _():
    bcast_vm().invoke("no_such_function", X23, B3)


for _n in (2**31, 2**32, 2**40):
    def _overflow(n=_n):
        square_vm().run(np.empty((n, 0), "float32"))

    case("error", f"vm.output_bytes_overflow_n_{_n}")(_overflow)


@case("correct", "vm.dense_right")
def _():
    vm, w = dense_vm()
    x = np.random.default_rng(1).standard_normal((5, 8)).astype("float32")
    np.testing.assert_allclose(vm.run(x), x @ w.T, rtol=1e-4, atol=1e-4)


@case("error", "vm.dense_wrong_inner_dim")
def _():
    dense_vm()[0].run(np.ones((5, 7), "float32"))


@case("correct", "vm.dense_zero_rows")
def _():
    assert dense_vm()[0].run(np.ones((0, 8), "float32")).shape == (0, 4)


# ============================================================== from_onnx
def onnx_model(op, attrs, in_shape=(2, 3), n_out=1, extra=(), inputs=None, opset=17):
    from onnx import TensorProto as TP
    from onnx import helper

    names = inputs if inputs is not None else ["x", *[e[0] for e in extra]]
    node = helper.make_node(op, names, [f"y{i}" for i in range(n_out)], name=f"my_{op}", **attrs)
    inits = [helper.make_tensor(n, TP.INT64, [len(v)], v) for n, v in extra]
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TP.FLOAT, list(in_shape))],
                          [helper.make_tensor_value_info(f"y{i}", TP.FLOAT, None) for i in range(n_out)],
                          initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


ONNX_BAD_ATTRS = [
    ("Softmax", {"axis": 2}, (2, 3), 1, ()), ("Softmax", {"axis": -3}, (2, 3), 1, ()),
    ("LogSoftmax", {"axis": 2}, (2, 3), 1, ()), ("Concat", {"axis": 2}, (2, 3), 1, ()),
    ("Concat", {"axis": -3}, (2, 3), 1, ()), ("Split", {"axis": 5}, (4, 2), 2, ()),
    ("ArgMax", {"axis": 2}, (2, 3), 1, ()), ("ArgMin", {"axis": -3}, (2, 3), 1, ()),
    ("Transpose", {"perm": [0, 0]}, (2, 3), 1, ()), ("Transpose", {"perm": [0, 2]}, (2, 3), 1, ()),
    ("Transpose", {"perm": [0]}, (2, 3), 1, ()), ("Transpose", {"perm": [1, 0, 2]}, (2, 3), 1, ()),
    ("Flatten", {"axis": 3}, (2, 3), 1, ()), ("Flatten", {"axis": -3}, (2, 3), 1, ()),
    ("Gather", {"axis": 2}, (2, 3), 1, [("i", [0])]), ("Gather", {"axis": -3}, (2, 3), 1, [("i", [0])]),
    ("Unsqueeze", {}, (2, 3), 1, [("a", [5])]), ("Unsqueeze", {}, (2, 3), 1, [("a", [1, 1])]),
    ("Squeeze", {}, (2, 1), 1, [("a", [2])]), ("Squeeze", {}, (2, 1), 1, [("a", [-3])]),
    ("ReduceSum", {}, (2, 3), 1, [("a", [3])]), ("ReduceSum", {}, (2, 3), 1, [("a", [0, -2])]),
    ("ReduceMean", {"axes": [-5]}, (2, 3), 1, ()), ("ReduceMax", {"axes": [2]}, (2, 3), 1, ()),
    ("GatherElements", {"axis": 2}, (2, 3), 1, [("i", [0])]),
    ("Slice", {}, (2, 3), 1, [("s", [0]), ("e", [1]), ("a", [7])]),
    ("LayerNormalization", {"axis": 2}, (2, 3), 1, [("scale", [1, 1, 1])]),
    ("LayerNormalization", {"axis": -1}, (2, 3), 1, ()),  # scale missing
    ("Gemm", {}, (2, 3), 1, ()),  # B missing
]
for _k, (_op, _attrs, _shape, _nout, _extra) in enumerate(ONNX_BAD_ATTRS):
    def _onnx_bad(op=_op, attrs=_attrs, shape=_shape, nout=_nout, extra=_extra):
        from nimble.frontend import from_onnx

        from_onnx(onnx_model(op, attrs, shape, nout, extra))

    case("error", f"onnx.{_op}_{_k}")(_onnx_bad)


@case("correct", "onnx.softmax_negative_axis_right")
def _():
    import nimble
    from nimble.frontend import from_onnx

    x = np.random.default_rng(0).standard_normal((2, 3)).astype("float32")
    got = nimble.VirtualMachine(nimble.compile(from_onnx(onnx_model("Softmax", {"axis": -2})))).run(x)
    e = np.exp(x - x.max(axis=0, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(axis=0, keepdims=True), rtol=1e-5, atol=1e-6)


@case("error", "onnx.wrong_size_initializer")
def _():
    from onnx import TensorProto as TP
    from onnx import helper

    from nimble.frontend import from_onnx

    m = onnx_model("Add", {}, (3,), inputs=["x", "w"])
    bad = helper.make_tensor("w", TP.FLOAT, [3], np.zeros(3, "float32").tobytes(), raw=True)
    bad.raw_data = bad.raw_data[:8]
    m.graph.initializer.append(bad)
    from_onnx(m)


@case("error", "onnx.unsupported_operator")
def _():
    from nimble.frontend import from_onnx

    from_onnx(onnx_model("NoSuchOp", {}))


@case("error", "onnx.opset_too_old")
def _():
    from nimble.frontend import from_onnx

    from_onnx(onnx_model("Relu", {}, opset=1))


@case("error", "onnx.undefined_input_name")
def _():
    from nimble.frontend import from_onnx

    from_onnx(onnx_model("Add", {}, inputs=["x", "nowhere"]))


for _name, _blob in {"garbage_file": b"\x00\x01garbage" * 50, "empty_file": b"", "text_file": b"hello\n",
                     "truncated_model": None}.items():
    def _onnx_file(blob=_blob):
        from nimble.frontend import from_onnx

        data = blob if blob is not None else onnx_model("Relu", {}).SerializeToString()[:-7]
        path = scratch() / "m.onnx"
        path.write_bytes(data)
        from_onnx(str(path))

    case("error", f"onnx.{_name}")(_onnx_file)


@case("error", "onnx.missing_file")
def _():
    from nimble.frontend import from_onnx

    from_onnx(str(scratch() / "missing.onnx"))


@case("error", "onnx.not_a_model_object")
def _():
    from nimble.frontend import from_onnx

    from_onnx(42)


# ============================================================== Executable.load
@functools.lru_cache(maxsize=None)
def good_exe() -> bytes:
    from test_vm_programs import broadcast_exe

    from nimble.vm.executable import serialize

    return serialize(broadcast_exe())


def load_bytes(data: bytes):
    from nimble.vm import Executable

    path = scratch() / "e.nvm"
    path.write_bytes(data)
    return Executable.load(path)


def edited(edit=None, section=None, raw=None) -> bytes:
    from exe_surgery import join, object_sections, replace_section, split

    header, blob = split(good_exe())
    header = copy.deepcopy(header)
    if edit is not None:
        edit(header)
    if section is not None:
        i = object_sections(header)[-1]
        o, n = header["sections"][i]
        header, blob = replace_section(header, blob, i, section(blob[o:o + n]))
    return join(header, blob, raw_header=raw)


@case("correct", "exe.round_trip_runs")
def _():
    import nimble

    x = np.arange(6, dtype="float32").reshape(2, 3)
    np.testing.assert_array_equal(nimble.VirtualMachine(load_bytes(good_exe())).run(x, B3), x + 1)


def _flip(pos):
    def fn(d):
        b = bytearray(d)
        b[pos % len(b)] ^= 0x40
        return bytes(b)
    return fn


for _name, _damage in {
    "empty": lambda d: b"", "magic_only": lambda d: d[:8], "truncated_half": lambda d: d[:len(d) // 2],
    "truncated_by_one": lambda d: d[:-1], "trailing_bytes": lambda d: d + b"\0",
    "wrong_magic": lambda d: b"XIMBLEVM" + d[8:], "version_2": lambda d: d[:8] + struct.pack("<I", 2) + d[12:],
    "flipped_header_byte": _flip(40), "flipped_section_byte": _flip(-100), "flipped_checksum": _flip(-1),
    "huge_header_length": lambda d: d[:12] + struct.pack("<Q", 2**62) + d[20:],
    "random_bytes": lambda d: np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
}.items():
    def _exe_damaged(damage=_damage):
        load_bytes(damage(good_exe()))

    case("error", f"exe.{_name}")(_exe_damaged)

EXE_OBJECT_DAMAGE = {
    "zeroed_object": lambda o: bytes(len(o)), "half_object": lambda o: o[:len(o) // 2],
    "object_40_bytes": lambda o: o[:40], "empty_object": lambda o: b"",
    "zeroed_elf_ident": lambda o: o[:4] + bytes(12) + o[16:], "only_elf_magic": lambda o: b"\x7fELF" + bytes(len(o) - 4),
    "section_table_offset": lambda o: o[:0x28] + struct.pack("<Q", 2**62) + o[0x30:],
    "section_count": lambda o: o[:0x3C] + struct.pack("<H", 60000) + o[0x3E:],
    "machine_arm": lambda o: o[:0x12] + struct.pack("<H", 40) + o[0x14:],
    "elf32_class": lambda o: o[:4] + b"\x01" + o[5:], "big_endian": lambda o: o[:5] + b"\x02" + o[6:],
    "shared_object_type": lambda o: o[:0x10] + struct.pack("<H", 3) + o[0x12:],
    "string_table_index": lambda o: o[:0x3E] + struct.pack("<H", 9999) + o[0x40:],
    "zeroed_section_table": lambda o: o[:struct.unpack_from("<Q", o, 0x28)[0]] + bytes(len(o) - struct.unpack_from("<Q", o, 0x28)[0]),
    "truncated_section_table": lambda o: o[:struct.unpack_from("<Q", o, 0x28)[0] + 100],
}
for _name, _damage in EXE_OBJECT_DAMAGE.items():
    def _exe_object(damage=_damage):
        load_bytes(edited(section=damage))

    case("error", f"exe.{_name}")(_exe_object)

EXE_HEADER_EDITS = {
    "section_past_the_end": lambda h: h["sections"].__setitem__(0, [0, 10**9]),
    "negative_section_offset": lambda h: h["sections"].__setitem__(0, [-5, 10]),
    "section_offset_2_70": lambda h: h["sections"].__setitem__(0, [2**70, 1]),
    "section_not_a_pair": lambda h: h["sections"].__setitem__(0, "x"),
    "sections_not_a_list": lambda h: h.__setitem__("sections", {}),
    "constant_section_99": lambda h: h.__setitem__("constants", [99]),
    "constant_section_negative": lambda h: h.__setitem__("constants", [-1]),
    "object_section_99": lambda h: h["packed"][1].__setitem__("objects", [99]),
    "object_section_bool": lambda h: h["packed"][1].__setitem__("objects", [True]),
    "object_dtype_arg": lambda h: h["packed"][1].__setitem__("arg_dtypes", ["object", "int64"]),
    "ndims_too_short": lambda h: h["packed"][1].__setitem__("arg_ndims", [1]),
    "negative_ndim": lambda h: h["packed"][1].__setitem__("arg_ndims", [-1, 0]),
    "unknown_symbol": lambda h: h["packed"][1].__setitem__("variants", [[[], "no_such_symbol"]]),
    "no_variants": lambda h: h["packed"][1].__setitem__("variants", []),
    "shape_var_dim_7": lambda h: h["packed"][2].__setitem__("shape_vars", [[0, 7]]),
    "variant_factor_0": lambda h: h["packed"][2].__setitem__("variants", [[[[0, 0, 0]], "add_rows_f32"],
                                                                         [[], "add_rows_f32"]]),
    "packed_a_list": lambda h: h["packed"].__setitem__(0, [1, 2]),
    "packed_type_int": lambda h: h["packed"].__setitem__(0, {"type": 5}),
    "host_op_none": lambda h: h["packed"][0].__setitem__("op", None),
    "host_op_unknown": lambda h: h["packed"][0].__setitem__("op", "no_such_op"),
    "entry_out_of_range": lambda h: h.__setitem__("entry", {"main": 50}),
    "metadata_a_list": lambda h: h.__setitem__("metadata", [1]),
    "target_an_int": lambda h: h.__setitem__("metadata", {"__dict__": [["target", 7]]}),
    "target_cuda": lambda h: h.__setitem__("metadata", {"__dict__": [["target", "cuda"]]}),
    "triple_arm": lambda h: h.__setitem__("metadata", {"__dict__": [["triple", "aarch64-unknown-linux-gnu"]]}),
    "missing_feature": lambda h: h.__setitem__("metadata", {"__dict__": [["features", "+nosuchfeature"]]}),
    "unhashable_metadata_key": lambda h: h.__setitem__("metadata", {"__dict__": [[["k"], 7]]}),
    "function_name_int": lambda h: h.__setitem__("functions", [{"name": 3}]),
    "no_functions_key": lambda h: h.pop("functions"),
}
for _name, _edit in EXE_HEADER_EDITS.items():
    def _exe_header(edit=_edit):
        load_bytes(edited(edit=edit))

    case("error", f"exe.{_name}")(_exe_header)

for _name, _raw in {"header_json_list": b"[]", "header_null": b"null", "header_cut": b"{", "header_not_utf8": b"\xff\xfe",
                    "header_deeply_nested": b"[" * 100000 + b"]" * 100000, "header_empty_object": b"{}"}.items():
    def _exe_raw(raw=_raw):
        load_bytes(edited(raw=raw))

    case("error", f"exe.{_name}")(_exe_raw)


@case("error", "exe.pickled_constant")
def _():
    from exe_surgery import join, split

    header, blob = split(good_exe())
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    header["sections"].append([len(blob), len(buf.getvalue())])
    header["constants"] = [len(header["sections"]) - 1]
    load_bytes(join(header, blob + buf.getvalue()))


@case("error", "exe.missing_file")
def _():
    from nimble.vm import Executable

    Executable.load(scratch() / "missing.nvm")


@case("error", "exe.a_directory")
def _():
    from nimble.vm import Executable

    Executable.load(scratch())


# ============================================================== records: JSONL import and databases
def dense_record(index, cost, config=None):
    from nimble.tuner.fingerprint import HostFingerprint
    from nimble.tuner.record_check import _space_of
    from nimble.tuner.records import TuningRecord
    from nimble.tuner.workload import WorkloadKey

    key = WorkloadKey("dense", [(("n", 64), "float32"), ((64, 64), "float32")], "llvm")
    host = HostFingerprint("Test CPU", "TestVendor", ("avx2",), 4, 4, "llvm")
    config = config if config is not None else _space_of(key.canonical).get(index).to_json()
    return TuningRecord(key, "n=33..64", "llvm", host, config, index, [cost, cost],
                        timestamp=f"2026-11-28T10:00:00.{index:06d}Z", tuner="test")


def import_text(text: str):
    from nimble.tuner.db import Database

    d = scratch()
    (d / "r.jsonl").write_text(text)
    return Database(d / "t.db").import_jsonl(d / "r.jsonl")


GOOD_LINE = None


def good_line() -> dict:
    return json.loads(dense_record(1, 1e-3).to_line())


for _name, _mutate in {
    "config_outside_space": lambda r: r.update(config={"tile_rows": 10**6}),
    "config_index_huge": lambda r: r.update(config_index=10**12),
    "config_index_negative": lambda r: r.update(config_index=-1),
    "cost_negative": lambda r: r.update(costs=[-1.0]), "cost_nan": lambda r: r.update(costs=["NaN"]),
    "cost_string": lambda r: r.update(costs=["fast"]), "costs_empty": lambda r: r.update(costs=[]),
    "version_2": lambda r: r.update(version=2), "wrong_format": lambda r: r.update(format="other"),
    "unknown_field": lambda r: r.update(extra=1), "missing_workload": lambda r: r.pop("workload"),
    "bucket_garbage": lambda r: r.update(bucket="n=9..1"), "timestamp_garbage": lambda r: r.update(timestamp="yesterday"),
    "host_id_mismatch": lambda r: r["host"].update(id="0" * 16), "error_kind_unknown": lambda r: r.update(error_kind="oops"),
    "workload_args_string": lambda r: r["workload"].update(args="x"), "template_unknown_shape": lambda r: r["workload"].update(args=[]),
}.items():
    def _record_bad(mutate=_mutate):
        rec = good_line()
        mutate(rec)
        report = import_text(json.dumps(rec) + "\n")
        assert report.added == 0 and len(report.malformed) == 1, report  # reported, not imported
    case("correct", f"records.{_name}_is_reported")(_record_bad)

for _name, _text in {"deep_json": "[" * 50000, "bare_number": "1e999", "bare_string": '"x"', "null": "null",
                     "truncated_line": None}.items():
    def _record_line(text=_text):
        text = text if text is not None else dense_record(1, 1e-3).to_line()[:-20]
        report = import_text(text + "\n")
        assert report.added == 0 and len(report.malformed) == 1, report
    case("correct", f"records.{_name}_is_reported")(_record_line)


@case("error", "records.binary_jsonl_file")
def _():
    from nimble.tuner.db import Database

    d = scratch()
    (d / "r.jsonl").write_bytes(b"\xff\xfe\x00garbage\n")
    Database(d / "t.db").import_jsonl(d / "r.jsonl")


@case("error", "records.missing_jsonl_file")
def _():
    from nimble.tuner.db import Database

    d = scratch()
    Database(d / "t.db").import_jsonl(d / "missing.jsonl")


@case("correct", "records.best_is_the_best_valid_record")
def _():
    from nimble.tuner.db import Database

    db = Database(scratch() / "t.db")
    db.add_records([dense_record(1, 2e-3), dense_record(2, 3e-3), dense_record(4, 1e-9, {"tile_rows": 123})])
    best = db.best_record(dense_record(1, 1).workload, "n=33..64", "llvm", dense_record(1, 1).host)
    assert best is not None and best.config_index == 1, best


@case("error", "records.corrupted_database")
def _():
    from nimble.tuner.db import Database

    path = scratch() / "bad.db"
    path.write_bytes(b"not a database" * 200)
    Database(path).count()


@case("error", "records.empty_database_file")
def _():
    from nimble.tuner.db import Database

    path = scratch() / "empty.db"
    path.write_bytes(b"")
    Database(path)


@case("error", "records.missing_database_not_created")
def _():
    from nimble.tuner.db import Database

    path = scratch() / "typo" / "recrods.db"
    try:
        Database(path, create=False)
    finally:
        assert not path.parent.exists()


@case("error", "records.database_is_a_directory")
def _():
    from nimble.tuner.db import Database

    Database(scratch()).count()


@case("error", "records.truncated_sqlite_file")
def _():
    from nimble.tuner.db import Database

    d = scratch()
    db = Database(d / "t.db")
    db.add_records([dense_record(1, 2e-3)])
    from nimble.tuner.db import dispose_engines

    dispose_engines()
    data = (d / "t.db").read_bytes()
    for extra in ("t.db-wal", "t.db-shm"):
        (d / extra).unlink(missing_ok=True)
    (d / "cut.db").write_bytes(data[:1000])
    Database(d / "cut.db").count()


# ============================================================== the CLIs
def cli(module: str, argv: list) -> None:
    """Run a CLI's main; a non-zero exit is its clear error (SystemExit carries it)."""
    import importlib

    code = importlib.import_module(module).main(argv)
    if code:
        raise SystemExit(code)


for _name, (_module, _argv) in {
    "run_missing_file": ("nimble.cli.run", ["/nonexistent/model.nvm"]),
    "run_garbage_file": ("nimble.cli.run", [None]),
    "run_bad_input_spec": ("nimble.cli.run", ["GOOD", "--input", "x"]),
    "run_missing_npy": ("nimble.cli.run", ["GOOD", "--input", "x=/nonexistent.npy"]),
    "db_garbage_file": ("nimble.cli.db", ["--db", None, "list"]),
    "db_missing_file": ("nimble.cli.db", ["--db", "/nonexistent/x.db", "list"]),
    "db_unknown_command": ("nimble.cli.db", ["frobnicate"]),
    "tune_unknown_op": ("nimble.cli.tune", ["--op", "no_such_op", "--shape", "n,3"]),
    "tune_bad_bucket": ("nimble.cli.tune", ["--op", "dense", "--shape", "n,64,64", "--bucket", "n=9:1", "--trials", "1"]),
    "tune_bad_shape": ("nimble.cli.tune", ["--op", "dense", "--shape", "n,,x-y", "--trials", "1"]),
}.items():
    def _cli_bad(module=_module, argv=_argv):
        d = scratch()
        garbage = d / "garbage.bin"
        garbage.write_bytes(b"\x00garbage" * 100)
        good = d / "good.nvm"
        good.write_bytes(good_exe())
        argv = [str(garbage) if a is None else str(good) if a == "GOOD" else a for a in argv]
        import os

        os.chdir(d)  # nothing may be created elsewhere
        cli(module, argv)

    case("error", f"cli.{_name}")(_cli_bad)
import cases_onnx_fuzz  # noqa: E402,F401 - the from_onnx cases the fuzzer found (they register themselves)
