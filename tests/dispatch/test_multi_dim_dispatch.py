"""Dispatch tables keyed on several dims at once: records tuned over a cross product of buckets
(``nimble-tune --bucket n=.. --bucket m=..``) become boxes; every shape of a grid gets the box's
kernel on both VMs, explain names the box, and the table survives save/load."""
import functools
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nimble
from nimble import ir, te
from nimble import ops as nb
from nimble.dispatch.build import template_dispatch
from nimble.dispatch.table import BucketRange, DispatchEntry
from nimble.errors import FormatError
from nimble.ir import Any
from nimble.schedules import Signature
from nimble.tuner import Database, TuningRecord, host_fingerprint
from nimble.tuner.task import Task
from nimble.vm import AllocStorage, AllocTensor, InvokePacked, LoadConsti, Ret, VMFunction
from nimble.vm.executable import Executable, KernelEntry, host_metadata

K = 16
SIG = Signature.make([((2, "n", K), "float32"), ((2, "m", K), "float32")], transpose_b=True)
BOXES = {  # bucket key -> (tile_rows, tile_cols): a config per box, so the config names the box
    "m=1..8,n=1..8": (1, 16), "m=9..64,n=1..8": (1, 32), "m=1..8,n=9..64": (2, 16), "m=9..64,n=9..64": (2, 32)}


def record(bucket: str, rows: int, cols: int):
    task = Task("batch_matmul", SIG, "llvm", bucket)
    cfg = task.space.config(**{**task.fallback().values, "tile_rows": rows, "tile_cols": cols, "k_unroll": 1,
                               "col_block": 2, "parallel": "none"})
    return TuningRecord(task.workload_key, task.bucket, "llvm", host_fingerprint("llvm"), cfg.to_json(), cfg.index,
                        costs=(1e-5,), tuner="test")


@functools.cache
def compiled():
    x, y = ir.var("x", shape=(2, Any, K)), ir.var("y", shape=(2, Any, K))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x, y], nb.batch_matmul(x, y)))
    db = Database(Path(tempfile.mkdtemp()) / "records.db")
    db.add_records([record(b, *rc) for b, rc in BOXES.items()])
    exe = nimble.compile(mod, records=db)
    [table] = [p for p in exe.packed if isinstance(p, DispatchEntry)]
    return exe, table, nimble.VirtualMachine(exe, backend="python"), nimble.VirtualMachine(exe, backend="native")


def expected_box(n: int, m: int):
    for key in BOXES:
        (mlo, mhi), (nlo, nhi) = ((int(v) for v in part.split("=")[1].split("..")) for part in key.split(","))
        if nlo <= n <= nhi and mlo <= m <= mhi:
            return key
    return None


def test_records_over_a_cross_product_of_buckets_key_a_table_on_both_dims():
    exe, table, _, _ = compiled()
    assert table.dim == (0, 1) and table.dim_name == "n" and table.extra_dims == ((1, 1, "m"),)
    assert [r.label for r in table.ranges[:4]] == sorted(BOXES, key=lambda k: (k.split(",")[1], k.split(",")[0]))
    assert all(r.source == "record" for r in table.ranges[:4])
    assert all(r.source == "fallback" and r.extra == ((0, 1 << 62),) for r in table.ranges[4:])
    for (n, m) in [(1, 1), (8, 9), (9, 8), (64, 64), (3, 40)]:
        why = exe.explain(table.name, (n, m))
        key = expected_box(n, m)
        assert why["bucket"] == key and why["source"] == "record" and why["inside"]
        assert (why["config"]["tile_rows"], why["config"]["tile_cols"]) == BOXES[key]
        assert exe.explain(table.name, {"n": n, "m": m}) == why
    assert str(exe.explain(table.name, (9, 8))).startswith(f"{table.name}: n=9, m=8 is inside bucket m=1..8,n=9..64")
    beyond = exe.explain(table.name, (100, 3))  # outside every record box: the fallback ranges of n
    assert beyond["source"] == "fallback" and beyond["inside"]
    with pytest.raises(nimble.NimbleError, match="keys on"):
        exe.explain(table.name, 5)


def test_a_multi_dim_table_survives_save_and_load(tmp_path):
    exe, table, _, _ = compiled()
    exe.save(tmp_path / "bmm.nimble")
    loaded = nimble.Executable.load(tmp_path / "bmm.nimble")
    [again] = [p for p in loaded.packed if isinstance(p, DispatchEntry)]
    assert again == table
    x, y = np.ones((2, 9, K), "float32"), np.ones((2, 3, K), "float32")
    np.testing.assert_array_equal(nimble.VirtualMachine(loaded).run(x, y), np.full((2, 9, 3), K, "float32"))


SIZES = st.one_of(st.sampled_from([0, 1, 2, 7, 8, 9, 13, 63, 64, 65, 100]), st.integers(0, 130))


@settings(max_examples=40, deadline=None)
@given(n=SIZES, m=SIZES)
def test_every_shape_gets_a_correct_result_and_its_boxs_kernel_on_both_vms(n, m):
    exe, table, py, native = compiled()
    rng = np.random.default_rng(n * 1000 + m)
    x, y = rng.standard_normal((2, n, K)).astype("float32"), rng.standard_normal((2, m, K)).astype("float32")
    want = np.einsum("bnk,bmk->bnm", x.astype("float64"), y.astype("float64"))
    got = py.run(x, y)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(native.run(x, y), got)
    k = table.index_of((n, m))
    key = expected_box(n, m)
    assert (table.ranges[k].label == key) if key else table.ranges[k].source == "fallback"


def test_native_and_python_vms_count_the_same_kernel_per_box():
    _, table, py, native = compiled()
    for vm in (py, native):
        for n, m in [(2, 3), (2, 30), (20, 3), (20, 30), (200, 3)]:
            vm.run(np.ones((2, n, K), "float32"), np.ones((2, m, K), "float32"))
    assert py.shape_histogram()[table.name] == native.shape_histogram()[table.name]


def test_boxes_must_bound_every_dim():
    kernel = compiled()[1].kernels[0]
    box = BucketRange(1, 8, "n=1..8", extra=())
    with pytest.raises(FormatError, match="must bound 2 dims"):
        DispatchEntry("bmm", (0, 1), (box,), (kernel,), ((0, 1, 2),), "n", ((1, 1, "m"),))
    with pytest.raises(FormatError, match="reads axis 5"):
        DispatchEntry("bmm", (0, 5), (BucketRange(1, 8, "n=1..8"),), (kernel,), ((0, 1, 2),), "n")


def test_diagonal_records_keep_a_one_dim_table():
    db = Database(Path(tempfile.mkdtemp()) / "records.db")
    db.add_records([record("m=1..8,n=1..8", 1, 16), record("m=9..64,n=9..64", 2, 32)])
    entry, _ = template_dispatch("batch_matmul", SIG, "bmm", (0, 1), lambda c, cs: (0, 1, 2), db,
                                 dim_places={"n": (0, 1), "m": (1, 1)})
    assert entry.extra_dims == () and [r.label for r in entry.ranges][:2] == ["m=1..8,n=1..8", "m=9..64,n=9..64"]


def constant_kernel(k: int) -> KernelEntry:
    """A kernel of x (n, m) that writes k: which box's kernel ran is visible in the result."""
    n, m = te.var("n"), te.var("m")
    x = te.placeholder((n, m), name="X")
    out = te.compute((1,), lambda i: te.const(float(k), "float32"), name="C")
    return KernelEntry.from_kernel(nimble.build([out], [x, out], name=f"box{k}"))


@functools.cache
def picker():
    """A hand-made table over (n, m) = x.shape: boxes in priority order (the second overlaps the first)."""
    boxes = [((1, 4), (1, 4)), ((1, 4), (1, 8)), ((5, 8), (1, 8)), ((20, 30), (20, 30))]
    ranges = tuple(BucketRange(nlo, nhi, f"box{k}", extra=((mlo, mhi),)) for k, ((nlo, nhi), (mlo, mhi))
                   in enumerate(boxes))
    entry = DispatchEntry("pick", (0, 0), ranges, tuple(constant_kernel(k) for k in range(len(boxes))),
                          ((0, 1),) * len(boxes), "n", ((0, 1, "m"),))
    main = VMFunction("main", ("x",), (LoadConsti(4, 1), AllocStorage(1, 64, 0, 2), AllocTensor(2, 0, (1,), "float32", 3),
                                       InvokePacked(0, (0, 3), 1), Ret(3)), 4)
    exe = Executable((main,), (), (entry,), {"main": 0}, host_metadata())
    return entry, nimble.VirtualMachine(exe, backend="python"), nimble.VirtualMachine(exe, backend="native")


def test_both_vms_pick_the_first_box_that_holds_a_point_else_the_nearest():
    entry, py, native = picker()
    assert entry.index_of((2, 2)) == 0 and entry.index_of((2, 6)) == 1 and entry.index_of((6, 2)) == 2
    assert entry.index_of((0, 0)) == 0 and entry.index_of((12, 12)) == 2 and entry.index_of((18, 40)) == 3
    for n in range(0, 34):
        for m in range(0, 34, 3):
            x = np.zeros((n, m), "float32")
            want = entry.index_of((n, m))
            assert py.run(x)[0] == want, (n, m)
            assert native.run(x)[0] == want, (n, m)
