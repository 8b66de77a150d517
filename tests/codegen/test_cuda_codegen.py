"""CUDA target without a GPU: schedules with thread bindings, the CUDA C they become, nvcc.

* the generated source is checked for each schedule primitive (bindings, guards only on tails,
  shared memory fenced by barriers, register tiles, math functions);
* every CUDA template x sampled configs x signatures is compiled for sm_90 (one nvcc call per
  template: all its kernels in one translation unit), counted in ``test_all_templates_compile``;
* the same schedules run on the CPU (the thread loops become serial loops) against numpy at
  sizes 1, primes and tile +- 1, which checks the lowering (regions of shared tiles, guards);
* execution on a GPU is skipped here and says so; ``scripts/gpu_check.py`` runs it on one.
nvcc-dependent tests skip only when nvcc is absent.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from nimble import te
from nimble.codegen.build import build
from nimble.codegen.cuda import CodegenError, codegen_cuda, translation_unit
from nimble.codegen.nvcc import compile_cuda, find_nvcc, stats
from nimble.schedules.cuda_template import sources
from nimble.schedules.dense import dense_signature
from nimble.schedules.injective import injective_signature
from nimble.schedules.reduce import reduce_signature
from nimble.schedules.registry import TemplateError, get_template
from nimble.schedules.softmax import softmax_signature
from nimble.te.schedule import ScheduleError
from nimble.tir.lower import lower
from nimble.tir.nodes import Allocate, Buffer, For, IfThenElse, Load, PrimFunc, Store, seq

needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="nvcc (the CUDA toolkit) is not installed")


def elementwise(n_extent, threads=256):
    n = te.var("n") if n_extent is None else n_extent
    a = te.placeholder((n,), "float32", "a")
    b = te.compute((n,), lambda i: te.erf(a[i]) + te.tanh(a[i]) * te.exp(a[i]), name="b")
    s = te.create_schedule(b)
    bx, tx = s[b].split(s[b].axis[0], threads)
    s[b].bind(bx, "blockIdx.x")
    s[b].bind(tx, "threadIdx.x")
    return codegen_cuda(lower(s, [a, b], name="ew", bounds_checks=False))


# ----------------------------------------------------------------------------- schedules
def test_bind_rejects_an_unknown_tag_a_reduction_loop_and_a_tag_bound_twice():
    a = te.placeholder((8, 8), "float32", "a")
    r = te.reduce_axis((0, 8), "r")
    b = te.compute((8,), lambda i: te.sum(a[i, r], axis=r), name="b")
    s = te.create_schedule(b)
    with pytest.raises(ScheduleError, match="threadIdx.w"):
        s[b].bind(s[b].axis[0], "threadIdx.w")
    with pytest.raises(ScheduleError, match="reduction loop"):
        s[b].bind(s[b].reduce_axis[0], "threadIdx.x")
    io, ii = s[b].split(s[b].axis[0], 4)
    s[b].bind(io, "threadIdx.x")
    with pytest.raises(ScheduleError, match="already has a loop bound"):
        s[b].bind(ii, "threadIdx.x")


def test_cache_read_needs_a_reader_that_reads_the_tensor():
    a = te.placeholder((8,), "float32", "a")
    c = te.placeholder((8,), "float32", "c")
    b = te.compute((8,), lambda i: a[i] * 2.0, name="b")
    s = te.create_schedule(b)
    with pytest.raises(ScheduleError, match="does not read c"):
        s.cache_read(c, "shared", [b])
    cached = s.cache_read(a, "shared", [b])
    assert s[cached].scope == "shared" and s.stages.index(s[cached]) < s.stages.index(s[b])


# ---------------------------------------------------------------------------- the source
def test_elementwise_kernel_uses_block_and_thread_indices_and_math_functions():
    k = elementwise(None)
    assert 'extern "C" __global__' in k.source and "= blockIdx.x;" in k.source and "= threadIdx.x;" in k.source
    for fn in ("erff(", "tanhf(", "expf("):
        assert fn in k.source
    assert "const float* __restrict__ a" in k.source and "float* __restrict__ b" in k.source
    assert "long long n)" in k.source  # the symbolic dim is a kernel argument
    assert k.block == (256, 1, 1)
    n = k.shape_vars[0]
    assert k.launch_dims({n: 1000}) == ((4, 1, 1), (256, 1, 1))
    assert k.launch_dims({n: 1}) == ((1, 1, 1), (256, 1, 1))


def _bound(b, a_args, name):
    s = te.create_schedule(b)
    bx, tx = s[b].split(s[b].axis[0], 128)
    s[b].bind(bx, "blockIdx.x")
    s[b].bind(tx, "threadIdx.x")
    return codegen_cuda(lower(s, a_args + [b], name=name, bounds_checks=False))


def test_trig_round_and_bit_operators_become_cuda_c_that_compiles():
    n = te.var("n")
    a = te.placeholder((n,), "float32", "a")
    trig = _bound(te.compute((n,), lambda i: te.math_call("round", te.math_call("acosh", te.math_call("cos", a[i])))
                             + te.math_call("floor", a[i]) - te.math_call("ceil", a[i]), name="t"), [a], "trig")
    x, y = te.placeholder((n,), "int64", "x"), te.placeholder((n,), "int64", "y")
    bits = _bound(te.compute((n,), lambda i: te.math_call("bitwise_xor", te.math_call("shift_left", x[i], y[i]),
                                                          te.math_call("shift_right", x[i], y[i])), name="s"),
                  [x, y], "bits")
    for fn in ("cosf(", "acoshf(", "rintf(", "floorf(", "ceilf("):
        assert fn in trig.source
    assert ">= 64ULL" in bits.source and "^" in bits.source
    if find_nvcc() is not None:
        assert compile_cuda(translation_unit([trig, bits]), arch="sm_90", fmt="cubin")[:4] == b"\x7fELF"


def test_a_guard_only_where_the_extent_is_not_a_multiple_of_the_tile():
    assert "< n)" in elementwise(None).source  # symbolic: the last block has a tail
    assert "< 1000)" in elementwise(1000).source
    divisible = elementwise(1024).source
    assert "if (" not in divisible and "= blockIdx.x;" in divisible


def test_dense_stages_tiles_in_shared_memory_between_barriers():
    t = get_template("dense", "cuda")
    sig = dense_signature("n", 64, 96, bias=True, epilogue=["gelu"])
    space = t.space(sig)
    cfg = space.config(threads_x=16, threads_y=8, rows=2, cols=2, k_tile=8, shared="yes", w_layout="mk")
    src = t.kernel_source(sig, cfg).source
    assert "__shared__ float x_shared[128];" in src  # (8 * 2 rows) x 8 of k
    assert "__shared__ float w_shared[256];" in src  # (16 * 2 cols) x 8 of k
    fill_x, update = src.index("x_shared[(("), src.index("] = (acc[")
    barriers = [k for k in range(len(src)) if src.startswith("__syncthreads();", k)]
    assert len(barriers) == 3  # before the fills (the last step's readers are done), between, after
    assert barriers[0] < fill_x < barriers[2] < update
    assert "float acc[4];" in src and "erff(" in src
    assert "= blockIdx.y;" in src and "= threadIdx.y;" in src
    assert "< n)" in src  # rows are symbolic: guarded; columns (96 = 3 x 32) are not
    assert "< 96)" not in src
    plain = t.kernel_source(sig, space.config(threads_x=16, threads_y=8, rows=2, cols=2, k_tile=8, shared="no", w_layout="mk")).source
    assert "__shared__" not in plain and "__syncthreads" not in plain


def test_a_k_major_w_tile_is_read_with_a_stride_of_cols_across_threads():
    t = get_template("dense", "cuda")
    sig = dense_signature("n", 64, 96)
    space = t.space(sig)
    common = dict(threads_x=16, threads_y=8, rows=2, cols=2, k_tile=8, shared="yes")
    km = t.kernel_source(sig, space.config(**common, w_layout="km")).source
    mk = t.kernel_source(sig, space.config(**common, w_layout="mk")).source
    # thread j_i_o (threadIdx.x) owns columns 2 * j_i_o + j of the 32-column tile
    assert "w_shared[((j + (j_i_o * 2)) + (r_i * 32))]" in km
    assert "w_shared[(((j * 8) + (j_i_o * 16)) + r_i)]" in mk
    assert "__shared__ float w_shared[256];" in km and "__shared__ float w_shared[256];" in mk


def test_cache_read_with_a_layout_stores_the_copy_permuted():
    a = te.placeholder((6, 4), "float32", "a")
    b = te.compute((6,), lambda i: a[i, 0] + a[i, 3], name="b")
    s = te.create_schedule(b)
    with pytest.raises(ScheduleError, match="permutation"):
        s.cache_read(a, "local", [b], layout=(0, 0))
    cached = s.cache_read(a, "local", [b], layout=(1, 0))
    assert tuple(d.value for d in cached.shape) == (4, 6)
    x = np.arange(24, dtype="float32").reshape(6, 4)
    np.testing.assert_allclose(build(s, [a, b], target="llvm")(x), x[:, 0] + x[:, 3])


def test_dense_residue_variant_has_no_row_guard_in_its_compute():
    t = get_template("dense", "cuda")
    sig = dense_signature("n", 64, 96)
    cfg = t.space(sig).config(threads_x=16, threads_y=8, rows=2, cols=2, k_tile=8, shared="yes", w_layout="mk")
    general = t.kernel_source(sig, cfg).source
    variant = t.kernel_source(sig, cfg, residue={"n": 16})
    guards = [ln for ln in variant.source.splitlines() if "if (" in ln]
    # only the x tile's copy keeps one: the prover does not bound floordiv(thread index, 8)
    assert len(guards) == 1 and "ax0_ax1_f" in guards[0]
    assert general.count("if (") == 4  # acc init, acc update, the x copy, the store
    n = variant.shape_vars[0]
    assert variant.launch_dims({n: 48})[0] == (3, 3, 1)  # the grid from n = 16 * n_q


def test_softmax_keeps_row_statistics_in_registers():
    t = get_template("softmax", "cuda")
    sig = softmax_signature(("b", 12, "s"))
    k = t.kernel_source(sig, t.space(sig).config(threads=64, unroll=4))
    assert "float mx[1];" in k.source and "float total[1];" in k.source and "nb_max<float>" in k.source
    assert k.block == (64, 1, 1)


def test_a_barrier_under_a_thread_dependent_guard_is_refused():
    tx = te.var("tx")
    buf = Buffer("tile", "float32", (32,), "shared")
    out = Buffer("out", "float32", (32,))
    fill = Store(buf, tx, te.FloatImm(1.0))
    body = For(tx, te.IntImm(0), te.IntImm(32), "threadIdx.x",
               IfThenElse(tx < 5, Allocate(buf, te.IntImm(32), seq(fill, Store(out, tx, Load(buf, tx))))))
    with pytest.raises(CodegenError, match="not every thread would reach it"):
        codegen_cuda(PrimFunc("bad", (out,), (), body))


def test_cpu_only_constructs_are_refused_with_their_reason():
    a = te.placeholder((64,), "float32", "a")
    b = te.compute((64,), lambda i: a[i] + 1.0, name="b")
    s = te.create_schedule(b)
    s[b].parallel(s[b].axis[0])
    with pytest.raises(CodegenError, match="parallel"):
        codegen_cuda(lower(s, [a, b], bounds_checks=False))
    idx = te.placeholder((4,), "int64", "idx")
    g = te.compute((4,), lambda i: a[idx[i]], name="g")
    with pytest.raises(CodegenError, match="Assert"):
        codegen_cuda(lower(te.create_schedule(g), [a, idx, g]))  # the index check stays in


# ---------------------------------------------------------------------------------- nvcc
@needs_nvcc
def test_nvcc_errors_carry_the_compiler_message():
    with pytest.raises(CodegenError, match=r"nvcc failed for sm_90 \(cubin\):\nkernels.cu\(1\): error: identifier \"undeclared_name\""):
        compile_cuda('extern "C" __global__ void k() { undeclared_name = 1; }', use_cache=False)


@needs_nvcc
def test_compiled_code_is_cached_by_source_and_arch(tmp_path, monkeypatch):
    monkeypatch.setenv("NIMBLE_CACHE_DIR", str(tmp_path))
    src = translation_unit([elementwise(None)])
    calls = stats["nvcc_calls"]
    ptx = compile_cuda(src, fmt="ptx")
    assert b".visible .entry ew(" in ptx and b".target sm_90" in ptx
    assert compile_cuda(src, fmt="ptx") == ptx and stats["nvcc_calls"] == calls + 1
    assert len(list((tmp_path / "cuda").glob("*.ptx"))) == 1


def template_cases():
    """(template name, [(signature, configs)]): the fallback, the first and last config and random ones."""
    rng = random.Random(15)
    sigs = {
        "dense": [dense_signature("n", 768, 3072, bias=True, epilogue=["gelu"]), dense_signature("n", 100, 37),
                  dense_signature(128, 64, 64, epilogue=["residual"])],
        "injective": [injective_signature([("n", 768), (768,)], ["add", "gelu"]),
                      injective_signature([("b", 12, "s", 64)], ["transpose"], perm=[0, 2, 1, 3]),
                      injective_signature([("n", 12)], ["reshape"], newshape=["n", 3, 4]),
                      injective_signature([(1000,), (1000,)], ["multiply", "sigmoid"])],
        "softmax": [softmax_signature(("b", 12, "s")), softmax_signature((7, 129))],
        "reduce": [reduce_signature(("n", 768), [1], "mean"), reduce_signature(("n", 7, "m"), [0, 2], "max", keepdims=True),
                   reduce_signature(("b", "s", 64), [1], "sum")],
    }
    out = []
    for name, sig_list in sigs.items():
        t = get_template(name, "cuda")
        cases = []
        for sig in sig_list:
            space = t.space(sig)
            cfgs = {t.fallback(sig, space), space.get(0), space.get(len(space) - 1)}
            cfgs |= {space.random(rng) for _ in range(4)}
            cases.append((sig, sorted(cfgs, key=lambda c: c.index)))
        out.append((name, cases))
    return out


@needs_nvcc
def test_all_templates_compile_for_sm_90():
    counts = {}
    for name, cases in template_cases():
        t = get_template(name, "cuda")
        kernels = []
        for s, (sig, cfgs) in enumerate(cases):
            for c, cfg in enumerate(cfgs):
                k = t.kernel_source(sig, cfg, name=f"{name}_{s}_{c}")
                assert "= blockIdx.x;" in k.source and "= threadIdx.x;" in k.source, k.name
                if name == "dense":
                    assert ("__shared__" in k.source) == (cfg["shared"] == "yes"), k.name
                    assert k.block == (cfg["threads_x"], cfg["threads_y"], 1)
                kernels.append(k)
        cubin = compile_cuda(translation_unit(kernels), arch="sm_90", fmt="cubin")
        assert cubin[:4] == b"\x7fELF"
        for k in kernels:  # every kernel is in the cubin's symbol table
            assert k.name.encode() in cubin
        counts[name] = len(kernels)
    print(f"CUDA kernels compiled for sm_90: {counts}, {sum(counts.values())} in all")
    assert counts["dense"] >= 15 and counts["injective"] >= 15 and counts["softmax"] >= 8 and counts["reduce"] >= 8


@needs_nvcc
def test_ptx_of_a_template_is_generated():
    t = get_template("dense", "cuda")
    sig = dense_signature("n", 768, 3072)
    ptx = compile_cuda(sources(t, sig, [t.fallback(sig, t.space(sig))]), fmt="ptx")
    assert b".visible .entry dense_0(" in ptx and b".shared" in ptx and b"bar.sync" in ptx


# --------------------------------------- the CUDA schedules, run serially on the CPU vs numpy
def emulate(name, sig, cfg):
    """The CUDA schedule compiled for the CPU (bound loops run as serial loops)."""
    inst = get_template(name, "cuda").instantiate(sig, cfg)
    return build(inst.schedule, inst.args, target="llvm", name=f"emu_{name}")


@pytest.mark.parametrize("cfg", [dict(threads_x=8, threads_y=4, rows=4, cols=2, k_tile=16, shared="yes", w_layout="km"),
                                 dict(threads_x=8, threads_y=8, rows=2, cols=4, k_tile=4, shared="yes", w_layout="mk"),
                                 dict(threads_x=16, threads_y=4, rows=1, cols=4, k_tile=8, shared="no", w_layout="km")])
def test_dense_schedules_match_numpy_at_tails(cfg):
    t = get_template("dense", "cuda")
    sig = dense_signature("n", 37, 40, bias=True, epilogue=["relu"])  # k, m: not multiples of any tile
    kernel = emulate("dense", sig, t.space(sig).config(**cfg))
    for n in (1, 7, 15, 16, 17, 31, 33):  # block rows are 16 and 4
        rng = np.random.default_rng(n)
        x, w, bias = (rng.standard_normal(s).astype("float32") for s in ((n, 37), (40, 37), (40,)))
        np.testing.assert_allclose(kernel(x, w, bias), t.reference(sig, [x, w, bias])[0], rtol=1e-4, atol=1e-4,
                                   err_msg=f"n={n} {cfg}")


@pytest.mark.parametrize("shape", [(1, 1), (3, 129), (65, 12)])
def test_softmax_and_injective_schedules_match_numpy(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype("float32")
    sm = get_template("softmax", "cuda")
    sig = softmax_signature(("r", "c"))
    got = emulate("softmax", sig, sm.space(sig).config(threads=32, unroll=4))(x)
    np.testing.assert_allclose(got, sm.reference(sig, [x])[0], rtol=1e-5, atol=1e-6)
    inj = get_template("injective", "cuda")
    isig = injective_signature([("r", "c"), ("c",)], ["add", "tanh"])
    y = rng.standard_normal(shape[1:]).astype("float32")
    got = emulate("injective", isig, inj.space(isig).config(threads=64, per_thread=2))(x, y)
    np.testing.assert_allclose(got, inj.reference(isig, [x, y])[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sig", [reduce_signature(("n", "m"), [1], "mean"),
                                 reduce_signature(("n", 7, "m"), [0, 2], "max", keepdims=True),
                                 reduce_signature(("n", "m", 64), [1], "sum")])
def test_reduce_schedules_match_numpy(sig):
    t = get_template("reduce", "cuda")
    kernel = emulate("reduce", sig, t.space(sig).config(threads=32, unroll=4))
    for n, m in ((1, 1), (5, 13), (33, 64)):  # threads 32 +- 1, m: 4 * k and not
        x = t.random_inputs(sig, {"n": n, "m": m}, np.random.default_rng(n))[0]
        np.testing.assert_allclose(kernel(x), t.reference(sig, [x])[0], rtol=1e-5, atol=1e-5, err_msg=f"n={n} m={m}")


def test_reduce_to_a_scalar_is_refused_on_cuda():
    with pytest.raises(TemplateError, match="cross-thread"):
        get_template("reduce", "cuda").space(reduce_signature(("n", 4), [0, 1]))


# --------------------------------------------------------------------------- on a GPU only
def test_templates_run_on_a_gpu():
    from nimble.codegen import cuda_runtime

    try:
        cuda_runtime.default_device()
    except cuda_runtime.CudaUnavailable:
        pytest.skip("no CUDA device on this machine: GPU execution is checked by scripts/gpu_check.py")
    rng = np.random.default_rng(0)
    t = get_template("dense", "cuda")
    sig = dense_signature("n", 37, 40)
    x, w = rng.standard_normal((17, 37)).astype("float32"), rng.standard_normal((40, 37)).astype("float32")
    got = t.build(sig, t.fallback(sig, t.space(sig)))(x, w)[0]
    np.testing.assert_allclose(got, x @ w.T, rtol=1e-4, atol=1e-4)


class HostDevice:
    """A stand-in for a GPU behind the launcher interface: host memory, and kernels that are the
    same CUDA schedules compiled for the CPU (bound loops serial). It checks the launcher's own
    work (staging, shapes from symbolic dims, the arguments a launch passes, zero-size grids)."""

    launcher, arch, name = "host", "sm_90", "host memory, CPU kernels"

    def __init__(self, cpu_kernels: dict):
        self.cpu_kernels, self.mem, self.params, self.launches = cpu_kernels, {}, {}, []

    def load(self, cubin, kernel):
        from nimble.codegen.cuda_runtime import Launcher

        self.params[kernel.name] = kernel
        return Launcher(self, kernel.name, kernel)

    def alloc(self, nbytes):
        a = np.zeros(nbytes, np.uint8)
        self.mem[a.ctypes.data] = a
        return a

    def pointer(self, handle):
        return handle.ctypes.data

    def to_device(self, handle, array):
        handle[:array.nbytes] = array.reshape(-1).view(np.uint8)

    def to_host(self, array, handle):
        array.reshape(-1).view(np.uint8)[:] = handle[:array.nbytes]

    def free(self, handle):
        del self.mem[handle.ctypes.data]

    def launch(self, func, grid, block, pointers, scalars):
        from nimble.codegen.cuda_runtime import buffer_shape

        kernel = self.params[func]
        dims = dict(zip(kernel.shape_vars, scalars))
        views = []
        for buf, p in zip(kernel.params, pointers):
            shape = buffer_shape(buf, dims)
            views.append(self.mem[p][:int(np.prod(shape)) * 4].view(buf.dtype).reshape(shape))
        self.launches.append((func, grid, block, tuple(scalars)))
        self.cpu_kernels[func](*views)

    def synchronize(self):
        pass

    def elapsed_ms(self, run):
        run()
        return 1.0


def test_launcher_stages_arguments_and_launches_with_the_kernels_grid():
    from nimble.schedules.cuda_template import CudaTemplateKernel

    t = get_template("dense", "cuda")
    sig = dense_signature("n", 37, 40)
    cfg = t.space(sig).config(threads_x=8, threads_y=4, rows=2, cols=2, k_tile=8, shared="yes", w_layout="mk")
    source = t.kernel_source(sig, cfg, name="d")
    device = HostDevice({"d": emulate("dense", sig, cfg)})
    kernel = CudaTemplateKernel(t, sig, source, device.load(b"", source))
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((13, 37)).astype("float32"), rng.standard_normal((40, 37)).astype("float32")
    np.testing.assert_allclose(kernel(x, w)[0], x @ w.T, rtol=1e-4, atol=1e-4)
    assert device.launches == [("d", (3, 2, 1), (8, 4, 1), (13,))]  # 40 cols / (8 * 2), 13 rows / (4 * 2)
    assert kernel(np.zeros((0, 37), "float32"), w)[0].shape == (0, 40) and len(device.launches) == 1
    n = source.shape_vars[0]
    assert kernel.launcher.benchmark([x, w], {n: 13}, number=5) == pytest.approx(1e-3 / 5)
    assert not device.mem  # every allocation freed
    with pytest.raises(Exception, match="input x has shape"):
        kernel.launcher([x[:, :5], w], {n: 13})
