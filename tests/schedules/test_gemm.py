"""dense / matmul / batch_matmul: every template x several configs against numpy at many sizes."""
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nimble.schedules import Signature, TemplateError, get_template
from nimble.schedules.dense import dense_signature, pack_weight

SIZES = [0, 1, 2, 5, 6, 7, 13, 31, 64, 97]
rng = np.random.default_rng(0)

CASES = {
    "dense_input": ("dense", dense_signature("n", 40, 48)),
    "dense_const_bias_gelu": ("dense", dense_signature("n", 37, 70, bias=True, epilogue=["gelu"], weight="const")),
    "dense_relu_residual": ("dense", dense_signature("n", 16, 33, epilogue=["relu", "residual"])),
    "dense_const_half_weight": ("dense", dense_signature("n", 40, 70, bias=True, epilogue=["relu"], weight="const",
                                                         weight_dtype="float16")),
    "matmul_symbolic_kn": ("matmul", Signature.make([(("n", "k"), "float32"), (("k", 40), "float32")])),
    "matmul_symbolic_m": ("matmul", Signature.make([(("n", 24), "float32"), ((24, "m"), "float32")])),
    "bmm_attention_scores": ("batch_matmul", Signature.make([(("b", "n", 16), "float32"), (("b", "n", 16), "float32")])),
    "bmm_attention_values": ("batch_matmul", Signature.make([((3, "n", "n"), "float32"), ((3, "n", 32), "float32")],
                                                            transpose_b=False)),
}


def configs(t, sig):
    space = t.space(sig)
    r = random.Random(7)
    return [("fallback", t.fallback(sig, space, {"n": 64})), ("first", space.get(0)), ("last", space.get(len(space) - 1)),
            ("random1", space.random(r)), ("random2", space.random(r))]


def dims_for(sig, n):
    return {d: (n if d == "n" else {"k": 19, "m": 35, "b": 2}[d]) for d in sig.symbolic_dims}


@pytest.mark.parametrize("case", sorted(CASES))
def test_configs_match_numpy_at_many_sizes(case):
    name, sig = CASES[case]
    t = get_template(name)
    for label, cfg in configs(t, sig):
        kernel = t.build(sig, cfg, name=f"{name}_{label}")
        for n in SIZES:
            ins = t.random_inputs(sig, dims_for(sig, n), rng)
            out = kernel(*ins)
            ref = t.reference(sig, ins)[0]
            assert out.shape == ref.shape, (label, n)
            np.testing.assert_allclose(out, ref, rtol=2e-4, atol=2e-4, err_msg=f"{case} {label} n={n} {cfg}")


@pytest.fixture(scope="module")
def dense_last():
    name, sig = CASES["dense_const_bias_gelu"]
    t = get_template(name)
    space = t.space(sig)
    return t, sig, t.build(sig, space.get(len(space) - 1), name="dense_hyp")


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 300))
def test_dense_any_n(dense_last, n):
    t, sig, kernel = dense_last
    ins = t.random_inputs(sig, {"n": n}, rng)
    np.testing.assert_allclose(kernel(*ins), t.reference(sig, ins)[0], rtol=2e-4, atol=2e-4)


def test_residue_variant_serves_multiples_of_the_tile():
    t = get_template("dense")
    sig = dense_signature("n", 32, 32)
    space = t.space(sig)
    cfg = space.config(**{**t.fallback(sig, space, {"n": 64}).values, "tile_rows": 4})
    k = t.build(sig, cfg, name="dense_residue")
    for n in (4, 8, 5):
        ins = t.random_inputs(sig, {"n": n}, rng)
        np.testing.assert_allclose(k(*ins), t.reference(sig, ins)[0], rtol=2e-4, atol=2e-4)
    assert k.kernel.variant_calls == [2, 1]


def test_a_float16_weight_is_packed_as_float16_and_only_when_exact():
    from nimble.schedules.dense import half_exact

    w = np.random.default_rng(1).standard_normal((6, 5)).astype("float32")
    assert not half_exact(w) and half_exact(w.astype("float16").astype("float32"))
    assert not half_exact(np.full((2, 2), 1e6, "float32")) and not half_exact(w.astype("float64"))
    assert pack_weight(w, 4, "float16").dtype == np.float16 and pack_weight(w, 4).dtype == np.float32
    with pytest.raises(TemplateError, match="weight_dtype"):
        get_template("dense").instantiate(dense_signature("n", 8, 8, weight_dtype="float16"),
                                          get_template("dense").space(dense_signature("n", 8, 8)).get(0))


def test_pack_weight_layout():
    w = np.arange(5 * 3, dtype="float32").reshape(5, 3)
    wp = pack_weight(w, 2)
    assert wp.shape == (3, 3, 2)
    assert wp[1, 2, 0] == w[2, 2] and wp[2, 0, 1] == 0.0  # zero padding past m


def test_space_index_and_json_round_trip():
    t = get_template("dense")
    sig = dense_signature("n", 768, 768)
    space = t.space(sig)
    cfg = space.random(random.Random(3))
    assert space.from_json(cfg.to_json()) == cfg
    assert space.get(cfg.index).values == cfg.values
    with pytest.raises(Exception, match="tile_rows"):
        space.from_json({**cfg.to_json(), "tile_rows": 7})


def test_bad_signatures_are_named():
    t = get_template("dense")
    with pytest.raises(TemplateError, match="x has 10 columns, weight expects 12"):
        t.space(Signature.make([(("n", 10), "float32"), ((4, 12), "float32")]))
    with pytest.raises(TemplateError, match="no template 'nope'"):
        get_template("nope")


def _weighted_rows(n, rows):
    from nimble.schedules.gemm import ROW_COST

    return -(-n // rows) * rows * ROW_COST[rows]


def test_a_tuned_tile_height_is_refit_where_another_computes_fewer_rows():
    from nimble.codegen.isa import AVX2

    from nimble.schedules.gemm import gemm_refit

    t = get_template("dense")
    sig = dense_signature("n", 768, 3072, weight="const")
    space = t.space(sig)
    six = space.config(**{**t.fallback(sig, space, {"n": 64}).values, "tile_rows": 6, "tile_cols": 16})
    rows = {n: (gemm_refit(space, six, n, AVX2) or six)["tile_rows"] for n in (1, 2, 3, 8, 9, 12, 16, 23, 24, 64)}
    assert rows == {1: 1, 2: 2, 3: 4, 8: 4, 9: 5, 12: 6, 16: 4, 23: 6, 24: 6, 64: 6}
    assert gemm_refit(space, six, 24, AVX2) is None  # its own height, 4 passes: the record's config itself
    two_passes = gemm_refit(space, six, 12, AVX2)  # its own height, but 2 passes over streamed weights: k_streams
    assert (two_passes["tile_rows"], two_passes["k_streams"]) == (6, 4)
    refit = gemm_refit(space, six, 8, AVX2)  # 4-row tiles, 2 passes: k_streams (with its k_unroll), the rest kept
    fewer_passes = ("tile_rows", "k_streams", "k_unroll")
    assert {k: v for k, v in refit.values.items() if k not in fewer_passes} == {
        k: v for k, v in six.values.items() if k not in fewer_passes}
    assert (refit["k_streams"], refit["k_unroll"]) == (4, 1)
    eight = space.config(**{**six.values, "tile_rows": 8})
    assert all(gemm_refit(space, eight, n, AVX2) is None for n in (3, 8, 9, 12))  # no cost known for 8 rows
    assert t.refit(sig, space, six, "m", 8) is None  # only the row dim


@settings(max_examples=200, deadline=None)
@given(n=st.one_of(st.integers(3, 600), st.sampled_from([3, 5, 7, 11, 13, 127, 509])), own=st.sampled_from([4, 5, 6]))
def test_refit_never_computes_more_weighted_rows_than_the_tuned_height(n, own):
    from nimble.codegen.isa import AVX2

    from nimble.schedules.gemm import gemm_refit

    t = get_template("dense")
    sig = dense_signature("n", 64, 32)
    space = t.space(sig)
    cfg = space.config(**{**t.fallback(sig, space, {"n": 64}).values, "tile_rows": own, "tile_cols": 16})
    refit = gemm_refit(space, cfg, n, AVX2)
    if refit is not None:
        assert _weighted_rows(n, refit["tile_rows"]) < _weighted_rows(n, own)


@pytest.mark.parametrize("knob, default", [("prefetch", 0), ("stream", 0), ("k_streams", 1)])
def test_a_config_recorded_before_a_knob_means_its_default_off(knob, default):
    t = get_template("dense")
    sig = dense_signature("n", 768, 768, weight="const")
    space = t.space(sig)
    off = space.config(**{**t.fallback(sig, space, {"n": 32}).values, knob: default})
    old = {k: v for k, v in off.to_json().items() if k != knob}
    assert space.from_json(old) == off
    assert space.recorded(off.index, old) == off
    with pytest.raises(Exception, match=knob):
        space.from_json({**old, knob: 100})


def test_the_fallback_prefetches_constant_weights_too_big_for_l2():
    from nimble.codegen.isa import host_isa
    from nimble.schedules.gemm import fallback_prefetch

    t = get_template("dense")
    ahead = fallback_prefetch(32 if host_isa().registers >= 32 else 16)
    for k, weight, n, expected in ((768, "const", 8, ahead), (768, "input", 8, 0), (64, "const", 8, 0),
                                   (768, "const", 1, 0), (768, "const", 2, 0)):
        sig = dense_signature("n", k, 768, weight=weight)  # a 64 x 768 weight (192 KiB) stays in L2
        assert t.fallback(sig, t.space(sig), {"n": n})["prefetch"] == expected, (k, weight, n)
    sig = dense_signature("n", 768, 768, weight="const")  # a GEMV streams faster without: refit drops it at n = 1, 2
    space = t.space(sig)
    tuned = t.fallback(sig, space, {"n": 16})
    assert tuned["prefetch"] == ahead
    assert [t.refit(sig, space, tuned, "n", n)["prefetch"] for n in (1, 2)] == [0, 0]
    assert t.refit(sig, space, tuned, "n", 6)["prefetch"] == ahead  # one tile of 6 rows: still prefetched
    name, sig = CASES["bmm_attention_scores"]
    bmm = get_template(name)
    assert bmm.fallback(sig, bmm.space(sig), {"n": 8})["prefetch"] == 0


@pytest.fixture(scope="module")
def dense_prefetched():
    t = get_template("dense")
    sig = dense_signature("n", 53, 100, bias=True, weight="const")
    space = t.space(sig)
    cfg = space.config(**{**t.fallback(sig, space, {"n": 16}).values, "tile_cols": 48, "prefetch": 4096})
    kernel = t.build(sig, cfg, name="dense_prefetched")
    assert "# 3 lines" in kernel.kernel.ir()  # 48 weights a step: 3 cache lines
    return t, sig, kernel


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.integers(0, 300), st.sampled_from([0, 1, 2, 3, 5, 7, 13, 127, 509])))
def test_prefetching_dense_matches_numpy_at_any_n(dense_prefetched, n):
    t, sig, kernel = dense_prefetched
    ins = t.random_inputs(sig, {"n": n}, rng)
    np.testing.assert_allclose(kernel(*ins), t.reference(sig, ins)[0], rtol=2e-4, atol=2e-4)


def test_the_fallback_prefetch_is_16_steps_of_a_tile_row_ahead():
    from nimble.codegen.isa import AVX2, AVX512
    from nimble.schedules import gemm

    assert [gemm.fallback_prefetch(c) for c in (8, 16, 32, 64)] == [1024, 1024, 2048, 4096]
    assert gemm.fallback_prefetch(16, itemsize=2) == 1024 and gemm.fallback_prefetch(128) == 4096  # the knob's top
    t = get_template("dense")
    sig = dense_signature("n", 768, 3072, weight="const")
    assert gemm.gemm_fallback(t.space(sig), "n", 768, 3072, {"n": 32}, AVX512, streamed=True)["prefetch"] == 2048
    assert gemm.gemm_fallback(t.space(sig), "n", 768, 3072, {"n": 32}, AVX2, streamed=True)["prefetch"] == 1024


def test_refit_on_avx512_weighs_8_row_tiles():
    from nimble.codegen.isa import AVX512

    from nimble.schedules.gemm import gemm_refit

    from nimble.schedules.gemm import gemm_fallback, gemm_space

    space = gemm_space("dense", "n", 768, AVX512)  # this host's space may be AVX2's
    eight = gemm_fallback(space, "n", 768, 3072, {"n": 64}, AVX512, streamed=True)
    assert eight["tile_rows"] == 8 and eight["tile_cols"] == 32
    rows = {n: (gemm_refit(space, eight, n, AVX512) or eight)["tile_rows"]
            for n in (1, 2, 3, 5, 8, 9, 12, 16, 17, 24, 33, 64)}
    # 17 and 33: 10- and 12-row tiles streaming at 2 and 3 passes (credited) over 6- and 10-row ones at 3 and 4
    assert rows == {1: 1, 2: 2, 3: 4, 5: 5, 8: 8, 9: 10, 12: 12, 16: 8, 17: 10, 24: 12, 33: 12, 64: 8}


def test_records_are_read_by_their_knob_values_when_a_knob_gained_values():
    """The AVX-512 space offers 10- and 12-row tiles, which renumber every config: a record made before (or on an
    AVX2 host) still means its knob values; a 12-row record is no config of the AVX2 space."""
    from nimble.codegen.isa import AVX2, AVX512
    from nimble.schedules.gemm import gemm_space

    narrow, wide = gemm_space("dense", "n", 768, AVX2), gemm_space("dense", "n", 768, AVX512)
    assert narrow.knobs["tile_rows"].values == (1, 2, 3, 4, 5, 6, 8)
    assert wide.knobs["tile_rows"].values == (1, 2, 3, 4, 5, 6, 8, 10, 12)
    old = narrow.config(tile_rows=6, tile_cols=32, k_unroll=4, col_block=2, order=("rows_outer",), parallel="fused",
                        prefetch=1024, stream=0, k_streams=1)
    now = wide.recorded(old.index, old.to_json())
    assert now is not None and now.to_json() == old.to_json() and now.index != old.index
    twelve = wide.config(**{**now.values, "tile_rows": 12})
    assert narrow.recorded(twelve.index, twelve.to_json()) is None


def test_the_stream_prefetches_the_next_block_where_later_passes_hide_it():
    from nimble.codegen.isa import AVX2, AVX512
    from nimble.schedules import gemm

    t = get_template("dense")
    sig = dense_signature("n", 768, 3072, weight="const")
    space = gemm.gemm_space("dense", "n", 768, AVX512)
    at = {n: gemm.gemm_fallback(space, "n", 768, 3072, {"n": n}, AVX512, streamed=True) for n in (1, 8, 32, 128)}
    assert [at[n]["stream"] for n in (1, 8, 32, 128)] == [0, 1, 1, 1]  # 1 row: no prefetch at all
    assert gemm.gemm_fallback(space, "n", 768, 3072, {"n": 32}, AVX512, streamed=False)["stream"] == 0
    assert gemm.gemm_fallback(gemm.gemm_space("dense", "n", 768, AVX2), "n", 768, 3072, {"n": 32}, AVX2,
                              streamed=True)["stream"] == 1
    eight = at[32]
    assert eight["tile_rows"] == 8
    refit = {n: gemm.gemm_refit(space, eight, n, AVX512) or eight for n in (1, 2, 8, 12, 26, 40, 48, 128, 200)}
    assert (refit[8]["tile_rows"], refit[8]["stream"]) == (8, 0)
    assert gemm.gemm_refit(space, eight, 32, AVX512) is None  # its own height, 4 passes: as it is
    assert refit[1]["stream"] == refit[2]["stream"] == 0  # no prefetch for a GEMV
    # 8 rows at n = 8 (the config's own height) and 12 rows at n = 12: one pass, nothing to stream behind; 128 rows in 10-row tiles: 13 passes; 200: 20, too many
    assert (refit[12]["tile_rows"], refit[12]["stream"]) == (12, 0)
    assert (refit[128]["tile_rows"], refit[128]["stream"]) == (10, 1)
    assert (refit[200]["tile_rows"], refit[200]["stream"]) == (10, 0)
    # the stream's credit at every pass count it runs at: the fewest rows computed among streaming heights of 8
    # rows or more (10-row tiles at n = 26: 30 rows in 3 passes), weighted by row_cost
    assert [(refit[n]["tile_rows"], refit[n]["stream"]) for n in (26, 40, 48)] == [(10, 1), (10, 1), (12, 1)]
    plain = space.config(**{**eight.values, "stream": 0})
    assert (gemm.gemm_refit(space, plain, 26, AVX512) or plain)["tile_rows"] == 10  # without it: fewest rows
    ir = t.build(sig, t.space(sig).config(**{**t.fallback(sig, t.space(sig), {"n": 32}).values, "stream": 1})
                 ).kernel.ir()
    assert "prefetch to L2 w[" in ir and " <= 16))" in ir  # under the condition of 2..16 passes


@pytest.fixture(scope="module")
def dense_streamed():
    t = get_template("dense")
    sig = dense_signature("n", 53, 200, bias=True, weight="const")
    space = t.space(sig)
    cfg = space.config(**{**t.fallback(sig, space, {"n": 16}).values, "tile_rows": 4, "tile_cols": 16,
                          "col_block": 2, "prefetch": 1024, "stream": 1})
    kernel = t.build(sig, cfg, name="dense_streamed")
    assert "prefetch to L2 w[" in kernel.kernel.ir()
    return t, sig, kernel


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.integers(0, 80), st.sampled_from([0, 1, 4, 5, 8, 9, 16, 17, 32, 33, 127])))
def test_streaming_dense_matches_numpy_at_every_pass_count(dense_streamed, n):
    """4-row tiles: 0..32 passes over each block, so the stream is off, on at each share, and off again."""
    t, sig, kernel = dense_streamed
    ins = t.random_inputs(sig, {"n": n}, rng)
    np.testing.assert_allclose(kernel(*ins), t.reference(sig, ins)[0], rtol=2e-4, atol=2e-4)


def test_a_static_one_row_product_gets_enough_accumulator_chains():
    """n = 1 (a Tree-LSTM cell's linear layer): 64 columns on AVX-512 (4 zmm chains hide the FMA latency), 32 on
    AVX2 (already 4 ymm); narrow outputs and symbolic row counts keep the usual 32."""
    from nimble.codegen.isa import AVX2, AVX512
    from nimble.schedules.gemm import gemm_fallback, gemm_space

    wide, narrow = gemm_space("dense", 1, 300, AVX512), gemm_space("dense", 1, 300, AVX2)
    assert gemm_fallback(wide, 1, 300, 448, None, AVX512)["tile_cols"] == 64
    assert gemm_fallback(narrow, 1, 300, 448, None, AVX2)["tile_cols"] == 32
    assert gemm_fallback(wide, 1, 300, 48, None, AVX512)["tile_cols"] == 32
    assert gemm_fallback(wide, 2, 300, 448, None, AVX512)["tile_cols"] == 32  # 2 rows x 2 vectors: 4 chains
    symbolic = gemm_space("dense", "n", 300, AVX512)
    assert gemm_fallback(symbolic, "n", 300, 448, {"n": 1}, AVX512)["tile_cols"] == 32


def test_k_streams_where_the_rows_make_few_passes_over_streamed_weights():
    """4 interleaved parts of k where tiles of up to 12 rows make one or two passes over weights from memory;
    dropped by the refit where they make more passes; never for weights that stay in L2."""
    from nimble.codegen.isa import AVX512
    from nimble.schedules import gemm

    space = gemm.gemm_space("dense", "n", 768, AVX512)
    static = gemm.gemm_space("dense", 8, 768, AVX512)
    assert gemm.gemm_fallback(static, 8, 768, 3072, None, AVX512, streamed=True)["k_streams"] == 4
    assert gemm.gemm_fallback(static, 8, 768, 64, None, AVX512, streamed=True)["k_streams"] == 1  # 192 KB: in L2
    assert gemm.gemm_fallback(static, 8, 768, 3072, None, AVX512)["k_streams"] == 1  # not a model constant
    wide = gemm.gemm_fallback(space, "n", 768, 3072, {"n": 64}, AVX512, streamed=True)
    assert wide["k_streams"] == 1

    def parts(n):
        return (gemm.gemm_refit(space, wide, n, AVX512) or wide)["k_streams"]

    assert [parts(n) for n in (1, 2, 3, 5, 8, 9, 12, 16, 24, 26, 64)] == [1, 1, 4, 4, 4, 4, 4, 4, 4, 1, 1]
    assert gemm.gemm_fallback(static, 8, 768, 3072, None, AVX512, streamed=True)["k_unroll"] == 1


@pytest.fixture(scope="module")
def dense_k_streams():
    t = get_template("dense")
    sig = dense_signature("n", 96, 80, bias=True, weight="const")
    space = t.space(sig)
    base = {**t.fallback(sig, space, {"n": 8}).values, "tile_rows": 4, "tile_cols": 16, "k_unroll": 4}
    kernels = {p: t.build(sig, space.config(**{**base, "k_streams": p}), name=f"dense_k{p}") for p in (1, 2, 4)}
    odd = dense_signature("n", 94, 80, bias=True, weight="const")  # 94 = no multiple of 4 * 4: the knob is ignored
    ospace = t.space(odd)
    kernels["odd"] = t.build(odd, ospace.config(**{**t.fallback(odd, ospace, {"n": 8}).values, "k_streams": 4}),
                             name="dense_k_odd")
    return t, sig, odd, kernels


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([0, 1, 2, 3, 4, 5, 7, 8, 9, 13, 31]))
def test_dense_with_k_streams_matches_numpy(dense_k_streams, n):
    t, sig, odd, kernels = dense_k_streams
    ins = t.random_inputs(sig, {"n": n}, rng)
    want = t.reference(sig, ins)[0]
    for p in (1, 2, 4):
        np.testing.assert_allclose(kernels[p](*ins), want, rtol=2e-5, atol=2e-5, err_msg=f"k_streams {p}")
    ins = t.random_inputs(odd, {"n": n}, rng)
    np.testing.assert_allclose(kernels["odd"](*ins), t.reference(odd, ins)[0], rtol=2e-5, atol=2e-5)


def _evaluate(e, env: dict) -> int:
    """An integer te expression's value (the index arithmetic a prefetch address is made of)."""
    from nimble.te import expr as E

    ops = {E.Add: lambda a, b: a + b, E.Sub: lambda a, b: a - b, E.Mul: lambda a, b: a * b,
           E.FloorDiv: lambda a, b: a // b, E.FloorMod: lambda a, b: a % b, E.Min: min, E.Max: max,
           E.EQ: lambda a, b: int(a == b), E.LT: lambda a, b: int(a < b), E.LE: lambda a, b: int(a <= b)}
    if isinstance(e, E.IntImm):
        return e.value
    if isinstance(e, E.Var):
        return env[e]
    if isinstance(e, E.Cast):
        return _evaluate(e.value, env)
    if isinstance(e, E.Select):
        return _evaluate(e.true_value if _evaluate(e.cond, env) else e.false_value, env)
    if isinstance(e, E.Call) and e.func == "shift_right":
        return _evaluate(e.args[0], env) >> _evaluate(e.args[1], env)
    return ops[type(e)](_evaluate(e.a, env), _evaluate(e.b, env))


@pytest.mark.parametrize("passes", range(2, 17))
def test_the_passes_over_a_block_fetch_all_of_the_next_block_evenly(passes):
    """Every pass count of the stream's range (7 included, where a power-of-two share left the last 3 passes
    fetching past the next block): the passes together fetch every line of block 1 while computing block 0,
    each pass about its 1/passes share, and nothing past the block but the last fetch's own lines."""
    from nimble import te
    from nimble.schedules.gemm import stream_plan

    ty, bn, ku, cb, k = 8, 32, 4, 2, 64
    n = te.var("n")
    index, lines, _ = stream_plan(n, k, ty, bn, ku, cb, bn, 4)
    rows = passes * ty - 3  # a partial last tile
    block_lines = cb * k * bn * 4 // 64
    per_pass = []
    for p in range(passes):
        fetched = set()
        for panel in range(cb):
            for r in range(0, k, ku):
                at = _evaluate(index(te.const(p * ty, "int64"), te.const(panel * bn, "int64"), te.const(r, "int64")),
                               {n: rows})
                first = at * 4 // 64
                fetched.update(range(first, first + lines))
        per_pass.append(fetched)
    every = set().union(*per_pass)
    assert set(range(block_lines, 2 * block_lines)) <= every
    assert max(every) < 2 * block_lines + lines
    new = [len(f - set().union(*per_pass[:p])) for p, f in enumerate(per_pass)]
    assert max(new) <= block_lines / passes * 1.5 + lines, new  # no pass fetches much more than its share
