"""Kernel temporaries come from the runtime's workspace cache (codegen/workspace.py): a kernel called again
reuses its blocks instead of asking the system (and taking page faults) for them, from several threads at once;
small blocks go to malloc; ``release`` frees the cache; an allocation that cannot be met is a MemoryError."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from nimble import te
from nimble.codegen import workspace
from nimble.codegen.build import build


def _kernel_with_a_temporary(name: str):
    """out[i] = sum_j (a[i] * 2)[j-window]: the doubled row is a root stage of n * 4096 floats (a temporary)."""
    n = te.var("n")
    a = te.placeholder((n, 4096), name="a")
    doubled = te.compute((n, 4096), lambda i, j: a[i, j] * 2.0, name="doubled")
    r = te.reduce_axis(4096, "r")
    out = te.compute((n,), lambda i: te.sum(doubled[i, r], axis=r), name="out")
    return build(te.create_schedule(out), [a, out], name=name)


@pytest.fixture(scope="module")
def summed():
    return _kernel_with_a_temporary("ws_summed")


def _delta(before: dict, after: dict) -> dict:
    return {k: after[k] - before[k] for k in before}


def test_a_kernel_called_again_reuses_its_temporary(summed):
    a = np.random.default_rng(0).standard_normal((8, 4096)).astype("float32")  # a 128 KiB temporary
    summed(a)
    before = workspace.stats()
    for _ in range(20):
        np.testing.assert_allclose(summed(a), (a * 2).sum(axis=1), rtol=1e-4, atol=1e-3)
    got = _delta(before, workspace.stats())
    assert got["hits"] >= 20 and got["misses"] == 0, got
    assert got["cached_frees"] >= 20


def test_a_bigger_call_grows_the_block_and_a_smaller_one_fits_in_it(summed):
    workspace.release()
    small, big = (np.ones((m, 4096), "float32") for m in (4, 40))  # 64 KiB and 640 KiB
    before = workspace.stats()
    summed(small)
    summed(big)  # the cached 64 KiB block is too small: a fresh one
    summed(small)  # best fit: the cache holds the 64 KiB and the 640 KiB block; the small one serves
    summed(big)
    got = _delta(before, workspace.stats())
    assert (got["misses"], got["hits"]) == (2, 2), got


def test_small_temporaries_go_to_malloc():
    kernel = _kernel_with_a_temporary("ws_small")
    a = np.ones((2, 4096), "float32")  # 32 KiB: below the cache's minimum
    kernel(a)
    before = workspace.stats()
    np.testing.assert_allclose(kernel(a), np.full(2, 8192.0, "float32"))
    got = _delta(before, workspace.stats())
    assert got["hits"] == got["misses"] == got["cached_frees"] == 0 and got["system_frees"] >= 1, got


def test_release_frees_the_cached_blocks(summed):
    summed(np.ones((16, 4096), "float32"))
    assert workspace.release() >= 16 * 4096 * 4
    assert workspace.release() == 0
    before = workspace.stats()
    summed(np.ones((16, 4096), "float32"))
    assert _delta(before, workspace.stats())["misses"] == 1


def test_threads_share_the_cache_without_sharing_a_block(summed):
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((int(m), 4096)).astype("float32") for m in rng.integers(4, 64, size=64)]

    def run(a):
        return summed(a), (a * 2).sum(axis=1)

    with ThreadPoolExecutor(4) as pool:
        for got, want in pool.map(run, inputs):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_a_temporary_the_system_cannot_give_is_a_memory_error():
    n = te.var("n")
    a = te.placeholder((n,), name="a")
    huge = te.compute((n * (1 << 40),), lambda i: a[i % n] + 1.0, name="huge")  # 4 TiB per row of a
    out = te.compute((n,), lambda i: huge[i], name="out")
    kernel = build(te.create_schedule(out), [a, out], name="ws_huge")
    with pytest.raises(MemoryError, match="temporary"):
        kernel(np.ones(1, "float32"))
