"""The vector-ISA description and the register-fit rule the gemm fallback uses."""
from nimble.codegen.isa import AVX2, AVX512, SSE, host_isa, isa_from_features
from nimble.schedules.dense import dense_signature
from nimble.schedules.gemm import gemm_fallback
from nimble.schedules.registry import get_template


def test_isa_from_features():
    assert isa_from_features("+sse2,+avx,+avx2,+fma,-avx512f") is AVX2
    assert isa_from_features("+avx2,+avx512f,+avx512bw") is AVX512
    assert isa_from_features("+sse2,+sse4.2,-avx") is SSE
    assert isa_from_features("") is AVX2  # NIMBLE_CPU forced: features unknown


def test_register_fit():
    assert AVX512.fits(6, 32) and not AVX2.fits(6, 32)
    assert AVX2.fits(6, 16) and AVX2.fits(2, 32) and not AVX2.fits(4, 32)
    assert not AVX512.fits(8, 64)


def test_host_isa_is_known():
    assert host_isa() in (AVX2, AVX512, SSE)


def test_gemm_fallback_never_spills():
    t = get_template("dense")
    for isa in (AVX2, AVX512):
        for n in (1, 2, 3, 4, 8, 64, 128):
            sig = dense_signature("n", 768, 3072, weight="const")
            cfg = gemm_fallback(t.space(sig), "n", 768, 3072, {"n": n}, isa)
            assert isa.fits(cfg["tile_rows"], cfg["tile_cols"]), (isa, n, cfg)
    sig = dense_signature("n", 768, 768)
    assert gemm_fallback(t.space(sig), "n", 768, 768, {"n": 128}, AVX512)["tile_cols"] == 32
    assert gemm_fallback(t.space(sig), "n", 768, 768, {"n": 128}, AVX2)["tile_cols"] == 16


def test_gemm_fallback_takes_8_row_tiles_where_32_registers_hold_them():
    """AVX-512 holds up to a 12 x 32 accumulator block (24 + 2 + 1 of 32 zmm), which reuses each weight load for
    12 FMAs; AVX2's 16 registers do not hold 8 x 16 (19 ymm), so its heights stay 4, 5 or 6."""
    from nimble.schedules.gemm import gemm_space

    rows = {isa.name: {n: gemm_fallback(gemm_space("dense", "n", 768, isa), "n", 768, 3072, {"n": n}, isa)["tile_rows"]
                       for n in (3, 8, 12, 16, 24, 32, 64, 128)} for isa in (AVX2, AVX512)}
    assert rows["avx512"] == {3: 4, 8: 8, 12: 12, 16: 8, 24: 12, 32: 8, 64: 8, 128: 10}
    assert rows["avx2"] == {3: 4, 8: 4, 12: 6, 16: 4, 24: 6, 32: 4, 64: 6, 128: 6}
    assert gemm_fallback(gemm_space("dense", "n", 768, AVX512), "n", 768, 3072, {"n": 64}, AVX512)["tile_cols"] == 32
