"""Vectorizable float32 math emitted inline as LLVM IR (scalar or vector operands).

Measured accuracy against float64 numpy (tests/codegen/test_math.py checks these bounds):

* ``exp``: Cephes-style range reduction and a degree-6 polynomial; relative error <= 1e-6 on
  [-80, 80] (about 2e-7 measured); +inf above 88.72, 0 below -87.33, NaN propagates.
* ``tanh``: Eigen's 13/6 rational approximation, clamped at +-7.905; absolute error <= 1e-6.
* ``sigmoid``: 1 / (1 + exp(-x)) with the exp above; absolute error <= 1e-6.
* ``erf``: Eigen's 13/8 rational approximation, clamped at +-4; absolute error <= 1e-6.

* ``atan``: Cephes' atanf (3 reduction intervals, degree-4 polynomial); <= 3 ulp of the float64 result.
* ``tan``: Cephes' tanf, reduced in float64 (Cody-Waite, exact near the poles); <= 3 ulp; libm's tanf on a
  branch for lanes with finite |x| > 2**21.
* ``sinh`` / ``cosh``: from the exp above (a polynomial for sinh on |x| <= 1), finite up to 89.4; <= 2 ulp.
  (ulp bounds: tests/codegen/test_math.py over float32 bit patterns of the whole range.)

float64 and the other functions (log, pow, sqrt, abs, sin, cos, round, floor, ceil) use LLVM intrinsics (libm or
hardware: llvm.sin / llvm.cos are libm calls lane by lane on x86); asin, acos and the inverse hyperbolic functions
call libm lane by lane.
"""
from __future__ import annotations

import llvmlite.ir as ir

F32 = ir.FloatType()
I32 = ir.IntType(32)

_FLAGS = ("contract",)


def _c(ty, value):
    """The constant ``value`` of type ``ty``, splat across the lanes when ``ty`` is a vector."""
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [ir.Constant(ty.element, value)] * ty.count)
    return ir.Constant(ty, value)


def _like(ty, scalar):
    """`scalar` (an LLVM type), as a vector when `ty` is one."""
    return ir.VectorType(scalar, ty.count) if isinstance(ty, ir.VectorType) else scalar


def _int_type_like(ty):
    return ir.VectorType(I32, ty.count) if isinstance(ty, ir.VectorType) else I32


def _poly(b: ir.IRBuilder, x, coeffs):
    """Horner evaluation of coeffs (highest degree first)."""
    ty = x.type
    acc = _c(ty, coeffs[0])
    for c in coeffs[1:]:
        acc = b.fadd(b.fmul(acc, x, flags=_FLAGS), _c(ty, c), flags=_FLAGS)
    return acc


def _select_cmp(b, op, x, bound, then, otherwise):
    return b.select(b.fcmp_ordered(op, x, bound), then, otherwise)


def intrinsic(b: ir.IRBuilder, name: str, args):
    ty = args[0].type
    suffix = f"v{ty.count}f32" if isinstance(ty, ir.VectorType) else ("f32" if ty == F32 else "f64")
    if isinstance(ty, ir.VectorType) and ty.element != F32:
        suffix = f"v{ty.count}f64"
    mod = b.module
    fname = f"llvm.{name}.{suffix}"
    fn = mod.globals.get(fname)
    if fn is None:
        fn = ir.Function(mod, ir.FunctionType(ty, [a.type for a in args]), fname)
    return b.call(fn, args)


def exp_f32(b: ir.IRBuilder, x):
    ty = x.type
    hi, lo = 88.72283172607421875, -87.33654022216796875
    xc = _select_cmp(b, ">", x, _c(ty, hi), _c(ty, hi), x)
    xc = _select_cmp(b, "<", xc, _c(ty, lo), _c(ty, lo), xc)
    fx = intrinsic(b, "floor", [b.fadd(b.fmul(xc, _c(ty, 1.44269504088896341)), _c(ty, 0.5))])
    r = b.fsub(xc, b.fmul(fx, _c(ty, 0.693359375)))
    r = b.fsub(r, b.fmul(fx, _c(ty, -2.12194440e-4)))
    z = b.fmul(r, r)
    y = _poly(b, r, [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
                     5.0000001201e-1])
    y = b.fadd(b.fadd(b.fmul(y, z, flags=_FLAGS), r, flags=_FLAGS), _c(ty, 1.0))
    ity = _int_type_like(ty)
    n = b.fptosi(fx, ity)
    pow2 = b.bitcast(b.shl(b.add(n, _c(ity, 127)), _c(ity, 23)), ty)
    out = b.fmul(y, pow2)
    out = _select_cmp(b, ">", x, _c(ty, hi), _c(ty, float("inf")), out)
    out = _select_cmp(b, "<", x, _c(ty, lo), _c(ty, 0.0), out)
    return b.select(b.fcmp_unordered("uno", x, x), x, out)


def tanh_f32(b: ir.IRBuilder, x):
    ty = x.type
    clamp = 7.90531110763549805
    xc = _select_cmp(b, ">", x, _c(ty, clamp), _c(ty, clamp), x)
    xc = _select_cmp(b, "<", xc, _c(ty, -clamp), _c(ty, -clamp), xc)
    x2 = b.fmul(xc, xc)
    p = _poly(b, x2, [-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
                      1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03])
    p = b.fmul(p, xc)
    q = _poly(b, x2, [1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03])
    out = b.fdiv(p, q)
    return b.select(b.fcmp_unordered("uno", x, x), x, out)


def sigmoid_f32(b: ir.IRBuilder, x):
    ty = x.type
    e = exp_f32(b, b.fsub(_c(ty, 0.0), x))
    return b.fdiv(_c(ty, 1.0), b.fadd(_c(ty, 1.0), e))


def erf_f32(b: ir.IRBuilder, x):
    ty = x.type
    xc = _select_cmp(b, ">", x, _c(ty, 4.0), _c(ty, 4.0), x)
    xc = _select_cmp(b, "<", xc, _c(ty, -4.0), _c(ty, -4.0), xc)
    x2 = b.fmul(xc, xc)
    p = _poly(b, x2, [-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
                      -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02])
    p = b.fmul(p, xc)
    q = _poly(b, x2, [-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
                      -1.42647390514189e-02])
    out = b.fdiv(p, q)
    return b.select(b.fcmp_unordered("uno", x, x), x, out)


def _abs(b: ir.IRBuilder, x):
    return intrinsic(b, "fabs", [x])


def _copysign(b: ir.IRBuilder, magnitude, sign):
    return intrinsic(b, "copysign", [magnitude, sign])


def _xor_sign(b: ir.IRBuilder, value, x):
    """`value` negated where x's sign bit is set (an odd function's result from |x|'s; -0.0 gives -value)."""
    ity = _int_type_like(x.type)
    sign = b.and_(b.bitcast(x, ity), _c(ity, -(1 << 31)))
    return b.bitcast(b.xor(b.bitcast(value, ity), sign), x.type)


def atan_f32(b: ir.IRBuilder, x):
    """Cephes' atanf: |x| reduced to [0, tan(pi / 8)] (by -1 / |x| above tan(3pi / 8), (|x| - 1) / (|x| + 1) above
    tan(pi / 8)), a degree-4 polynomial in z^2, the sign copied back (-0.0 kept, NaN propagates)."""
    ty = x.type
    a = _abs(b, x)
    big = b.fcmp_ordered(">", a, _c(ty, 2.414213562373095))
    mid = b.fcmp_ordered(">", a, _c(ty, 0.4142135623730950))
    r = b.select(big, b.fdiv(_c(ty, -1.0), a), b.select(mid, b.fdiv(b.fsub(a, _c(ty, 1.0)), b.fadd(a, _c(ty, 1.0))), a))
    y0 = b.select(big, _c(ty, 1.5707963267948966), b.select(mid, _c(ty, 0.7853981633974483), _c(ty, 0.0)))
    z = b.fmul(r, r)
    p = _poly(b, z, [8.05374449538e-2, -1.38776856032e-1, 1.99777106478e-1, -3.33329491539e-1])
    y = b.fadd(b.fmul(b.fmul(p, z), r), r)
    return _copysign(b, b.fadd(y0, y), x)


def _exp_pair(b: ir.IRBuilder, a):
    """(e^a / 2, e^-a / 2) for a >= 0; e^a / 2 as (e^(a/2) / 2) * e^(a/2) where e^a alone would overflow."""
    ty = a.type
    e = exp_f32(b, a)
    h = exp_f32(b, b.fmul(a, _c(ty, 0.5)))
    half_e = b.select(b.fcmp_ordered(">", a, _c(ty, 88.0)), b.fmul(b.fmul(h, _c(ty, 0.5)), h), b.fmul(e, _c(ty, 0.5)))
    return half_e, b.fdiv(_c(ty, 0.5), e)


def cosh_f32(b: ir.IRBuilder, x):
    """(e^|x| + e^-|x|) / 2 with the exp above (finite up to |x| = 89.4, as float32's cosh)."""
    up, down = _exp_pair(b, _abs(b, x))
    return b.fadd(up, down)


def sinh_f32(b: ir.IRBuilder, x):
    """Cephes' sinhf: a degree-3 polynomial in x^2 for |x| <= 1 (no cancellation), (e^|x| - e^-|x|) / 2 with the
    sign copied back above."""
    ty = x.type
    a = _abs(b, x)
    up, down = _exp_pair(b, a)
    far = _copysign(b, b.fsub(up, down), x)
    z = b.fmul(x, x)
    near = b.fadd(b.fmul(b.fmul(_poly(b, z, [2.03721912945e-4, 8.33028376239e-3, 1.66667160211e-1]), z), x), x)
    return b.select(b.fcmp_ordered(">", a, _c(ty, 1.0)), far, near)


TAN_REDUCE_MAX = float(1 << 21)  # below it j * PIO4_HI is exact in float64 (j < 2**22, PIO4_HI of 30 bits)
PIO4_HI, PIO4_LO = 0.7853981629014015, 4.960467898402702e-10  # pi / 4 = PIO4_HI + PIO4_LO (to ~1e-26)


def _mod_whole(b: ir.IRBuilder, j, m: float):
    """j mod m for whole j >= 0 (floor, not frem: a vector frem is a libm fmod call per lane)."""
    return b.fsub(j, b.fmul(intrinsic(b, "floor", [b.fmul(j, _c(j.type, 1.0 / m))]), _c(j.type, m)))


def tan_f32(b: ir.IRBuilder, x):
    """Cephes' tanf with the reduction in float64 (Cody-Waite: exact near tan's poles too): |x| reduced by
    j * pi / 4 (j even), a degree-5 polynomial on [-pi/4, pi/4], -1 / y where j / 2 is odd, x's sign applied.
    Lanes with finite |x| > 2**21 (rare: a vector holding one takes a branch) get libm's tanf."""
    ty = x.type
    dty = _like(ty, ir.DoubleType())
    a = _abs(b, x)
    ad = b.fpext(a, dty)
    j = intrinsic(b, "floor", [b.fmul(ad, _c(dty, 1.2732395447351628))])
    j = b.fadd(j, _mod_whole(b, j, 2.0))  # odd j -> j + 1
    z = b.fptrunc(b.fsub(b.fsub(ad, b.fmul(j, _c(dty, PIO4_HI))), b.fmul(j, _c(dty, PIO4_LO))), ty)
    zz = b.fmul(z, z)
    p = _poly(b, zz, [9.38540185543e-3, 3.11992232697e-3, 2.44301354525e-2, 5.34112807005e-2, 1.33387994085e-1,
                      3.33331568548e-1])
    y = b.fadd(b.fmul(b.fmul(p, zz), z), z)
    flip = b.fcmp_ordered("!=", _mod_whole(b, j, 4.0), _c(dty, 0.0))  # j = 2 mod 4
    fast = _xor_sign(b, b.select(flip, b.fdiv(_c(ty, -1.0), y), y), x)
    far = b.and_(b.fcmp_ordered(">", a, _c(ty, TAN_REDUCE_MAX)), b.fcmp_ordered("<", a, _c(ty, float("inf"))))
    if isinstance(ty, ir.VectorType):
        any_far = b.icmp_unsigned("!=", b.bitcast(far, ir.IntType(ty.count)), ir.Constant(ir.IntType(ty.count), 0))
    else:
        any_far = far
    before = b.block
    with b.if_then(any_far, likely=False):
        mixed = b.select(far, _libm_scalar(b, "tan", [x]), fast)
        slow_block = b.block
    out = b.phi(ty)
    out.add_incoming(fast, before)
    out.add_incoming(mixed, slow_block)
    return out


def _libm_scalar(b: ir.IRBuilder, name: str, args):
    """Call a libm function lane by lane (for float64 functions LLVM has no intrinsic for)."""
    ty = args[0].type
    elem = ty.element if isinstance(ty, ir.VectorType) else ty
    mod = b.module
    fname = name if elem != F32 else name + "f"
    fn = mod.globals.get(fname)
    if fn is None:
        fn = ir.Function(mod, ir.FunctionType(elem, [elem] * len(args)), fname)
    if not isinstance(ty, ir.VectorType):
        return b.call(fn, args)
    out = ir.Constant(ty, ir.Undefined)
    for lane in range(ty.count):
        idx = ir.Constant(I32, lane)
        out = b.insert_element(out, b.call(fn, [b.extract_element(a, idx) for a in args]), idx)
    return out


def emit_math(b: ir.IRBuilder, func: str, args):
    """The value of ``func(*args)`` for float operands of any lane count."""
    ty = args[0].type
    elem = ty.element if isinstance(ty, ir.VectorType) else ty
    if isinstance(elem, ir.IntType):  # only abs takes integers
        x = args[0]
        return b.select(b.icmp_signed("<", x, _c(ty, 0)), b.sub(_c(ty, 0), x), x)
    if elem == F32:
        fast = {"exp": exp_f32, "tanh": tanh_f32, "sigmoid": sigmoid_f32, "erf": erf_f32, "atan": atan_f32,
                "tan": tan_f32, "sinh": sinh_f32, "cosh": cosh_f32}.get(func)
        if fast is not None:
            return fast(b, args[0])
    if func == "sigmoid":
        e = intrinsic(b, "exp", [b.fsub(_c(ty, 0.0), args[0])])
        return b.fdiv(_c(ty, 1.0), b.fadd(_c(ty, 1.0), e))
    if func in ("tanh", "erf", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh"):
        return _libm_scalar(b, func, args)
    if func == "round":
        return intrinsic(b, "roundeven", list(args))
    if func == "fmod":
        return b.frem(args[0], args[1])
    name = {"abs": "fabs"}.get(func, func)
    return intrinsic(b, name, list(args))


def emit_bits(b: ir.IRBuilder, func: str, args, bits: int, signed: bool):
    """An integer bit operation (te's BIT_FUNCS) on register values of a ``bits``-wide dtype, before wrapping to it.
    A shift amount outside ``0..bits-1`` (read unsigned, so a negative one too) gives numpy's results: 0, or -1 for
    a negative value shifted right."""
    x = args[0]
    ty = x.type
    if func == "bitwise_not":
        return b.xor(x, _c(ty, -1))
    y = args[1]
    if func in ("bitwise_and", "bitwise_or", "bitwise_xor"):
        return {"bitwise_and": b.and_, "bitwise_or": b.or_, "bitwise_xor": b.xor}[func](x, y)
    width = ty.element.width if isinstance(ty, ir.VectorType) else ty.width
    low_bits = b.and_(y, _c(ty, (1 << bits) - 1)) if bits < width else y  # the amount as the unsigned dtype reads it
    out_of_range = b.icmp_unsigned(">=", low_bits, _c(ty, bits))
    safe = b.select(out_of_range, _c(ty, 0), y)
    if func == "shift_left":
        return b.select(out_of_range, _c(ty, 0), b.shl(x, safe))
    if signed:
        return b.ashr(x, b.select(out_of_range, _c(ty, width - 1), safe))
    return b.select(out_of_range, _c(ty, 0), b.lshr(x, safe))
