"""Conversions between float32 registers and the storage bits of bfloat16, float8 and float4, emitted as LLVM
integer code (scalar or vector operands), bit-exact with ml_dtypes' ``astype``:

* float32 -> storage: round to nearest, ties to even; NaN stays NaN (bfloat16's is 0x7fc0 with the sign). Overflow follows the
  format: e5m2 (and bfloat16) go to +-inf, e4m3fn / e4m3fnuz / e5m2fnuz (no inf) to NaN, e2m1 (no inf, no NaN)
  saturates to +-6 and takes NaN to -0 / +0 (ml_dtypes' choice). The fnuz formats have no -0: a negative value
  rounding to zero gives +0, and their one NaN is 0x80. Saturation (ONNX Cast's ``saturate``) is a clip before the
  conversion, done by the caller.
* float32 -> float8_e8m0fnu (a power of two 2**(code - 127), no sign, no zero, no inf, 0xFF NaN): ml_dtypes'
  rounding, to nearest with ties up (x >= 1.5 * 2**e goes to 2**(e+1)); below 2**-126 the code is 1 from
  1.5 * 2**-127 up, else 0 (2**-127); zero, negatives (-0 included), inf, NaN and overflow give NaN. ONNX Cast's
  round modes and saturation are built by the caller from this one conversion.
* storage -> float32: exact (e8m0's code 0 is the float32 subnormal 2**-127).

The float8/float4 path (not e8m0's, which reads the bits) assumes float32 subnormals round to zero, which holds
for every format it serves (their smallest subnormals are >= 2**-17).
"""
from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ir

from .llvm_math import _c, _like

I32 = ir.IntType(32)
F32 = ir.FloatType()


@dataclass(frozen=True)
class Format:
    ebits: int
    mbits: int
    bias: int
    kind: str  # "ieee" (inf and NaNs), "fn" (NaN = all magnitude bits set, no inf), "fnuz" (NaN = 0x80), "sat"

    @property
    def width(self) -> int:
        return 1 + self.ebits + self.mbits

    @property
    def max_code(self) -> int:
        """The magnitude bits of the largest finite value."""
        top = (1 << (self.ebits + self.mbits)) - 1
        return {"ieee": top - (1 << self.mbits), "fn": top - 1, "fnuz": top, "sat": top}[self.kind]


FORMATS = {
    "float8_e4m3fn": Format(4, 3, 7, "fn"),
    "float8_e4m3fnuz": Format(4, 3, 8, "fnuz"),
    "float8_e5m2": Format(5, 2, 15, "ieee"),
    "float8_e5m2fnuz": Format(5, 2, 16, "fnuz"),
    "float4_e2m1fn": Format(2, 1, 1, "sat"),
}
MINI_FLOATS = ("bfloat16",) + tuple(FORMATS) + ("float8_e8m0fnu",)


def _rne_shift(b: ir.IRBuilder, v, shift):
    """v >> shift rounded to nearest, ties to even (v >= 0, v + 2**(shift-1) < 2**31, 1 <= shift <= 31)."""
    t = v.type
    one = _c(t, 1)
    half_minus = b.sub(b.shl(one, b.sub(shift, one)), one)
    lsb = b.and_(b.lshr(v, shift), one)
    return b.lshr(b.add(b.add(v, half_minus), lsb), shift)


def from_f32(b: ir.IRBuilder, x, dtype: str):
    """The storage bits (i16 for bfloat16, else i8) of float32 `x`."""
    i32 = _like(x.type, I32)
    bits = b.bitcast(x, i32)
    if dtype == "bfloat16":
        lsb = b.and_(b.lshr(bits, _c(i32, 16)), _c(i32, 1))
        rounded = b.lshr(b.add(b.add(bits, _c(i32, 0x7FFF)), lsb), _c(i32, 16))
        quiet = b.or_(b.and_(b.lshr(bits, _c(i32, 16)), _c(i32, 0x8000)), _c(i32, 0x7FC0))  # ml_dtypes' NaN
        out = b.select(b.fcmp_unordered("uno", x, x), quiet, rounded)
        return b.trunc(out, _like(x.type, ir.IntType(16)))
    if dtype == "float8_e8m0fnu":
        return _e8m0_from_f32(b, bits)
    f = FORMATS[dtype]
    sign = b.lshr(bits, _c(i32, 31))
    a = b.and_(bits, _c(i32, 0x7FFFFFFF))
    e = b.lshr(a, _c(i32, 23))
    normal = b.icmp_unsigned(">=", e, _c(i32, 128 - f.bias))
    # normal in the target: rebias the exponent in place, round the mantissa (a carry bumps the exponent)
    code_n = _rne_shift(b, b.sub(a, _c(i32, (127 - f.bias) << 23)), _c(i32, 23 - f.mbits))
    # subnormal (or zero) in the target: the mantissa with its implicit bit, shifted by the exponent gap
    m = b.or_(b.and_(a, _c(i32, 0x7FFFFF)), _c(i32, 0x800000))
    shift = b.sub(_c(i32, 24 - f.mbits + 127 - f.bias), e)
    shift = b.select(b.icmp_unsigned(">", shift, _c(i32, 31)), _c(i32, 31), shift)
    code_s = _rne_shift(b, m, b.select(normal, _c(i32, 31), shift))
    code = b.select(normal, code_n, code_s)
    over = {"ieee": (1 << (f.ebits + f.mbits)) - (1 << f.mbits), "fn": f.max_code + 1, "fnuz": 0x80,
            "sat": f.max_code}[f.kind]
    code = b.select(b.icmp_unsigned(">", code, _c(i32, f.max_code)), _c(i32, over), code)
    signed = b.or_(code, b.shl(sign, _c(i32, f.width - 1)))
    is_nan = b.fcmp_unordered("uno", x, x)
    if f.kind == "fnuz":  # no -0; the one NaN and overflow are 0x80 already
        out = b.select(b.icmp_unsigned("==", code, _c(i32, 0)), code,
                       b.select(b.icmp_unsigned("==", code, _c(i32, 0x80)), code, signed))
        out = b.select(is_nan, _c(i32, 0x80), out)
    elif f.kind == "sat":  # no NaN: ml_dtypes gives the zero of the other sign
        out = b.select(is_nan, b.shl(b.xor(sign, _c(i32, 1)), _c(i32, f.width - 1)), signed)
    else:
        nan = (1 << (f.ebits + f.mbits)) - 1 if f.kind == "fn" else (1 << (f.ebits + f.mbits)) - (1 << (f.mbits - 1))
        out = b.select(is_nan, b.or_(_c(i32, nan), b.shl(sign, _c(i32, f.width - 1))), signed)
    return b.trunc(out, _like(x.type, ir.IntType(8)))


def _e8m0_from_f32(b: ir.IRBuilder, bits):
    """float8_e8m0fnu's code of the float32 with bits `bits` (i32), as ml_dtypes rounds (module docstring)."""
    i32 = bits.type
    e = b.lshr(bits, _c(i32, 23))  # the exponent, and the sign as bit 8
    f = b.and_(bits, _c(i32, 0x7FFFFF))
    normal = b.add(e, b.zext(b.icmp_unsigned(">=", f, _c(i32, 0x400000)), i32))
    sub = b.zext(b.icmp_unsigned(">=", f, _c(i32, 0x600000)), i32)
    code = b.select(b.icmp_unsigned("==", e, _c(i32, 0)), sub, normal)
    # a sign makes e >= 256; inf, NaN and overflow give codes >= 255; zero is the one more NaN
    nan = b.or_(b.icmp_unsigned(">", code, _c(i32, 254)), b.icmp_unsigned("==", bits, _c(i32, 0)))
    return b.trunc(b.select(nan, _c(i32, 0xFF), code), _like(i32, ir.IntType(8)))


def to_f32(b: ir.IRBuilder, v, dtype: str):
    """The float32 value of storage bits `v` (i16 for bfloat16, else i8)."""
    i32 = _like(v.type, I32)
    f32 = _like(v.type, F32)
    c = b.zext(v, i32)
    if dtype == "bfloat16":
        return b.bitcast(b.shl(c, _c(i32, 16)), f32)
    if dtype == "float8_e8m0fnu":  # 2**(c - 127): c << 23, but 0 is the subnormal 0x00400000 and 0xFF NaN
        bits = b.select(b.icmp_unsigned("==", c, _c(i32, 0)), _c(i32, 0x400000), b.shl(c, _c(i32, 23)))
        return b.bitcast(b.select(b.icmp_unsigned("==", c, _c(i32, 0xFF)), _c(i32, 0x7FC00000), bits), f32)
    f = FORMATS[dtype]
    sign = b.shl(b.lshr(c, _c(i32, f.width - 1)), _c(i32, 31))
    mag = b.and_(c, _c(i32, (1 << (f.width - 1)) - 1))
    exp = b.lshr(mag, _c(i32, f.mbits))
    man = b.and_(mag, _c(i32, (1 << f.mbits) - 1))
    normal = b.or_(b.shl(b.add(exp, _c(i32, 127 - f.bias)), _c(i32, 23)), b.shl(man, _c(i32, 23 - f.mbits)))
    sub = b.bitcast(b.fmul(b.uitofp(man, f32), _c(f32, 2.0 ** (1 - f.bias - f.mbits))), i32)
    bits = b.or_(b.select(b.icmp_unsigned("==", exp, _c(i32, 0)), sub, normal), sign)
    top = (1 << f.ebits) - 1
    if f.kind == "ieee":
        special = b.icmp_unsigned("==", exp, _c(i32, top))
        inf_or_nan = b.select(b.icmp_unsigned("==", man, _c(i32, 0)), _c(i32, 0x7F800000), _c(i32, 0x7FC00000))
        bits = b.select(special, b.or_(inf_or_nan, sign), bits)
    elif f.kind == "fn":
        bits = b.select(b.icmp_unsigned("==", mag, _c(i32, (1 << (f.width - 1)) - 1)),
                        b.or_(_c(i32, 0x7FC00000), sign), bits)
    elif f.kind == "fnuz":
        bits = b.select(b.icmp_unsigned("==", c, _c(i32, 0x80)), _c(i32, 0x7FC00000), bits)
    return b.bitcast(bits, f32)
