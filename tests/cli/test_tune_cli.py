"""``nimble-tune``: end to end on a temporary database, bucket specs, task files and usage errors."""
import json

import pytest

from nimble.cli import db as db_cli
from nimble.cli.tune import main, make_tasks, op_signature, parse_bucket_spec, tasks_from_file
from nimble.errors import NimbleError
from nimble.tuner.db import Database

FAST = ["--repeat", "2", "--min-repeat-ms", "1", "--timeout", "60", "--no-progress"]  # no config hangs: a long limit


def test_tunes_one_task_per_bucket_into_the_db_and_nimble_db_best_shows_them(tmp_path, capsys):
    path = str(tmp_path / "tune.db")
    status = main(["--op", "dense", "--shape", "n,64,64", "--bucket", "n=1:4", "--trials", "3", "--batch", "3",
                   "--tuner", "random", "--db", path, *FAST])
    out = capsys.readouterr().out
    assert status == 0
    records = Database(path).records()
    assert len(records) == 9 and {r.bucket for r in records} == {"n=1", "n=2", "n=3..4"}
    assert all(r.ok and r.tuner == "random" and r.workload.template == "dense" for r in records)
    assert out.splitlines()[0].split()[:4] == ["workload", "bucket", "trials", "errors"]
    assert len(out.splitlines()) == 4 and "n=3..4" in out and "x" in out.splitlines()[1]
    assert db_cli.main(["--db", path, "best"]) == 0
    best = capsys.readouterr().out
    assert all(bucket in best for bucket in ("n=1 ", "n=2 ", "n=3..4"))


def test_resume_is_the_default_and_no_resume_measures_again(tmp_path, capsys):
    path = str(tmp_path / "tune.db")
    args = ["--op", "matmul", "--shape", "8,16,16", "--trials", "2", "--batch", "2", "--tuner", "grid", "--db", path, *FAST]
    assert main(args) == 0 and main(args) == 0
    assert Database(path).count() == 2
    assert main([*args, "--no-resume"]) == 0
    assert Database(path).count() == 4
    assert "static" in capsys.readouterr().out


@pytest.mark.parametrize("text, buckets", [
    ("n=1:16", ["n=1", "n=2", "n=3..4", "n=5..8", "n=9..16"]),
    ("n=6:16", ["n=6..8", "n=9..16"]),
    ("n=1:8,9:32,33:128", ["n=1..8", "n=9..32", "n=33..128"]),
    ("n=1..512", ["n=1..512"]),
    ("n=64", ["n=64"]),
    ("n=pow2:4", ["n=1", "n=2", "n=3..4"]),
])
def test_bucket_specs(text, buckets):
    assert [str(b) for b in parse_bucket_spec(text).buckets] == buckets


def test_one_task_per_bucket_key_of_every_symbolic_dim():
    template, sig = op_signature("batch_matmul", "b,n,16,n", "float32", {})
    assert sig.args[1][0] == ("b", "n", 16)  # y (b, m, k) with transpose_b
    tasks = make_tasks(template, sig, "llvm", ["b=1:2", "n=1:8,9:16"])
    assert sorted(str(t.bucket) for t in tasks) == ["b=1,n=1..8", "b=1,n=9..16", "b=2,n=1..8", "b=2,n=9..16"]
    with pytest.raises(NimbleError, match=r"missing \['n'\]"):
        make_tasks(template, sig, "llvm", ["b=1:2"])
    with pytest.raises(NimbleError, match="not symbolic dims"):
        make_tasks(template, sig, "llvm", ["b=1:2", "n=1:8", "q=1:4"])


def test_tasks_file_takes_ops_and_signatures(tmp_path):
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([
        {"op": "dense", "shape": ["n", 32, 48], "attrs": {"bias": True}, "buckets": ["n=1:4"]},
        {"template": "matmul", "signature": {"args": [{"shape": [4, 8], "dtype": "float32"},
                                                      {"shape": [8, 16], "dtype": "float32"}]}},
    ]))
    tasks = tasks_from_file(str(path), "llvm")
    assert [(t.template, str(t.bucket)) for t in tasks] == [("dense", "n=1"), ("dense", "n=2"), ("dense", "n=3..4"),
                                                            ("matmul", "static")]
    assert tasks[0].signature.attr("bias") is True and len(tasks[0].signature.args) == 3


def test_usage_errors_return_nonzero_and_say_what_is_wrong(tmp_path, capsys):
    db = ["--db", str(tmp_path / "t.db")]
    assert main(["--op", "dense", "--shape", "n,64,64", *db]) == 1
    assert "missing ['n']" in capsys.readouterr().err
    assert main(["--op", "dense", "--shape", "n,64", "--bucket", "n=1:4", *db]) == 1
    assert "expected 3 dims n,k,m" in capsys.readouterr().err
    assert main(["--op", "dense", "--shape", "n,64,64", "--bucket", "n=1:4", "--attrs", "[1]", *db]) == 1
    assert main(["--op", "conv9d", "--shape", "1"]) == 2
    assert main(["--shape", "1"]) == 2  # neither --op nor --tasks


@pytest.mark.parametrize("op, shape, attrs, args", [
    ("softmax", "n,64", {}, [("n", 64)]),
    ("layer_norm", "n,32", {"eps": 1e-6}, [("n", 32), (32,), (32,)]),
    ("take", "100,16,n", {}, [(100, 16), ("n",)]),
    ("reduce", "n,8,64", {"axes": [2]}, [("n", 8, 64)]),
    ("matmul", "n,16,24", {}, [("n", 16), (16, 24)]),
])
def test_every_op_of_the_table_makes_a_signature_its_template_accepts(op, shape, attrs, args):
    template, sig = op_signature(op, shape, "float32", attrs)
    assert [s for s, _ in sig.args] == args
    [task] = make_tasks(template, sig, "llvm", ["n=8"])
    assert len(task.space) >= 1 and task.fallback().index < len(task.space)


def test_reduce_needs_axes_and_shapes_need_their_rank():
    with pytest.raises(NimbleError, match="axes"):
        op_signature("reduce", "n,8", "float32", {})
    with pytest.raises(NimbleError, match="at least 3 dims"):
        op_signature("take", "100,16", "float32", {})
