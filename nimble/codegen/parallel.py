"""nimble's parallel-for runtime: what a kernel's parallel loop calls instead of libgomp.

    void nimble_parallel_for_v2(void (*range)(void *data, i64 lo, i64 hi), void *data,
                                i64 extent, i32 nthreads, i32 flags)

runs ``range`` over ``[0, extent)`` in chunks on a pool of ``nthreads - 1`` worker threads and
the calling thread (``nimble_parallel_for_v1``, without flags, stays for kernels saved before v2).
Each thread owns a contiguous share of the chunks and claims its own first, in order (last to first
with ``FLAG_BACKWARDS``), then any left, from the far end: on a quiet machine a thread runs the same
part of every call of a kernel, so what that part read stays in its core's caches (an RNN's step
kernel over weights that fit the cores' L2s together but not one alone), and a late thread's share
is still taken by the others. Why not libgomp: a ``GOMP_parallel`` region ends at a barrier every thread
of the team must reach, so on a machine where another process holds a core, a worker the OS has
not scheduled yet stalls the whole region for a scheduler time slice (measured 5-80x slowdowns at
2 threads). Here the work is ``nthreads * CHUNKS_PER_THREAD`` chunks (at most ``MAX_CHUNKS``) claimed through one
atomic word; the caller takes chunks too, and the call returns when every chunk is *done*, not
when every worker has arrived: a worker that wakes late finds nothing left and sleeps again.

The counter holds ``generation << 32 | claimed chunks`` (a bit each); a job is published by writing its
fields under the marker ``0xFFFFFFFF`` (every bit claimed) and then storing ``generation << 32`` with the
bits past its chunk count set. A worker reads the
fields after seeing the generation and claims chunks with compare-and-swap on the same word, so
it never runs a chunk of one job with the fields of another. Idle workers spin for ``WORKER_SPIN_TICKS`` (the VM
calls kernels back to back) and then sleep on a futex. One job runs at a time: a caller that
finds the pool busy (another thread, or a parallel loop inside a chunk) runs its loop serially.
On a busy machine a worker may claim a chunk and then lose its core to another process for a
scheduler time slice (milliseconds) while the caller waits for that chunk; when the caller waited
longer than it worked (and at least ``STALL_TICKS``), the next regions run serially on the caller
for a backoff period that doubles while stalls repeat (``BACKOFF_*``) and shrinks after clean
regions, so two threads on a loaded machine cost about what one does instead of a time slice per
region. A region that cost more than the caller's own time per chunk times all chunks (the second thread
made it slower: a worker cold in cache or woken late on a loaded core) backs off the same way, however
small it is. A machine found oversubscribed (a spinning worker lost its core to other threads for much of
~0.1 s, or the calling thread was switched out involuntarily several times within ~20 ms: ``LOST_*``,
``SAMPLE_TICKS``) marks the pool contended for ``CONTENDED_TICKS``: regions run serially on the caller and
idle workers sleep at once, so a second thread costs about nothing where it cannot help. ``stats()`` counts
what the runtime decided. A pool without workers (creation failed) is still correct: the caller runs every
chunk; a forked child forgets its parent's workers (glibc's ``__register_atfork``) and starts its own.

The module is compiled once per process (object cache) and its entry registered for the JIT
linker under the ABI name above; kernels name that symbol, so the implementation may change
without rebuilding them.
"""
from __future__ import annotations

import threading

from llvmlite import ir

from . import workspace

ENTRY = "nimble_parallel_for_v2"
LEGACY_ENTRY = "nimble_parallel_for_v1"  # (range, data, extent, nthreads): v2 with no flags, for saved kernels
FLAG_BACKWARDS = 1  # v2's flags: each thread runs its own chunks last to first (a loop run backwards)
SERIAL_LEFT = "nimble_parallel_serial_left_v1"
CONTENDED_LEFT = "nimble_parallel_contended_left_v1"
STATS_ENTRY = "nimble_parallel_stats_v1"
WATCH_ENTRY = "nimble_parallel_watch_v1"
LOST_CORE_ENTRY = "nimble_parallel_lost_core_v1"
SWITCHES_ENTRY = "nimble_parallel_switches_v1"
STATS = ("serial", "parallel", "wakes", "worker_sleeps", "stragglers", "preemptions", "switch_bursts", "steals")
CHUNKS_PER_THREAD = 4
# Chunks are claimed by setting their bit in the low half of the job word, so a job has at most 32 of them
# (CHUNKS_PER_THREAD each up to 8 threads, fewer each beyond; more than 32 threads share 32 chunks).
MAX_CHUNKS = 32
# A worker spins this long (time-stamp-counter ticks, ~0.3-0.5 ns each: ~60-100 us) for the next job before it
# sleeps: the VM calls kernels back to back, and waking a sleeping worker (a futex wake, and on a VM an
# interrupt to a halted vCPU) took longer than small kernels run (Tree-LSTM at 2 threads: 2x the 1-thread
# time with ~5 us of spinning, 0.8x with this, on a 2-vCPU Zen 1 guest). A pause count is no clock: a pause
# is ~3 cycles on Zen 1 and ~140 on Skylake.
WORKER_SPIN_TICKS = 200_000
# Oversubscription (another process wants our cores): a spinning worker that sees the time-stamp counter
# jump by more than PREEMPTED_TICKS (~0.1 ms, longer than interrupts and shorter than a scheduler slice)
# between two loop iterations, while its count of involuntary context switches grew, lost its core to another
# thread of this machine. One such gap proves little: an idle 2-vCPU cloud guest (Xeon, session 30) switched a
# spinning thread out 5-16 times a second for its own kernel threads (0.3-0.9% of the time, mostly < 0.5 ms),
# and marking the pool contended for each turned 78% of BERT's regions serial at 2 threads (1.35x the 1-thread
# speed where ORT got 1.85x). A process burning a core cost the same spinner ~90 gaps a second of 3-10 ms, a
# third of its time. So the pool is marked when LOST_MIN_GAPS or more gaps within LOST_WINDOW_TICKS (~0.1-0.2 s)
# add up to LOST_NUM / LOST_DEN of the time since the first. A jump without a switch is time the hypervisor
# took from the vCPU (``steals``, ignored: no thread count avoids it). That, or the caller's switch rate below,
# marks the pool contended for CONTENDED_TICKS (~1.3-2 s): regions run serially on the caller and idle
# workers sleep at once instead of spinning (three runnable threads on two cores run at 2/3 speed each, so a
# spinning worker slows the caller's serial work between kernels by 1.5x). When the mark runs out, regions go
# parallel again and are watched closely (PROBATION_*). A straggling chunk alone only backs off (below): a
# quiet machine has those too.
PREEMPTED_TICKS = 250_000
LOST_WINDOW_TICKS, LOST_MIN_GAPS, LOST_NUM, LOST_DEN = 400_000_000, 3, 1, 8
CONTENDED_TICKS = 4_000_000_000
# The caller can lose its core too (a scheduler may put it beside the other process while a worker spins
# alone): every SAMPLE_TICKS (~10-20 ms) of parallel regions the calling thread's involuntary context switches
# are read (getrusage); MIN_SWITCHES or more in such a window (BURST_WINDOWS in a row) mark the pool contended. A
# quiet machine switches a thread out involuntarily a few times a second at most; one shared with a busy process,
# every few ms.
SAMPLE_TICKS = 40_000_000
MIN_SWITCHES = 3
# ... in BURST_WINDOWS consecutive windows: a lone burst happens on a quiet 2-vCPU guest too (another process's
# thread pool going idle, a kernel thread), and one marked the pool contended for seconds in the middle of a
# benchmark (ONNX LSTM at 2 threads: 63.5 ms, 22 ms unmarked); a busy core switches the caller out in every window.
BURST_WINDOWS = 2
# For PROBATION_TICKS (~5-10 s) after a contended period began, the machine is likely still loaded when it
# ends: samples are then taken every PROBATION_SAMPLE_TICKS (~1 ms) and one involuntary switch in such a window
# marks the pool contended again, so a second thread costs ~1 ms, not ~20 ms, each time the mark runs out.
PROBATION_TICKS = 20_000_000_000
PROBATION_SAMPLE_TICKS = 2_000_000
RUSAGE_THREAD, RUSAGE_WORDS, NIVCSW_WORD = 1, 18, 17  # struct rusage: 2 timevals, 14 longs; ru_nivcsw last
WAKE_RETRY_TICKS = 2_000_000  # ~1 ms: a wake not answered by then is sent again
CALLER_SPINS = 256  # pause iterations between sched_yield calls while waiting for chunks
MAX_WORKERS = 255
# Straggler backoff, in time-stamp-counter ticks (~0.3-0.5 ns each): a region whose caller waited longer for
# other threads' chunks than it spent on its own, and at least STALL_TICKS, means a worker lost its core to
# another process; regions then run serially for max(twice the last backoff, STALL_COST_FACTOR x the wait)
# (so a probe's stall costs at most ~1/4 of the time), clamped, halved after each clean parallel region. Not
# more: a cloud guest's vCPU stolen by the hypervisor for 1-15 ms stalls a region as a busy core does, and at 16x
# the wait BERT ran 7% of its 2-thread regions serially on an idle Xeon guest (1-3% at 4x); a machine that
# stays busy is caught by the contention mark.
STALL_TICKS = 150_000
STALL_COST_FACTOR = 4
BACKOFF_MIN_TICKS = 2_000_000
# A region that cost more than the caller alone would have (wall > LOSS_NUM / LOSS_DEN x the caller's time per
# chunk x all chunks) backs off too, however small: on a loaded machine small kernels lose most to a second
# thread (a worker's cold cache, a late wake-up), each by less than STALL_TICKS. LOSS_MIN_TICKS ignores
# regions whose caller waited less than a few hundred nanoseconds.
LOSS_NUM, LOSS_DEN = 9, 8
LOSS_MIN_TICKS = 1_000
BACKOFF_MAX_TICKS = 600_000_000

I1, I32, I64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)
PTR = ir.PointerType()
RANGE_FN = ir.FunctionType(ir.VoidType(), [PTR, I64, I64])
WRITING = 0xFFFFFFFF
SYS_FUTEX, FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE = 202, 128, 129


def _c(v, t=I64):
    return ir.Constant(t, v)


class FnPtr:
    """A loaded function pointer with its type, for an indirect ``IRBuilder.call``."""

    def __init__(self, value, fnty: ir.FunctionType):
        self.value, self.function_type, self.type = value, fnty, value.type

    def get_reference(self) -> str:
        return self.value.get_reference()

    def __str__(self) -> str:
        return str(self.value)


class _Pool:
    """Emits the runtime's globals and functions into one module."""

    def __init__(self, module: ir.Module):
        self.m = module
        g = self._global
        self.counter = g("counter", I64)
        self.done = g("done", I64)
        self.busy = g("busy", I32)
        self.wake = g("wake", I32)
        self.sleepers = g("sleepers", I32)
        self.wake_sent = g("wake_sent", I64)
        self.nworkers = g("nworkers", I32)
        self.job_fn = g("job_fn", PTR)
        self.job_data = g("job_data", PTR)
        self.job_extent = g("job_extent", I64)
        self.job_chunk = g("job_chunk", I64)
        self.job_nchunks = g("job_nchunks", I64)
        self.job_workers = g("job_workers", I32)
        self.job_flags = g("job_flags", I32)
        self.serial_until = g("serial_until", I64)
        self.backoff = g("backoff", I64)
        self.contended_until = g("contended_until", I64)
        self.stats = [g("stat_" + name, I64) for name in STATS]
        self.sample_tsc = g("sample_tsc", I64)
        self.sample_switches = g("sample_switches", I64)
        self.sample_thread = g("sample_thread", I64)
        self.burst_streak = g("burst_streak", I64)
        self.probation_until = g("probation_until", I64)
        self.watch_off = g("watch_off", I32)  # 1: never mark the pool contended (set_contention_watch)
        self.pthread_self = ir.Function(module, ir.FunctionType(I64, []), "pthread_self")
        self.getrusage = ir.Function(module, ir.FunctionType(I32, [I32, PTR]), "getrusage")
        self.tsc = ir.Function(module, ir.FunctionType(I64, []), "llvm.readcyclecounter")
        self.pause = ir.Function(module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
        self.syscall = ir.Function(module, ir.FunctionType(I64, [I64], var_arg=True), "syscall")
        self.sched_yield = ir.Function(module, ir.FunctionType(I32, []), "sched_yield")
        self.pthread_create = ir.Function(module, ir.FunctionType(I32, [PTR, PTR, PTR, PTR]), "pthread_create")
        self.pthread_detach = ir.Function(module, ir.FunctionType(I32, [I64]), "pthread_detach")
        # glibc's pthread_atfork lives in libc_nonshared.a; the shared library exports this
        self.register_atfork = ir.Function(module, ir.FunctionType(I32, [PTR, PTR, PTR, PTR]), "__register_atfork")
        self.atfork_done = g("atfork_done", I32)
        self.run_chunks = self._run_chunks()
        self.switch_rule = self._switch_rule()
        self.sample = self._sample_switches()
        self.lost_core = self._lost_core_entry()
        self.worker = self._worker()
        self.after_fork = self._after_fork()
        self.spawn = self._spawn()
        self.entry = self._entry()
        self._legacy_entry()
        self.serial_left = self._serial_left()
        self.contended_left = self._left(CONTENDED_LEFT, self.contended_until)
        self._stats_entry()
        self._watch_entry()

    def _global(self, name, ty):
        gv = ir.GlobalVariable(self.m, ty, "nimble_par_" + name)
        gv.linkage = "internal"
        gv.initializer = ir.Constant(ty, None)
        gv.align = 64  # one cache line each: the counters are written by every thread
        return gv

    def _fn(self, name, ty, linkage="internal"):
        fn = ir.Function(self.m, ty, name)
        fn.linkage = linkage
        return fn, ir.IRBuilder(fn.append_basic_block("entry"))

    @staticmethod
    def _load(b, ptr, ty, order="seq_cst"):
        return b.load_atomic(ptr, order, ty.width // 8 if isinstance(ty, ir.IntType) else 8, typ=ty)

    def _futex(self, b, op, word, val):
        val = _c(val) if isinstance(val, int) else self.b_zext(b, val)
        b.call(self.syscall, [_c(SYS_FUTEX), word, _c(op), val, ir.Constant(PTR, None), ir.Constant(PTR, None), _c(0)])

    @staticmethod
    def b_zext(b, v):
        return b.zext(v, I64) if v.type != I64 else v

    # ----------------------------------------------------------------- claiming chunks
    def _run_chunks(self):
        """run_chunks(gen, fn, data, extent, chunk, nchunks, slot, threads, flags): run chunks of job ``gen``
        until none is left, this thread's share (``slot`` of ``threads``) first; returns how many it ran.

        Attempt j < own: chunk own_lo + j (own_hi - 1 - j backwards); then chunk nchunks - 1 - m (m
        backwards) for m = j - own: every chunk once, the others' shares from their far end. A chunk whose
        bit is set was taken; a generation that moved on ends the job for this thread."""
        fn, b = self._fn("nimble_par_run_chunks", ir.FunctionType(I64, [I64, PTR, PTR, I64, I64, I64, I64, I64, I32]))
        gen, rfn, data, extent, chunk, nchunks, slot, threads, flags = fn.args
        ran = b.alloca(I64)
        attempt = b.alloca(I64)
        b.store(_c(0), ran)
        b.store(_c(0), attempt)
        backwards = b.icmp_unsigned("!=", b.and_(flags, _c(FLAG_BACKWARDS, I32)), _c(0, I32))
        own_lo = b.udiv(b.mul(slot, nchunks), threads)
        own_hi = b.udiv(b.mul(b.add(slot, _c(1)), nchunks), threads)
        own = b.sub(own_hi, own_lo)
        next_, pick, load, check, claim, run, out = (
            fn.append_basic_block(n) for n in ("next", "pick", "load", "check", "claim", "run", "out"))
        b.branch(next_)
        b.position_at_end(next_)
        j = b.load(attempt, typ=I64)
        b.cbranch(b.icmp_unsigned("<", j, b.add(own, nchunks)), pick, out)
        b.position_at_end(pick)
        mine = b.icmp_unsigned("<", j, own)
        m = b.sub(j, own)
        k = b.select(mine, b.select(backwards, b.sub(b.sub(own_hi, _c(1)), j), b.add(own_lo, j)),
                     b.select(backwards, m, b.sub(b.sub(nchunks, _c(1)), m)))
        b.store(b.add(j, _c(1)), attempt)
        bit = b.shl(_c(1), k)
        b.branch(load)
        b.position_at_end(load)
        v = self._load(b, self.counter, I64)
        b.cbranch(b.icmp_unsigned("==", b.lshr(v, _c(32)), gen), check, out)
        b.position_at_end(check)
        b.cbranch(b.icmp_unsigned("==", b.and_(v, bit), _c(0)), claim, next_)
        b.position_at_end(claim)
        ok = b.extract_value(b.cmpxchg(self.counter, v, b.or_(v, bit), "seq_cst", "seq_cst"), 1)
        b.cbranch(ok, run, load)  # failed: another chunk was claimed meanwhile (or the job ended); look again
        b.position_at_end(run)
        lo = b.mul(k, chunk)
        hi = b.add(lo, chunk)
        hi = b.select(b.icmp_signed("<", hi, extent), hi, extent)
        b.call(FnPtr(rfn, RANGE_FN), [data, lo, hi])
        b.atomic_rmw("add", self.done, _c(1), "release")
        b.store(b.add(b.load(ran, typ=I64), _c(1)), ran)
        b.branch(next_)
        b.position_at_end(out)
        b.ret(b.load(ran, typ=I64))
        return fn

    # ------------------------------------------------------------------------- workers
    def _worker(self):
        """worker(index): wait for a job of a new generation, help with it, repeat; never returns."""
        fn, b = self._fn("nimble_par_worker", ir.FunctionType(PTR, [PTR]))
        index = b.ptrtoint(fn.args[0], I64)
        seen_slot = b.alloca(I64)
        spins_slot = b.alloca(I64)
        last_slot = b.alloca(I64)
        switches_slot = b.alloca(I64)
        usage = b.alloca(ir.ArrayType(I64, RUSAGE_WORDS))
        window = b.alloca(ir.ArrayType(I64, 3))  # this worker's time lost to other threads (lost_core)
        b.store(ir.Constant(ir.ArrayType(I64, 3), None), window)
        b.store(self._involuntary_switches(b, usage), switches_slot)
        b.store(b.lshr(self._load(b, self.counter, I64), _c(32)), seen_slot)
        wait, check_spin, spin, sleep, sleep2, unsleep, work, help_ = (
            fn.append_basic_block(n) for n in ("wait", "check_spin", "spin", "sleep", "sleep2", "unsleep",
                                              "work", "help"))
        start = b.call(self.tsc, [])
        b.store(start, spins_slot)  # when this worker began to wait
        b.store(start, last_slot)  # the previous spin iteration
        b.branch(wait)

        def new_job(bb):
            v = self._load(bb, self.counter, I64)
            fresh = bb.icmp_unsigned("!=", bb.lshr(v, _c(32)), bb.load(seen_slot, typ=I64))
            ready = bb.icmp_unsigned("!=", bb.and_(v, _c(0xFFFFFFFF)), _c(WRITING))
            return bb.and_(fresh, ready)

        b.position_at_end(wait)
        b.cbranch(new_job(b), work, check_spin)
        b.position_at_end(check_spin)
        now = b.call(self.tsc, [])
        waited = b.sub(now, b.load(spins_slot, typ=I64))
        last = b.load(last_slot, typ=I64)
        preempted = b.icmp_signed(">", b.sub(now, last), _c(PREEMPTED_TICKS))
        b.store(now, last_slot)
        with b.if_then(preempted):
            switches = self._involuntary_switches(b, usage)
            switched = b.icmp_signed(">", switches, b.load(switches_slot, typ=I64))
            b.store(switches, switches_slot)
            with b.if_else(switched) as (lost_core, stolen):
                with lost_core:
                    self._count(b, "preemptions")
                    b.call(self.lost_core, [now, b.sub(now, last), window])
                with stolen:
                    self._count(b, "steals")
            b.store(b.call(self.tsc, []), last_slot)  # the getrusage call took time too
        contended = b.icmp_signed("<", now, self._load(b, self.contended_until, I64, "monotonic"))
        keep = b.and_(b.icmp_signed("<", waited, _c(WORKER_SPIN_TICKS)), b.not_(contended))
        b.cbranch(keep, spin, sleep)
        b.position_at_end(spin)
        b.call(self.pause, [])
        b.branch(wait)
        # sleep: announce, re-check (the publisher stores the counter, then reads sleepers), wait
        b.position_at_end(sleep)
        seq = self._load(b, self.wake, I32)
        b.atomic_rmw("add", self.sleepers, _c(1, I32), "seq_cst")
        b.cbranch(new_job(b), unsleep, sleep2)
        b.position_at_end(sleep2)
        self._count(b, "worker_sleeps")
        self._futex(b, FUTEX_WAIT_PRIVATE, self.wake, seq)
        b.branch(unsleep)
        b.position_at_end(unsleep)
        b.store_atomic(_c(0), self.wake_sent, "monotonic", 8)
        b.atomic_rmw("sub", self.sleepers, _c(1, I32), "seq_cst")
        self._restart_wait(b, spins_slot, last_slot)
        b.branch(wait)
        # work: take the job's generation; help when this worker is one the caller asked for
        b.position_at_end(work)
        v = self._load(b, self.counter, I64, "acquire")
        gen = b.lshr(v, _c(32))
        b.store(gen, seen_slot)
        wanted = b.icmp_unsigned("<", index, b.zext(self._load(b, self.job_workers, I32), I64))
        ready = b.icmp_unsigned("!=", b.and_(v, _c(0xFFFFFFFF)), _c(WRITING))
        self._restart_wait(b, spins_slot, last_slot)
        b.cbranch(b.and_(wanted, ready), help_, wait)
        b.position_at_end(help_)
        threads = b.add(b.zext(self._load(b, self.job_workers, I32, "acquire"), I64), _c(1))
        b.call(self.run_chunks, [gen, self._load(b, self.job_fn, PTR, "acquire"),
                                 self._load(b, self.job_data, PTR, "acquire"),
                                 self._load(b, self.job_extent, I64, "acquire"),
                                 self._load(b, self.job_chunk, I64, "acquire"),
                                 self._load(b, self.job_nchunks, I64, "acquire"),
                                 b.add(index, _c(1)), threads,
                                 self._load(b, self.job_flags, I32, "acquire")])
        self._restart_wait(b, spins_slot, last_slot)
        b.branch(wait)
        return fn

    def _restart_wait(self, b, spins_slot, last_slot):
        now = b.call(self.tsc, [])
        b.store(now, spins_slot)
        b.store(now, last_slot)

    def _after_fork(self):
        """In a forked child: no workers exist there (only the forking thread does); forget them."""
        fn, b = self._fn("nimble_par_after_fork", ir.FunctionType(ir.VoidType(), []))
        for slot in (self.nworkers, self.sleepers, self.busy):
            b.atomic_rmw("xchg", slot, _c(0, I32), "seq_cst")
        b.store_atomic(_c(0), self.wake_sent, "monotonic", 8)
        b.ret_void()
        return fn

    def _spawn(self):
        """spawn(want): start workers until ``want`` exist (called holding ``busy``); a failed
        pthread_create leaves fewer workers, which is only slower."""
        fn, b = self._fn("nimble_par_spawn", ir.FunctionType(ir.VoidType(), [I32]))
        want = fn.args[0]
        tid = b.alloca(I64)
        atfork, loop, body, ok, out = (fn.append_basic_block(n) for n in ("atfork", "loop", "body", "ok", "out"))
        first = b.icmp_signed("==", b.load(self.atfork_done, typ=I32), _c(0, I32))
        b.cbranch(first, atfork, loop)
        b.position_at_end(atfork)
        b.store(_c(1, I32), self.atfork_done)
        b.call(self.register_atfork, [ir.Constant(PTR, None), ir.Constant(PTR, None), self.after_fork,
                                      ir.Constant(PTR, None)])
        b.branch(loop)
        b.position_at_end(loop)
        have = b.load(self.nworkers, typ=I32)
        b.cbranch(b.icmp_signed("<", have, want), body, out)
        b.position_at_end(body)
        rc = b.call(self.pthread_create, [tid, ir.Constant(PTR, None), self.worker, b.inttoptr(b.zext(have, I64), PTR)])
        b.cbranch(b.icmp_signed("==", rc, _c(0, I32)), ok, out)
        b.position_at_end(ok)
        b.call(self.pthread_detach, [b.load(tid, typ=I64)])
        b.atomic_rmw("xchg", self.nworkers, b.add(have, _c(1, I32)), "release")
        b.branch(loop)
        b.position_at_end(out)
        b.ret_void()
        return fn

    # --------------------------------------------------------------------------- entry
    def _legacy_entry(self):
        """``nimble_parallel_for_v1(range, data, extent, nthreads)``: v2 without flags."""
        fn, b = self._fn(LEGACY_ENTRY, ir.FunctionType(ir.VoidType(), [PTR, PTR, I64, I32]), "external")
        b.call(self.entry, [*fn.args, _c(0, I32)])
        b.ret_void()

    def _entry(self):
        fn, b = self._fn(ENTRY, ir.FunctionType(ir.VoidType(), [PTR, PTR, I64, I32, I32]), "external")
        rfn, data, extent, nthreads, flags = fn.args
        serial, try_pool, pooled, wake, run, wait, spin, yield_, finish = (
            fn.append_basic_block(n) for n in ("serial", "try_pool", "pooled", "wake", "run", "wait", "spin",
                                              "yield", "finish"))
        small = b.or_(b.icmp_signed("<=", nthreads, _c(1, I32)), b.icmp_signed("<=", extent, _c(1)))
        t0 = b.call(self.tsc, [])
        backing_off = b.or_(b.icmp_signed("<", t0, self._load(b, self.serial_until, I64, "monotonic")),
                            b.icmp_signed("<", t0, self._load(b, self.contended_until, I64, "monotonic")))
        b.cbranch(b.or_(small, backing_off), serial, try_pool)
        b.position_at_end(serial)
        with b.if_then(b.icmp_signed(">", nthreads, _c(1, I32))):
            self._count(b, "serial")
        b.call(FnPtr(rfn, RANGE_FN), [data, _c(0), extent])
        b.ret_void()
        b.position_at_end(try_pool)
        got = b.extract_value(b.cmpxchg(self.busy, _c(0, I32), _c(1, I32), "acquire", "monotonic"), 1)
        b.cbranch(got, pooled, serial)

        b.position_at_end(pooled)
        self._count(b, "parallel")
        nt = b.select(b.icmp_signed(">", nthreads, _c(MAX_WORKERS + 1, I32)), _c(MAX_WORKERS + 1, I32), nthreads)
        workers = b.sub(nt, _c(1, I32))
        b.call(self.spawn, [workers])
        want = b.mul(b.zext(nt, I64), _c(CHUNKS_PER_THREAD))
        want = b.select(b.icmp_signed("<", want, _c(MAX_CHUNKS)), want, _c(MAX_CHUNKS))
        nchunks0 = b.select(b.icmp_signed("<", extent, want), extent, want)
        chunk = b.sdiv(b.sub(b.add(extent, nchunks0), _c(1)), nchunks0)
        nchunks = b.sdiv(b.sub(b.add(extent, chunk), _c(1)), chunk)
        gen = b.and_(b.add(b.lshr(self._load(b, self.counter, I64), _c(32)), _c(1)), _c(0xFFFFFFFF))
        high = b.shl(gen, _c(32))
        b.atomic_rmw("xchg", self.counter, b.or_(high, _c(WRITING)), "seq_cst")
        for slot, val in ((self.job_fn, rfn), (self.job_data, data), (self.job_extent, extent),
                          (self.job_chunk, chunk), (self.job_nchunks, nchunks), (self.job_workers, workers),
                          (self.job_flags, flags), (self.done, _c(0))):
            b.atomic_rmw("xchg", slot, val, "release")
        unused = b.xor(b.sub(b.shl(_c(1), nchunks), _c(1)), _c(0xFFFFFFFF))  # bits of chunks past the last: taken
        b.atomic_rmw("xchg", self.counter, b.or_(high, unused), "seq_cst")
        # wake sleepers unless a wake sent less than WAKE_RETRY_TICKS ago is still on its way (a woken worker
        # clears ``wake_sent`` when it runs): on a loaded machine a woken worker waits milliseconds for a core,
        # and a futex call per region cost more than small regions run; a wake that went to nobody is resent
        sleeping = b.icmp_signed(">", self._load(b, self.sleepers, I32), _c(0, I32))
        maybe_wake = fn.append_basic_block("maybe_wake")
        b.cbranch(sleeping, maybe_wake, run)
        b.position_at_end(maybe_wake)
        sent = self._load(b, self.wake_sent, I64, "monotonic")
        stale = b.or_(b.icmp_signed("==", sent, _c(0)), b.icmp_signed(">", b.sub(t0, sent), _c(WAKE_RETRY_TICKS)))
        b.cbranch(stale, wake, run)
        b.position_at_end(wake)
        b.store_atomic(t0, self.wake_sent, "monotonic", 8)
        self._count(b, "wakes")
        b.atomic_rmw("add", self.wake, _c(1, I32), "seq_cst")
        self._futex(b, FUTEX_WAKE_PRIVATE, self.wake, 0x7FFFFFFF)
        b.branch(run)

        b.position_at_end(run)
        t_run = b.call(self.tsc, [])
        mine = b.call(self.run_chunks, [gen, rfn, data, extent, chunk, nchunks, _c(0), b.zext(nt, I64), flags])
        t1 = b.call(self.tsc, [])
        b.branch(wait)
        b.position_at_end(wait)
        count = b.phi(I64)
        count.add_incoming(_c(0), run)
        all_done = b.icmp_unsigned(">=", self._load(b, self.done, I64, "acquire"), nchunks)
        b.cbranch(all_done, finish, spin)
        b.position_at_end(spin)
        b.call(self.pause, [])
        nxt = b.add(count, _c(1))
        b.cbranch(b.icmp_unsigned("<", nxt, _c(CALLER_SPINS)), wait, yield_)
        count.add_incoming(nxt, spin)
        b.position_at_end(yield_)
        b.call(self.sched_yield, [])
        b.branch(wait)
        count.add_incoming(_c(0), yield_)
        b.position_at_end(finish)
        self._adapt(b, t0, t_run, t1, b.call(self.tsc, []), mine, nchunks)
        b.atomic_rmw("xchg", self.busy, _c(0, I32), "release")
        b.ret_void()
        return fn

    def _adapt(self, b, t0, t_run, t1, t2, mine, nchunks):
        """After a region (holding ``busy``): back off to serial regions when the region cost more than the
        caller alone would have: its wall time (``t2 - t0``, publishing and waking included) above
        ``LOSS_NUM / LOSS_DEN`` x the serial estimate (the caller's time per chunk x every chunk), or the
        caller waited on stragglers longer than it worked, and at least ``STALL_TICKS``."""
        own, waited = b.sub(t1, t_run), b.sub(t2, t1)
        straggler = b.and_(b.icmp_signed(">", waited, own), b.icmp_signed(">", waited, _c(STALL_TICKS)))
        wall = b.sub(t2, t0)
        loss = b.and_(b.icmp_signed(">", mine, _c(0)),
                      b.icmp_signed(">", b.mul(b.mul(wall, mine), _c(LOSS_DEN)), b.mul(b.mul(own, nchunks), _c(LOSS_NUM))))
        stalled = b.or_(straggler, b.and_(loss, b.icmp_signed(">", waited, _c(LOSS_MIN_TICKS))))
        old = b.load(self.backoff, typ=I64)
        doubled, scaled = b.shl(old, _c(1)), b.mul(waited, _c(STALL_COST_FACTOR))
        want = b.select(b.icmp_signed(">", doubled, scaled), doubled, scaled)
        grown = b.select(b.icmp_signed("<", want, _c(BACKOFF_MIN_TICKS)), _c(BACKOFF_MIN_TICKS),
                         b.select(b.icmp_signed(">", want, _c(BACKOFF_MAX_TICKS)), _c(BACKOFF_MAX_TICKS), want))
        new = b.select(stalled, grown, b.lshr(old, _c(1)))
        b.store(new, self.backoff)
        until = b.select(stalled, b.add(t2, new), self._load(b, self.serial_until, I64, "monotonic"))
        b.store_atomic(until, self.serial_until, "monotonic", 8)
        with b.if_then(straggler):
            self._count(b, "stragglers")
        b.call(self.sample, [t2])

    def _lost_core_entry(self):
        """``void nimble_parallel_lost_core_v1(i64 now, i64 gap, i64 *window)``: a spinning worker lost its core
        for ``gap`` ticks (until ``now``) to another thread. Marks the pool contended when such gaps make up
        ``LOST_NUM / LOST_DEN`` of the time since the first of at least ``LOST_MIN_GAPS`` within
        ``LOST_WINDOW_TICKS``; ``window``: the worker's three slots (that first gap's start, ticks lost, count).
        Exported so that tests can feed it gaps."""
        fn, b = self._fn(LOST_CORE_ENTRY, ir.FunctionType(ir.VoidType(), [I64, I64, PTR]), "external")
        now, gap, window = fn.args
        start, lost, count = (b.gep(window, [_c(i)], source_etype=I64) for i in range(3))
        stale = b.icmp_signed(">", b.sub(now, b.load(start, typ=I64)), _c(LOST_WINDOW_TICKS))
        with b.if_then(stale):
            b.store(b.sub(now, gap), start)
            b.store(_c(0), lost)
            b.store(_c(0), count)
        total = b.add(b.load(lost, typ=I64), gap)
        n = b.add(b.load(count, typ=I64), _c(1))
        b.store(total, lost)
        b.store(n, count)
        span = b.sub(now, b.load(start, typ=I64))
        busy = b.and_(b.icmp_signed(">=", n, _c(LOST_MIN_GAPS)),
                      b.icmp_signed(">=", b.mul(total, _c(LOST_DEN)), b.mul(span, _c(LOST_NUM))))
        with b.if_then(busy):
            self._mark_contended(b, now)
        b.ret_void()
        return fn

    def _mark_contended(self, b, now):
        with b.if_then(b.icmp_signed("==", self._load(b, self.watch_off, I32, "monotonic"), _c(0, I32))):
            b.store_atomic(b.add(now, _c(CONTENDED_TICKS)), self.contended_until, "monotonic", 8)
            b.store_atomic(b.add(now, _c(PROBATION_TICKS)), self.probation_until, "monotonic", 8)

    def _watch_entry(self):
        """``void nimble_parallel_watch_v1(i32 on)``: mark the pool contended when the machine looks
        oversubscribed (1, the default) or never (0; clears a current mark and the switch samples)."""
        fn, b = self._fn(WATCH_ENTRY, ir.FunctionType(ir.VoidType(), [I32]), "external")
        b.store_atomic(b.select(b.icmp_signed("==", fn.args[0], _c(0, I32)), _c(1, I32), _c(0, I32)),
                       self.watch_off, "monotonic", 4)
        with b.if_then(b.icmp_signed("==", fn.args[0], _c(0, I32))):
            b.store_atomic(_c(0), self.contended_until, "monotonic", 8)
            b.store_atomic(_c(0), self.probation_until, "monotonic", 8)
            for slot in (self.sample_tsc, self.burst_streak):  # the next sample starts over
                b.store(_c(0), slot)
        b.ret_void()

    def _sample_switches(self):
        """sample(now): every ``SAMPLE_TICKS``, ``MIN_SWITCHES`` or more involuntary context switches of the calling
        thread since its last sample, at a rate of at least ``MIN_SWITCHES`` per ``SAMPLE_TICKS``, in
        ``BURST_WINDOWS`` samples in a row (one in probation), mark the pool contended (a sample by another caller
        thread starts over). Called after parallel regions only: serial
        regions (backing off, contended) would sample switches caused by the process's other thread pools."""
        fn, b = self._fn("nimble_par_sample", ir.FunctionType(ir.VoidType(), [I64]))
        now = fn.args[0]
        elapsed = b.sub(now, b.load(self.sample_tsc, typ=I64))
        probation = b.icmp_signed("<", now, b.load(self.probation_until, typ=I64))
        window = b.select(probation, _c(PROBATION_SAMPLE_TICKS), _c(SAMPLE_TICKS))
        usage = b.alloca(ir.ArrayType(I64, RUSAGE_WORDS))
        with b.if_then(b.icmp_signed(">=", elapsed, window)):
            b.call(self.switch_rule, [now, self._involuntary_switches(b, usage), b.call(self.pthread_self, [])])
        b.ret_void()
        return fn

    def _switch_rule(self):
        """``void nimble_parallel_switches_v1(i64 now, i64 switches, i64 thread)``: one sample of the caller's
        count of involuntary context switches (``sample``'s rule); exported so that tests can feed it counts."""
        fn, b = self._fn(SWITCHES_ENTRY, ir.FunctionType(ir.VoidType(), [I64, I64, I64]), "external")
        now, switches, me = fn.args
        elapsed = b.sub(now, b.load(self.sample_tsc, typ=I64))
        probation = b.icmp_signed("<", now, b.load(self.probation_until, typ=I64))
        window = b.select(probation, _c(PROBATION_SAMPLE_TICKS), _c(SAMPLE_TICKS))
        least = b.select(probation, _c(1), _c(MIN_SWITCHES))
        delta = b.sub(switches, b.load(self.sample_switches, typ=I64))
        first = b.or_(b.icmp_signed("==", b.load(self.sample_tsc, typ=I64), _c(0)),
                      b.icmp_unsigned("!=", b.load(self.sample_thread, typ=I64), me))
        b.store(me, self.sample_thread)
        burst = b.and_(b.and_(b.icmp_signed(">=", delta, least),
                              b.icmp_signed(">=", b.mul(delta, window), b.mul(elapsed, least))), b.not_(first))
        streak = b.select(burst, b.add(b.load(self.burst_streak, typ=I64), _c(1)), _c(0))
        b.store(streak, self.burst_streak)
        with b.if_then(b.and_(burst, b.or_(probation, b.icmp_signed(">=", streak, _c(BURST_WINDOWS))))):
            b.store(_c(0), self.burst_streak)
            self._count(b, "switch_bursts")
            self._mark_contended(b, now)
        b.store(switches, self.sample_switches)
        b.store(now, self.sample_tsc)
        b.ret_void()
        return fn

    def _involuntary_switches(self, b, usage):
        """The calling thread's count of involuntary context switches (getrusage's ``ru_nivcsw``); ``usage``: a
        ``struct rusage`` alloca'd in the function's entry block (an alloca in a loop grows the stack)."""
        b.store(ir.Constant(ir.ArrayType(I64, RUSAGE_WORDS), None), usage)
        b.call(self.getrusage, [_c(RUSAGE_THREAD, I32), usage])
        return b.load(b.gep(usage, [_c(0, I32), _c(NIVCSW_WORD, I32)]), typ=I64)

    def _serial_left(self):
        """``i64 nimble_parallel_serial_left_v1()``: ticks until parallel regions run in parallel again (0: now)."""
        return self._left(SERIAL_LEFT, self.serial_until)

    def _count(self, b, name):
        b.atomic_rmw("add", self.stats[STATS.index(name)], _c(1), "monotonic")

    def _stats_entry(self):
        """``void nimble_parallel_stats_v1(i64 *out)``: the counters of ``STATS``, in that order."""
        fn, b = self._fn(STATS_ENTRY, ir.FunctionType(ir.VoidType(), [PTR]), "external")
        for i, slot in enumerate(self.stats):
            b.store(self._load(b, slot, I64, "monotonic"), b.gep(fn.args[0], [_c(i)], source_etype=I64))
        b.ret_void()

    def _left(self, name, until):
        """``i64 name()``: time-stamp-counter ticks until the global ``until`` (0: passed)."""
        fn, b = self._fn(name, ir.FunctionType(I64, []), "external")
        left = b.sub(self._load(b, until, I64, "monotonic"), b.call(self.tsc, []))
        b.ret(b.select(b.icmp_signed(">", left, _c(0)), left, _c(0)))
        return fn


def runtime_ir(triple: str = "", data_layout: str = "") -> str:
    module = ir.Module(name="nimble_parallel")
    if triple:
        module.triple = triple
    if data_layout:
        module.data_layout = data_layout
    _Pool(module)
    workspace.emit(module)
    return str(module)


_loaded: list = []  # [(LoadedObject, entry address, version, object code)]
_lock = threading.Lock()


def _host_ir() -> str:
    from . import jit

    return runtime_ir(jit.host().triple, str(jit.target_machine().target_data))


_version: list = []


def version() -> str:
    """A hash of this runtime's LLVM IR for the host (what a saved object must match)."""
    import hashlib

    if not _version:
        _version.append(hashlib.sha256(_host_ir().encode()).hexdigest()[:16])
    return _version[0]


def register(object_code: bytes | None = None, object_version: str | None = None) -> int:
    """Link the runtime once per process and register ``ENTRY`` for the JIT linker; returns its
    address. The object comes from ``object_code`` when it is this runtime (``object_version``
    equal to ``version()``: an executable file carries it, so loading one needs no LLVM
    compile), else from the object cache or LLVM."""
    if _loaded:
        return _loaded[0][1]
    with _lock:
        if not _loaded:
            import llvmlite.binding as llvm

            from . import jit

            text = _host_ir()
            ver = version()
            if object_code is None or object_version != ver:
                object_code = jit.compile_object(text, speed_level=2, vectorize=False)
            obj = jit.LoadedObject(object_code, runtime=True)
            addr = obj.address(ENTRY)
            llvm.add_symbol(ENTRY, addr)
            llvm.add_symbol(LEGACY_ENTRY, obj.address(LEGACY_ENTRY))
            for name in (workspace.ALLOC_ENTRY, workspace.FREE_ENTRY):
                llvm.add_symbol(name, obj.address(name))
            _loaded.append((obj, addr, ver, bytes(object_code)))
    return _loaded[0][1]


def runtime_address(name: str) -> int:
    """The address of one of the linked runtime's external functions."""
    register()
    return _loaded[0][0].address(name)


def saved_object() -> tuple[str, bytes]:
    """(version, object code) of the linked runtime, for an executable file."""
    register()
    return _loaded[0][2], _loaded[0][3]


def _ticks_left(name: str) -> int:
    import ctypes

    register()
    return ctypes.CFUNCTYPE(ctypes.c_int64)(_loaded[0][0].address(name))()


def serial_left() -> int:
    """Time-stamp-counter ticks until parallel loops run in parallel again after a straggler backoff (0: now)."""
    return _ticks_left(SERIAL_LEFT)


def stats() -> dict:
    """Counts since the process started: regions run ``serial`` (more than one thread asked; backing off,
    contended, nested, or one iteration) and ``parallel``, wakes sent to sleeping workers (``wakes``),
    ``worker_sleeps``, ``stragglers`` (each backs off), worker ``preemptions`` (a spinning worker lost its core
    to another thread; enough of them close together mark the pool contended), caller ``switch_bursts`` (each
    marks it) and ``steals`` (a spinning worker's time-stamp counter jumped with no context switch: a
    hypervisor took the virtual CPU, or a long interrupt; ignored)."""
    import ctypes

    register()
    out = (ctypes.c_int64 * len(STATS))()
    ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_loaded[0][0].address(STATS_ENTRY))(out)
    return dict(zip(STATS, out))


def set_contention_watch(on: bool) -> None:
    """Whether the pool marks itself contended when the machine looks oversubscribed (default on); off also
    clears a current mark. For measurements of the parallel runtime itself."""
    import ctypes

    register()
    ctypes.CFUNCTYPE(None, ctypes.c_int32)(_loaded[0][0].address(WATCH_ENTRY))(1 if on else 0)


def feed_lost_core(gaps: list[tuple[int, int]]) -> None:
    """Report ``(now, gap)`` pairs (time-stamp-counter ticks) to the contention rule as one worker's lost cores,
    through a fresh window: what a spinning worker does when another thread takes its core. For tests."""
    import ctypes

    register()
    window = (ctypes.c_int64 * 3)()
    lost_core = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)(
        _loaded[0][0].address(LOST_CORE_ENTRY))
    for now, gap in gaps:
        lost_core(now, gap, ctypes.addressof(window))


def feed_switches(samples: list[tuple[int, int]], thread: int = 1) -> None:
    """Report ``(now, involuntary switches so far)`` samples (time-stamp-counter ticks) of one calling thread to the
    contention rule, as the runtime does after parallel regions. For tests."""
    import ctypes

    register()
    rule = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)(
        _loaded[0][0].address(SWITCHES_ENTRY))
    for now, switches in samples:
        rule(now, switches, thread)


def contended_left() -> int:
    """Time-stamp-counter ticks until idle workers spin again after one was seen losing its core (0: now)."""
    return _ticks_left(CONTENDED_LEFT)
