"""The host's vector ISA as the schedules need it: float32 lanes per vector register and the
number of vector registers (what a register-tiled micro-kernel may keep live without spilling).

Read from the JIT target's feature string (``+avx512f`` -> 16 lanes, 32 registers; ``+avx`` /
``+avx2`` -> 8 lanes, 16 registers; otherwise SSE's 4 lanes, 16 registers). When the target is
forced with ``NIMBLE_CPU`` the features are unknown and the AVX2 shape is assumed: tiles sized
for it do not spill on an AVX-512 machine either.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VectorISA:
    name: str
    f32_lanes: int
    registers: int

    def fits(self, tile_rows: int, tile_cols: int) -> bool:
        """Whether a ``tile_rows x tile_cols`` float32 accumulator block, one weight row of it and a
        broadcast register fit the register file."""
        vecs = -(-tile_cols // self.f32_lanes)
        return tile_rows * vecs + vecs + 1 <= self.registers


AVX512 = VectorISA("avx512", 16, 32)
AVX2 = VectorISA("avx2", 8, 16)
SSE = VectorISA("sse", 4, 16)


def isa_from_features(features: str) -> VectorISA:
    flags = set(features.split(","))
    if "+avx512f" in flags:
        return AVX512
    if "+avx2" in flags or "+avx" in flags or not features:
        return AVX2
    return SSE


def host_isa() -> VectorISA:
    """The vector ISA of the JIT target (see the module docstring)."""
    from .jit import host

    return isa_from_features(host().features)


def dot_widths(features: str) -> tuple:
    """The int32 lane counts of the VNNI byte dot product (``vpdpbusd``) the target has, widest first:
    (16, 8, 4) with AVX512-VNNI and AVX512-VL, (16,) with AVX512-VNNI alone, (8, 4) with AVX-VNNI, () without."""
    flags = set(features.split(","))
    out = []
    if "+avx512vnni" in flags and "+avx512f" in flags:
        out.append(16)
        if "+avx512vl" in flags:
            out += [8, 4]
    if "+avxvnni" in flags and 8 not in out:
        out += [8, 4]
    return tuple(out)


def host_dot_widths() -> tuple:
    """``dot_widths`` of the JIT target (none when ``NIMBLE_CPU`` forces a CPU: its features are unknown)."""
    from .jit import host

    return dot_widths(host().features)


def host_amx_int8() -> bool:
    """Whether kernels may use AMX-INT8 tiles here: the JIT target has them and Linux granted the tile state."""
    from .jit import host
    from .llvm_amx import has_amx_int8, tile_permission

    return has_amx_int8(host().features) and tile_permission()
