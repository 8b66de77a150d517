"""The storage pool: aligned blocks, size classes, reuse across runs, outputs kept by users."""
import numpy as np
import pytest
from test_vm_programs import broadcast_exe, countdown_exe

import nimble
from nimble.vm import StoragePool, VirtualMachine
from nimble.vm.storage import size_class


def test_size_classes_waste_at_most_a_quarter():
    for n in list(range(0, 5000)) + [10**6 + 1, 3 * 2**20 + 5]:
        c = size_class(n)
        assert c >= max(n, 64) and (n <= 64 or c <= 1.25 * n)
    assert [size_class(n) for n in (1, 64, 65, 100, 129, 1000)] == [64, 64, 80, 112, 160, 1024]


def test_storages_are_64_byte_aligned_and_views_keep_them_alive():
    pool = StoragePool()
    storages = [pool.alloc(n) for n in (1, 100, 4096, 12345)]
    tensors = [s.tensor(0, (s.nbytes // 4,), np.float32) for s in storages]
    assert all(t.ctypes.data % 64 == 0 for t in tensors)
    del storages
    assert pool.stats().bytes_free == 0  # the tensors still view every block
    del tensors
    stats = pool.stats()
    assert stats.bytes_in_use == 0 and stats.bytes_free == 64 + 112 + 4096 + 14336
    assert pool.alloc(13000).nbytes == 13000 and pool.system_allocations == 4  # reused the 14336 block


def test_tensor_outside_its_storage_is_a_shape_error():
    s = StoragePool().alloc(16)
    with pytest.raises(nimble.ShapeError, match=r"shape \(5,\) \(20 bytes\) at offset 0 does not fit in a storage of 16"):
        s.tensor(0, (5,), np.float32)


def test_second_run_allocates_nothing_from_the_system():
    vm = VirtualMachine(broadcast_exe())
    x, b = np.ones((6, 10), np.float32), np.ones(10, np.float32)
    vm.run(x, b)
    first = vm.pool.system_allocations
    assert first == 3  # the output shape, its byte count, the output
    for _ in range(3):
        vm.run(x, b)
    assert vm.pool.system_allocations == first
    assert vm.pool.stats().bytes_in_use == 0


def test_output_kept_by_the_user_is_never_overwritten():
    vm = VirtualMachine(broadcast_exe())
    b = np.zeros(4, np.float32)
    kept = vm.run(np.ones((2, 4), np.float32), b)
    again = vm.run(np.full((2, 4), 5, np.float32), b)
    assert not np.shares_memory(kept, again)
    assert (kept == 1).all() and (again == 5).all()
    del kept
    vm.run(np.ones((2, 4), np.float32), b)  # the first output's block is back in the pool
    assert vm.pool.system_allocations == 4


def test_recursion_frees_every_frame_storage_on_return():
    vm = VirtualMachine(countdown_exe())
    vm.run(np.array(200))
    system = vm.pool.system_allocations
    assert vm.pool.stats().bytes_in_use == 0 and vm.pool.peak_bytes_in_use >= 200 * 64  # one live block a frame
    vm.run(np.array(200))
    assert vm.pool.system_allocations == system


def test_profile_reports_kernels_instructions_and_allocations():
    vm = VirtualMachine(broadcast_exe())
    report = vm.profile(np.ones((3, 5), np.float32), np.ones(5, np.float32))
    d = report.to_dict()
    assert set(d["kernels"]) == {"add_shape", "nbytes_f32_2d", "add_rows_f32"}
    assert all(k["calls"] == 1 and k["time_s"] > 0 for k in d["kernels"].values())
    assert d["instructions"]["invoke_packed"]["count"] == 3 and d["instructions"]["alloc_storage"]["count"] == 3
    assert d["storage_allocations"] == 3 and d["peak_bytes"] >= 64 + 64 + 64
    np.testing.assert_array_equal(report.outputs, np.full((3, 5), 2, np.float32))
    table = report.table()
    assert "add_rows_f32" in table and "invoke_packed" in table and "peak bytes in use" in table


def test_constants_of_an_executable_start_on_a_cache_line():
    """numpy puts large arrays 16 bytes past a page; an executable's constants are moved to 64-byte boundaries
    (vector loads of weights then never straddle two lines), values and write flags unchanged."""
    from nimble.vm.storage import aligned

    raw = np.zeros(1 << 20, np.uint8)
    off = (16 - raw.ctypes.data) % 64
    odd = raw[off:off + 4 * 3000].view(np.float32).reshape(30, 100)
    odd[...] = np.arange(3000, dtype=np.float32).reshape(30, 100)
    odd.flags.writeable = False
    assert odd.ctypes.data % 64 == 16
    fixed = aligned(odd)
    assert fixed.ctypes.data % 64 == 0 and not fixed.flags.writeable
    np.testing.assert_array_equal(fixed, odd)
    assert aligned(fixed) is fixed
    objects = np.array([{}, 1], dtype=object)
    assert aligned(objects) is objects
    strided = np.arange(64, dtype=np.float64).reshape(8, 8)[:, ::2]
    np.testing.assert_array_equal(aligned(strided), strided)

    from nimble import ops as nb
    from nimble.ir.builder import var
    from nimble.ir.expr import Constant, Function
    from nimble.ir.module import IRModule

    x = var("x", shape=(30, 100))
    exe = nimble.compile(IRModule({"main": Function([x], nb.add(x, Constant(odd, "w")))}))
    assert all(c.ctypes.data % 64 == 0 for c in exe.constants if isinstance(c, np.ndarray) and c.nbytes)
    got = nimble.VirtualMachine(exe).run(np.ones((30, 100), np.float32))
    np.testing.assert_array_equal(got, odd + 1)


def _dense_reshape_dense_module():
    """x (n, 8) -> dense (n, 12) -> reshape (n, 3, 4), then reshaped again into a second dense and expanded into
    the second output: lone reshapes between opaque groups, views used after their source register is dead."""
    from nimble import ir
    from nimble import ops as nb

    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((12, 8)).astype(np.float32)
    w2 = rng.standard_normal((5, 4)).astype(np.float32)
    x = ir.var("x", shape=(ir.Any, 8))
    b = ir.Builder()
    h = b.let("h", nb.dense(x, ir.const(w1)))
    r = b.let("r", nb.reshape(h, newshape=(-1, 3, 4)))
    e = b.let("e", nb.expand_dims(r, axis=0))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], b.ret(ir.tuple_(nb.dense(nb.reshape(r, newshape=(-1, 4)), ir.const(w2)), e))))
    return mod, w1, w2


def test_a_lone_reshape_is_a_view_not_a_copy():
    mod, w1, w2 = _dense_reshape_dense_module()
    exe = nimble.compile(mod)
    text = exe.disassemble()
    assert text.count("reshape_tensor") >= 2, text  # the reshape and the expand_dims
    vm = VirtualMachine(exe)
    for n in (0, 1, 7, 30):
        x = np.random.default_rng(n).standard_normal((n, 8)).astype(np.float32)
        h = x @ w1.T
        out, e = vm.run(x)
        np.testing.assert_allclose(np.asarray(out), h.reshape(-1, 4) @ w2.T, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(e), h.reshape(1, -1, 3, 4), rtol=1e-5, atol=1e-5)
