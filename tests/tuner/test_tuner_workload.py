import hashlib
import json

import pytest

from nimble.errors import FormatError
from nimble.tuner.workload import ArgSpec, WorkloadKey, canonical_json

DENSE_ARGS = [(("n", 512), "float32"), ((512, 256), "float32")]


def test_canonical_json_sorts_keys_and_drops_whitespace():
    key = WorkloadKey("dense", DENSE_ARGS, "llvm", {"b": 1, "a": [1, 2]})
    assert key.canonical == (
        '{"args":[{"dtype":"float32","shape":["n",512]},{"dtype":"float32","shape":[512,256]}],'
        '"attrs":{"a":[1,2],"b":1},"target":"llvm","template":"dense"}'
    )


def test_hash_is_sha256_of_canonical_json_and_pinned():
    key = WorkloadKey("dense", DENSE_ARGS, "llvm")
    assert key.hash == hashlib.sha256(key.canonical.encode()).hexdigest()
    # Pinned: a change here orphans every stored record; bump the record format instead.
    assert key.hash == hashlib.sha256(
        b'{"args":[{"dtype":"float32","shape":["n",512]},{"dtype":"float32","shape":[512,256]}],'
        b'"attrs":{},"target":"llvm","template":"dense"}').hexdigest()
    assert key.short_hash == key.hash[:12]


def test_attr_order_does_not_change_identity():
    a = WorkloadKey("dense", DENSE_ARGS, "llvm", {"x": 1, "y": 2})
    b = WorkloadKey("dense", DENSE_ARGS, "llvm", {"y": 2, "x": 1})
    assert a == b and hash(a) == hash(b) and a.hash == b.hash
    assert {a: 1}[b] == 1


def test_attrs_differ_means_different_workload():
    a = WorkloadKey("dense", DENSE_ARGS, "llvm", {"x": 1})
    b = WorkloadKey("dense", DENSE_ARGS, "llvm", {"x": 2})
    assert a != b and a.hash != b.hash


def test_attrs_are_copied_and_frozen():
    attrs = {"x": [1]}
    key = WorkloadKey("dense", DENSE_ARGS, "llvm", attrs)
    attrs["x"].append(2)
    assert key.attrs["x"] == [1]
    with pytest.raises(TypeError):
        key.attrs["y"] = 3


def test_json_round_trip_from_dict_and_text():
    key = WorkloadKey("batch_matmul", [(("b", "m", 64), "float16"), (("b", 64, "n"), "float16")], "cuda", {"k": 1})
    assert WorkloadKey.from_json(key.to_json()) == key
    assert WorkloadKey.from_json(json.dumps(key.to_json())) == key
    assert WorkloadKey.from_json(key.canonical).hash == key.hash


def test_symbolic_dims_in_order_of_first_appearance():
    key = WorkloadKey("bmm", [(("b", "m", 64), "float32"), (("b", 64, "n"), "float32")], "llvm")
    assert key.symbolic_dims == ("b", "m", "n")


@pytest.mark.parametrize(
    "args, message",
    [
        ([((-1, 4), "float32")], "dims >= 0"),
        ([(("1n", 4), "float32")], "identifier"),
        ([((4, 4), "Float 32")], "dtype"),
        ([((4.0, 4), "float32")], "ints or dim names"),
        ("n", "sequence"),
    ],
)
def test_bad_arguments_are_format_errors(args, message):
    with pytest.raises(FormatError, match=message):
        WorkloadKey("dense", args, "llvm")


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"args": [], "target": "llvm"}, "missing field"),
        ({"template": "d", "args": [], "target": "llvm", "extra": 1}, "unknown field"),
        ({"template": "d", "args": {}, "target": "llvm"}, "'args'"),
        ({"template": "", "args": [], "target": "llvm"}, "template"),
        ({"template": "d", "args": [], "target": " "}, "target"),
        ({"template": "d", "args": [{"shape": [1]}], "target": "llvm"}, "expected keys"),
    ],
)
def test_from_json_names_the_bad_field(obj, message):
    with pytest.raises(FormatError, match=message):
        WorkloadKey.from_json(obj)


def test_non_json_attrs_rejected():
    with pytest.raises(FormatError, match="JSON-serialisable"):
        WorkloadKey("dense", DENSE_ARGS, "llvm", {"x": object()})
    with pytest.raises(FormatError, match="finite"):
        canonical_json({"x": float("nan")})


def test_argspec_accepts_lists():
    assert ArgSpec(["n", 3], "int64").shape == ("n", 3)
