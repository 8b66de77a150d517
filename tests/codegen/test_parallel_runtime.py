"""nimble's parallel-for runtime (codegen/parallel.py): every chunk runs once, from any number of
threads, concurrent callers, and a forked child."""
import multiprocessing as mp
import os
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nimble
from nimble import te
from nimble.codegen import num_threads, set_num_threads
from nimble.codegen.parallel import ENTRY, runtime_ir


@pytest.fixture(scope="module")
def kernel():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    C = te.compute((n,), lambda i: A[i] * 2.0 + 1.0, name="C")
    s = te.create_schedule(C)
    io, _ = s[C].split(s[C].axis[0], 16)
    s[C].parallel(io)
    return nimble.build(s, [A, C], name="par_affine")


@pytest.fixture
def threads():
    saved = num_threads()
    yield set_num_threads
    set_num_threads(saved)


def test_kernel_calls_the_runtime_not_libgomp(kernel):
    text = kernel.llvm_ir()
    assert ENTRY in text and "GOMP" not in text
    assert ENTRY in runtime_ir()


@settings(max_examples=40, deadline=None)
@given(n=st.one_of(st.sampled_from([0, 1, 2, 15, 16, 17, 2047, 2048, 2049, 1 << 16]), st.integers(0, 300_000)),
       nthreads=st.integers(1, 9))
def test_every_element_once(kernel, n, nthreads):
    saved = num_threads()
    set_num_threads(nthreads)
    try:
        a = np.random.default_rng(n).standard_normal(n).astype(np.float32)
        c = np.full(n, np.nan, np.float32)
        kernel(a, c)
        np.testing.assert_array_equal(c, a * np.float32(2) + np.float32(1))
    finally:
        set_num_threads(saved)


def test_concurrent_callers(kernel, threads):
    threads(2)
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        for _ in range(200):
            a = rng.standard_normal(int(rng.integers(0, 200_000))).astype(np.float32)
            c = kernel(a)
            if not np.array_equal(c, a * np.float32(2) + np.float32(1)):
                errors.append(seed)

    ts = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in ts), "a caller hung"
    assert errors == []


def _child(kernel, q):
    set_num_threads(2)
    a = np.arange(100_000, dtype=np.float32)
    ok = all(np.array_equal(kernel(a), a * 2 + 1) for _ in range(50))
    q.put(ok and threading.active_count() >= 1)


def test_forked_child_runs_without_the_parents_workers(kernel, threads):
    threads(2)
    kernel(np.ones(100_000, np.float32))  # the parent's workers exist now
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(kernel, q))
    p.start()
    p.join(timeout=60)
    alive = p.is_alive()
    if alive:
        p.kill()
    assert not alive, "the forked child hung in the parallel runtime"
    assert q.get(timeout=5) is True


def test_runtime_object_needs_only_symbols_this_process_has():
    from nimble.codegen import parallel
    from nimble.vm.validate import object_symbols

    _, obj = parallel.saved_object()
    defined, undefined = object_symbols(obj, "parallel runtime")  # FormatError if one is missing
    assert ENTRY in defined
    assert "__register_atfork" in undefined


def test_a_straggling_worker_sends_the_next_regions_to_the_caller(threads, request):
    """A worker that holds a chunk far longer than the caller works (as when another process takes its core)
    makes the following regions run serially on the calling thread for a while; then they go parallel again."""
    import ctypes
    import time

    from nimble.codegen import parallel

    entry = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32)(parallel.register())
    main, ran = threading.get_ident(), []
    parallel.set_contention_watch(False)  # this test is about the backoff; a loaded CI machine would mark contention
    request.addfinalizer(lambda: parallel.set_contention_watch(True))

    @ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
    def chunk(_data, lo, hi):
        on_worker = threading.get_ident() != main
        ran.append(on_worker)
        time.sleep(0.03 if on_worker else 0.0005)

    for _ in range(20):  # until a worker took a chunk in a region (it may wake after the caller took them all)
        ran.clear()
        entry(ctypes.cast(chunk, ctypes.c_void_p), None, 8, 2)
        if any(ran):
            break
    assert any(ran), "no worker ever took a chunk"
    assert parallel.serial_left() > 0
    ran.clear()
    entry(ctypes.cast(chunk, ctypes.c_void_p), None, 8, 2)
    assert ran == [False]  # backing off: the whole range in one call on the caller
    deadline = time.time() + 5
    while parallel.serial_left() > 0 and time.time() < deadline:
        time.sleep(0.01)
    assert parallel.serial_left() == 0


def test_stats_count_parallel_regions(kernel, threads):
    from nimble.codegen import parallel

    threads(2)
    before = parallel.stats()
    a = np.ones(100_000, np.float32)
    for _ in range(20):
        kernel(a)
    after = parallel.stats()
    assert set(after) == set(parallel.STATS)
    ran = (after["parallel"] - before["parallel"]) + (after["serial"] - before["serial"])
    assert ran == 20  # every region at 2 threads is counted once, one way or the other
    assert all(after[k] >= before[k] for k in after)


def test_an_oversubscribed_machine_marks_the_pool_contended(kernel, threads):
    """Processes spinning on every core switch this one out involuntarily; the runtime notices (a worker's spin
    or the process's context-switch rate), runs the next regions serially and stops waking workers."""
    import subprocess
    import sys
    import time

    from nimble.codegen import parallel

    threads(2)
    parallel.set_contention_watch(False)  # clears a mark left by earlier tests
    parallel.set_contention_watch(True)
    assert parallel.contended_left() == 0
    burners = [subprocess.Popen([sys.executable, "-c", "import time\nt = time.time() + 20\nwhile time.time() < t: pass"])
               for _ in range((os.cpu_count() or 2) + 1)]
    try:
        a = np.ones(200_000, np.float32)  # above NIMBLE_PARALLEL_MIN_WORK: the kernel calls the runtime
        before = parallel.stats()
        deadline = time.time() + 15
        while parallel.contended_left() == 0 and time.time() < deadline:
            for _ in range(50):
                kernel(a)
        assert parallel.contended_left() > 0, "never noticed the machine was oversubscribed"
        seen = parallel.stats()
        assert seen["switch_bursts"] + seen["preemptions"] > before["switch_bursts"] + before["preemptions"]
        for _ in range(20):
            np.testing.assert_array_equal(kernel(a), a * 2 + 1)
        after = parallel.stats()
        assert after["serial"] - seen["serial"] == 20
        assert after["parallel"] == seen["parallel"] and after["wakes"] == seen["wakes"]
    finally:
        for p in burners:
            p.kill()
            p.wait()


def test_the_contention_watch_can_be_turned_off(kernel, threads, request):
    from nimble.codegen import parallel

    parallel.set_contention_watch(False)
    request.addfinalizer(lambda: parallel.set_contention_watch(True))
    assert parallel.contended_left() == 0
    threads(2)
    a = np.ones(100_000, np.float32)
    before = parallel.stats()
    for _ in range(10):
        kernel(a)
    assert parallel.contended_left() == 0
    assert parallel.stats()["parallel"] - before["parallel"] + parallel.stats()["serial"] - before["serial"] == 10


@pytest.mark.parametrize("gaps, marks", [
    # background threads of an idle guest: a few short gaps spread over the window
    ([(0, 300_000), (100_000_000, 300_000), (200_000_000, 300_000), (300_000_000, 300_000)], False),
    # a few long gaps, far apart: 8% of the time lost
    ([(0, 10_000_000), (300_000_000, 10_000_000), (350_000_000, 10_000_000)], False),
    # two gaps are not enough however long
    ([(0, 13_000_000), (15_000_000, 13_000_000)], False),
    # long gaps that each open a new window
    ([(0, 13_000_000), (500_000_000, 13_000_000), (1_000_000_000, 13_000_000)], False),
    # another process takes the core for a scheduler slice every few ms: most of the time lost
    ([(0, 13_000_000), (15_000_000, 13_000_000), (30_000_000, 13_000_000)], True),
    # the same rate after sporadic gaps in the same window
    ([(0, 300_000), (200_000_000, 13_000_000), (215_000_000, 13_000_000), (230_000_000, 13_000_000)], True),
])
def test_a_worker_marks_the_pool_contended_only_when_it_loses_its_core_often(gaps, marks, request):
    """A spinning worker switched out by another thread reports the gap; sporadic gaps (a guest's kernel threads,
    measured at 5-16 a second on an idle 2-vCPU cloud guest) must not turn the pool serial for a second, a
    competing process (a gap per scheduler slice, a third of the time) must."""
    from nimble.codegen import parallel

    request.addfinalizer(lambda: (parallel.set_contention_watch(False), parallel.set_contention_watch(True)))
    parallel.set_contention_watch(False)  # clears any mark
    parallel.set_contention_watch(True)
    future = 1 << 61  # time-stamp-counter values far ahead of now: a mark made there is still running when read
    parallel.feed_lost_core([(future + now, gap) for now, gap in gaps])
    assert (parallel.contended_left() > 0) is marks



def _record_chunks(entry_name: str, extent: int, nthreads: int, flags=None) -> list:
    """Call the runtime entry ``entry_name`` directly with a Python range function; (thread, lo, hi) per chunk."""
    import ctypes

    import llvmlite.binding as llvm

    from nimble.codegen import parallel

    parallel.register()
    ranges = []
    callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)(
        lambda data, lo, hi: ranges.append((threading.get_ident(), lo, hi)))
    args = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32]
    if flags is not None:
        args.append(ctypes.c_int32)
    fn = ctypes.CFUNCTYPE(None, *args)(llvm.address_of_symbol(entry_name))
    fn(ctypes.cast(callback, ctypes.c_void_p), None, extent, nthreads, *([] if flags is None else [flags]))
    return ranges


@pytest.mark.parametrize("flags", [0, 1], ids=["forward", "backwards"])
@pytest.mark.parametrize("extent", [2, 7, 8, 33, 1000])
@pytest.mark.parametrize("nthreads", [2, 3])
def test_each_thread_takes_its_own_share_in_order_and_every_chunk_runs_once(extent, flags, nthreads):
    """A thread claims the chunks of its share (the caller: the first) in order, last first with the backwards
    flag; chunks it finds taken are skipped, and others' chunks are taken only after."""
    from nimble.codegen.parallel import ENTRY, MAX_CHUNKS

    ranges = _record_chunks(ENTRY, extent, nthreads, flags)
    covered = sorted((lo, hi) for _, lo, hi in ranges)
    assert covered[0][0] == 0 and covered[-1][1] == extent
    assert all(a[1] == b[0] for a, b in zip(covered, covered[1:])), covered  # each element once
    assert len(ranges) <= min(extent, MAX_CHUNKS)
    chunk, nchunks = covered[0][1] - covered[0][0], len(covered)
    caller = [lo // chunk for t, lo, _ in ranges if t == threading.get_ident()]
    share = range(0, nchunks // nthreads)
    own = [k for k in caller if k in share]
    assert own == sorted(own, reverse=bool(flags)), (caller, list(share))
    assert caller[:len(own)] == own, caller  # its own share before anything else


def test_the_entry_without_flags_still_serves_kernels_saved_before_it():
    from nimble.codegen.parallel import LEGACY_ENTRY

    ranges = _record_chunks(LEGACY_ENTRY, 100, 2)
    covered = sorted((lo, hi) for _, lo, hi in ranges)
    assert covered[0][0] == 0 and covered[-1][1] == 100
    assert all(a[1] == b[0] for a, b in zip(covered, covered[1:]))


def test_a_lone_burst_of_switches_does_not_mark_the_pool_but_bursts_in_a_row_do():
    """The caller's involuntary context switches, sampled per window: MIN_SWITCHES in one window is a burst; only
    BURST_WINDOWS bursts in a row mark the pool contended (a quiet guest has lone ones); in probation one does."""
    from nimble.codegen import parallel
    from nimble.codegen.parallel import BURST_WINDOWS, MIN_SWITCHES, PROBATION_SAMPLE_TICKS, SAMPLE_TICKS

    parallel.set_contention_watch(False)  # clears a mark and the samples of earlier tests
    parallel.set_contention_watch(True)
    try:
        now = 1 << 60  # far past the time-stamp counter: a mark made at `now` is still running when it is read
        switches = 0
        parallel.feed_switches([(now, switches)], thread=7)  # the thread's first sample: a start, no burst
        bursts = parallel.stats()["switch_bursts"]
        for _ in range(3):  # lone bursts, each followed by a quiet window
            now, switches = now + SAMPLE_TICKS, switches + MIN_SWITCHES
            parallel.feed_switches([(now, switches), (now + SAMPLE_TICKS, switches)], thread=7)
            now += SAMPLE_TICKS
            assert parallel.contended_left() == 0 and parallel.stats()["switch_bursts"] == bursts
        parallel.feed_switches([(now, switches)], thread=8)  # another thread: its first sample starts over
        assert parallel.contended_left() == 0
        samples = [(now + k * SAMPLE_TICKS, switches + k * MIN_SWITCHES) for k in range(1, BURST_WINDOWS + 1)]
        parallel.feed_switches(samples[:-1], thread=8)
        assert parallel.contended_left() == 0
        parallel.feed_switches(samples[-1:], thread=8)
        assert parallel.contended_left() > 0 and parallel.stats()["switch_bursts"] == bursts + 1
        now, switches = samples[-1]
        parallel.feed_switches([(now + PROBATION_SAMPLE_TICKS, switches + 1)], thread=8)  # probation: one is enough
        assert parallel.stats()["switch_bursts"] == bursts + 2
    finally:
        parallel.set_contention_watch(False)
        parallel.set_contention_watch(True)
