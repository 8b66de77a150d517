"""``TileMatmul`` (uint8 x int8 -> int32 on Intel AMX tiles): exact against numpy at row counts around every tile
edge, k and column counts that are and are not multiples of 64 and 16, every accumulator shape; the code it
generates for a Sapphire Rapids target (checked on any host); the statements it refuses."""
import llvmlite.binding as llvm
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nimble.codegen import jit
from nimble.codegen.build import build_func
from nimble.codegen.isa import host_amx_int8
from nimble.codegen.llvm import CodegenError, codegen_llvm
from nimble.codegen.llvm_amx import TILE_SHAPES
from nimble.schedules.dense_integer import pack_weight
from nimble.te.expr import IntImm, Var
from nimble.tir.nodes import Buffer, PrimFunc, TileMatmul

amx = pytest.mark.skipif(not host_amx_int8(), reason="this CPU (or its OS) has no AMX-INT8 tiles")


def _func(k: int, m: int, tiles=(2, 2), dtypes=("uint8", "int8", "int32"), name="tile_mm", packed=False,
          init=False):
    """x (or its tiles when ``packed``), wp, [start (m,) when ``init``], out."""
    n, size = Var("n"), Var("size")
    x = Buffer("x", dtypes[0], (size,) if packed else (n, IntImm(k)))
    wp = Buffer("wp", dtypes[1], (IntImm(-(-m // 16)), IntImm(k // 4), IntImm(16), IntImm(4)))
    out = Buffer("out", dtypes[2], (n, IntImm(m)))
    start = Buffer("start", "int32", (IntImm(m),)) if init else None
    body = TileMatmul(out, IntImm(0), m, x, IntImm(0), k, wp, IntImm(0), n, m, k, *tiles, packed, start)
    params = (x, wp) + ((start,) if init else ()) + (out,)
    return PrimFunc(name, params, (size, n) if packed else (n,), body)


def _tiles_of(x: np.ndarray) -> np.ndarray:
    """x (n, k) as TileMatmul's packed a: 16 x 64-byte tiles, row tiles apart by 16 x k rounded up to 64."""
    n, k = x.shape
    kp, nt = -(-k // 64) * 64, -(-n // 16)
    padded = np.zeros((nt * 16, kp), np.uint8)
    padded[:n, :k] = x
    return np.ascontiguousarray(padded.reshape(nt, 16, kp // 64, 64).transpose(0, 2, 1, 3)).reshape(-1)


_kernels: dict = {}


def _kernel(k, m, tiles):
    key = (k, m, tiles)
    if key not in _kernels:
        _kernels[key] = build_func(_func(k, m, tiles, name=f"tmm_{k}_{m}_{tiles[0]}x{tiles[1]}"), outputs=[2])
    return _kernels[key]


def _check(kernel, n, k, m, rng):
    x = rng.integers(0, 256, (n, k)).astype(np.uint8)
    w = rng.integers(-128, 128, (m, k)).astype(np.int8)
    got = kernel(x, pack_weight(w, 16))
    np.testing.assert_array_equal(got, x.astype(np.int32) @ w.astype(np.int32).T, err_msg=f"n={n} k={k} m={m}")


@amx
@pytest.mark.parametrize("tiles", TILE_SHAPES)
def test_every_accumulator_shape_is_exact_around_the_tile_edges(tiles):
    rng = np.random.default_rng(sum(tiles))
    for k, m in [(192, 80), (100, 37)]:
        kernel = _kernel(k, m, tiles)
        for n in (0, 1, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 97):
            _check(kernel, n, k, m, rng)


@amx
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(n=st.sampled_from([0, 1, 2, 3, 5, 7, 13, 16, 31, 61, 127, 128, 257, 1031]),
       shape=st.sampled_from([(4, 1), (64, 16), (68, 17), (128, 64), (260, 50), (768, 96)]),
       tiles=st.sampled_from([(1, 4), (2, 2), (4, 1)]), seed=st.integers(0, 2**16))
def test_any_rows_k_and_columns(n, shape, tiles, seed):
    k, m = shape
    _check(_kernel(k, m, tiles), n, k, m, np.random.default_rng(seed))


@amx
@pytest.mark.parametrize("k, m, tiles", [(192, 80, (2, 2)), (100, 37, (1, 4)), (260, 50, (4, 1))])
def test_packed_a_is_exact(k, m, tiles):
    kernel = build_func(_func(k, m, tiles, name=f"tmm_packed_{k}_{m}_{tiles[0]}x{tiles[1]}", packed=True), outputs=[2])
    rng = np.random.default_rng(k)
    w = rng.integers(-128, 128, (m, k)).astype(np.int8)
    for n in (0, 1, 16, 17, 40, 99):
        x = rng.integers(0, 256, (n, k)).astype(np.uint8)
        out = np.empty((n, m), np.int32)
        kernel(_tiles_of(x), pack_weight(w, 16), out)
        np.testing.assert_array_equal(out, x.astype(np.int32) @ w.astype(np.int32).T, err_msg=f"n={n}")


@amx
@pytest.mark.parametrize("k, m, tiles", [(192, 80, (2, 2)), (100, 37, (1, 4)), (260, 50, (4, 1))])
def test_sums_start_from_init_columns(k, m, tiles):
    kernel = build_func(_func(k, m, tiles, name=f"tmm_init_{k}_{m}_{tiles[0]}x{tiles[1]}", init=True), outputs=[3])
    rng = np.random.default_rng(m)
    w = rng.integers(-128, 128, (m, k)).astype(np.int8)
    start = rng.integers(-2**20, 2**20, m).astype(np.int32)
    for n in (0, 1, 16, 17, 40, 99):
        x = rng.integers(0, 256, (n, k)).astype(np.uint8)
        want = x.astype(np.int32) @ w.astype(np.int32).T + start
        np.testing.assert_array_equal(kernel(x, pack_weight(w, 16), start), want, err_msg=f"n={n}")


@amx
def test_the_extremes_are_exact():
    k, m = 4096, 16  # 255 * -128 * 4096 = -133,693,440: the largest products, summed in int32
    x, w = np.full((3, k), 255, np.uint8), np.full((m, k), -128, np.int8)
    np.testing.assert_array_equal(_kernel(k, m, (1, 1))(x, pack_weight(w, 16)), np.full((3, m), 255 * -128 * k))


def _sapphire_rapids_asm(func) -> str:
    ir_text = codegen_llvm([func], jit.host().triple, "", True)
    target = llvm.Target.from_triple(jit.host().triple).create_target_machine(cpu="sapphirerapids", opt=2)
    module = llvm.parse_assembly(ir_text)
    module.verify()
    return target.emit_assembly(module)


def test_the_code_for_an_amx_cpu_configures_loads_multiplies_and_releases_tiles():
    """Compiled (not run) for Sapphire Rapids on any host: each block shape is a function with its own tile
    configuration; a k of 100 is one 64-byte step and a narrower one (in its own function)."""
    asm = _sapphire_rapids_asm(_func(100, 37, (2, 2)))
    for instruction in ("ldtilecfg", "tileloadd", "tdpbusd", "tilestored", "tilezero", "tilerelease"):
        assert instruction in asm, instruction
    bodies = [line for line in asm.splitlines() if line.startswith("nimble.amx.u8s8.")]
    assert any(".steps." in b for b in bodies) and any(".last." in b for b in bodies), bodies
    assert any(".r1d." in b for b in bodies), bodies  # the last rows: a run-time row count


@pytest.mark.parametrize("tiles, dtypes, match", [
    ((3, 2), ("uint8", "int8", "int32"), "accumulator tiles"),
    ((2, 2), ("int8", "int8", "int32"), "uint8 a, int8 b, int32 out"),
    ((2, 2), ("uint8", "int8", "float32"), "uint8 a, int8 b, int32 out"),
])
def test_statements_it_cannot_run_are_refused_by_name(tiles, dtypes, match):
    with pytest.raises(CodegenError, match=match):
        codegen_llvm([_func(64, 16, tiles, dtypes)], jit.host().triple, "", True)


def test_a_k_that_is_not_a_multiple_of_four_is_refused():
    with pytest.raises(CodegenError, match="multiple of 4"):
        codegen_llvm([_func(66, 16)], jit.host().triple, "", True)


def test_the_loop_ir_prints_the_product():
    text = str(_func(64, 16))
    assert "tile_matmul(x[0; 64], wp[0], rows=n, cols=16, k=64)  # 2 x 2 tiles" in text
