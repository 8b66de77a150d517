"""Every operator's numpy reference against an independent oracle written with scalars and loops."""
import itertools
import math
import operator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_cases import CASES

from nimble.ops import get_op, list_ops

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def elementwise(fn, *arrays, dtype=None):
    arrays = np.broadcast_arrays(*arrays)
    shape = arrays[0].shape
    flat = [fn(*(a.item() if hasattr(a, "item") else a for a in vals)) for vals in zip(*(a.ravel() for a in arrays))]
    return np.array(flat, dtype=dtype or arrays[-1].dtype).reshape(shape)


def _sigmoid(v):
    return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))


UNARY = {
    "relu": lambda v: max(v, 0.0), "negative": lambda v: -v, "abs": abs, "tanh": math.tanh, "sigmoid": _sigmoid,
    "exp": math.exp, "log": lambda v: math.log(v) if v > 0 else (-math.inf if v == 0 else math.nan),
    "sqrt": math.sqrt, "erf": math.erf, "gelu": lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))),
    **{name: getattr(math, name) for name in ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh",
                                              "acosh", "atanh")},
    "round": round,  # Python's round: halfway cases to the even integer
    "floor": math.floor, "ceil": math.ceil,
}


def _wrap(v: int, dtype) -> int:
    """`v` wrapped to `dtype`'s range (two's complement)."""
    info = np.iinfo(dtype)
    return (v - int(info.min)) % (1 << info.bits) + int(info.min)


def _shift_oracle(left: bool):
    def oracle(a, b):
        bits = np.iinfo(a.dtype).bits
        return elementwise(lambda x, s: (_wrap(x << s, a.dtype) if left else x >> s) if 0 <= s < bits else
                           (0 if left or x >= 0 else -1), a, b, dtype=a.dtype)

    return oracle
def _mod(a, b):
    """Python's % (the divisor's sign); an integer divisor 0 gives 0."""
    if b == 0:
        return 0 if isinstance(a, int) else math.nan
    return a % b


def _fmod(a, b):
    """C's fmod (the dividend's sign); an integer divisor 0 gives 0."""
    if isinstance(a, int):
        return 0 if b == 0 else (abs(a) % abs(b)) * (1 if a >= 0 else -1)
    return math.nan if b == 0 or math.isinf(a) else math.fmod(a, b)


BINARY = {
    "mod": _mod, "fmod": _fmod, "add": operator.add, "subtract": operator.sub, "multiply": operator.mul, "divide": operator.truediv,
    "power": operator.pow, "maximum": max, "minimum": min, "equal": operator.eq, "not_equal": operator.ne,
    "less": operator.lt, "less_equal": operator.le, "greater": operator.gt, "greater_equal": operator.ge,
    "logical_and": lambda a, b: bool(a and b), "logical_or": lambda a, b: bool(a or b),
}
BOOL_RESULT = {"equal", "not_equal", "less", "less_equal", "greater", "greater_equal", "logical_and", "logical_or"}


def _cumulative_oracle(x, combine, identity, axis, exclusive, reverse):
    """A running total along `axis` by loops over every line of it."""
    out = np.empty_like(x)
    axis %= x.ndim
    others = [range(d) for a, d in enumerate(x.shape) if a != axis]
    order = list(range(x.shape[axis]))[::-1] if reverse else list(range(x.shape[axis]))
    for rest in itertools.product(*others):
        total = identity
        for i in order:
            at = tuple(rest[:axis]) + (i,) + tuple(rest[axis:])
            if exclusive:
                out[at], total = total, combine(total, x[at].item())
            else:
                total = combine(total, x[at].item())
                out[at] = total
    return out


def _reduce_oracle(fn):
    def oracle(x, axis, keepdims):
        axes = tuple(range(x.ndim)) if axis is None else tuple(a % x.ndim for a in np.atleast_1d(axis))
        kept = [a for a in range(x.ndim) if a not in axes]
        out_shape = [x.shape[a] for a in kept]
        out = np.empty(out_shape, dtype=np.float64 if fn is _mean else x.dtype)
        for idx in itertools.product(*(range(x.shape[a]) for a in kept)):
            values = []
            for ridx in itertools.product(*(range(x.shape[a]) for a in axes)):
                full = [0] * x.ndim
                for a, i in zip(kept, idx):
                    full[a] = i
                for a, i in zip(axes, ridx):
                    full[a] = i
                values.append(x[tuple(full)].item())
            out[idx] = fn(values)
        if keepdims:
            out = out.reshape([1 if a in axes else x.shape[a] for a in range(x.ndim)])
        return out

    return oracle


def _mean(values):
    return math.fsum(values) / len(values)


def _argmax_oracle(x, axis, keepdims):
    if axis is None:
        flat = x.ravel().tolist()
        out = np.array(flat.index(max(flat)), dtype=np.int64)
        return out.reshape([1] * x.ndim) if keepdims else out
    moved = np.moveaxis(x, axis, -1)
    out = np.empty(moved.shape[:-1], dtype=np.int64)
    for idx in np.ndindex(*moved.shape[:-1]):
        row = moved[idx].tolist()
        out[idx] = row.index(max(row))
    return np.expand_dims(out, axis) if keepdims else out


def _softmax_oracle(x, axis, log=False):
    out = np.empty(x.shape, dtype=np.float64)
    moved_in, moved_out = np.moveaxis(x, axis, -1), np.moveaxis(out, axis, -1)
    for idx in np.ndindex(*moved_in.shape[:-1]):
        row = moved_in[idx].tolist()
        m = max(row) if row else 0.0
        total = math.fsum(math.exp(v - m) for v in row)
        moved_out[idx] = [(v - m - math.log(total)) if log else math.exp(v - m) / total for v in row]
    return out


def _layer_norm_oracle(x, gamma, beta, axis, epsilon):
    out = np.empty(x.shape, dtype=np.float64)
    moved_in, moved_out = np.moveaxis(x, axis, -1), np.moveaxis(out, axis, -1)
    for idx in np.ndindex(*moved_in.shape[:-1]):
        row = moved_in[idx].tolist()
        if not row:
            continue
        mean = math.fsum(row) / len(row)
        var = math.fsum((v - mean) ** 2 for v in row) / len(row)
        moved_out[idx] = [(v - mean) / math.sqrt(var + epsilon) * g + b for v, g, b in zip(row, gamma, beta)]
    return out


def _batch_norm_oracle(x, gamma, beta, mean, var, axis, epsilon):
    out = np.empty(x.shape, dtype=np.float64)
    for idx in np.ndindex(*x.shape):
        c = idx[axis]
        out[idx] = (x[idx] - mean[c]) / math.sqrt(var[c] + epsilon) * gamma[c] + beta[c]
    return out


def _conv2d_oracle(data, weight, strides, padding, dilation, groups):
    n, c, h, w = data.shape
    o, i_per_g, kh, kw = weight.shape
    pt, pl, pb, pr = padding if len(padding) == 4 else padding * 2
    (sh, sw), (dh, dw) = strides, dilation
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, oh, ow))
    o_per_g = o // groups
    for b, oc, y, x in itertools.product(range(n), range(o), range(oh), range(ow)):
        g = oc // o_per_g
        acc = 0.0
        for ic, ky, kx in itertools.product(range(i_per_g), range(kh), range(kw)):
            iy, ix = y * sh + ky * dh - pt, x * sw + kx * dw - pl
            if 0 <= iy < h and 0 <= ix < w:
                acc += data[b, g * i_per_g + ic, iy, ix] * weight[oc, ic, ky, kx]
        out[b, oc, y, x] = acc
    return out


def _image_patches_oracle(data, pad_value, kernel, strides, padding, dilation, channels):
    n, h, w, c = data.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilation
    pt, pl, pb, pr = padding if len(padding) == 4 else padding * 2
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    out = np.full((n, oh, ow, kh, kw, channels), pad_value, data.dtype)
    for b, y, x, ic, ky, kx in itertools.product(range(n), range(oh), range(ow), range(c), range(kh), range(kw)):
        iy, ix = y * sh + ky * dh - pt, x * sw + kx * dw - pl
        if 0 <= iy < h and 0 <= ix < w:
            out[b, y, x, ky, kx, ic] = data[b, iy, ix, ic]
    return out


def _pool_oracle(data, pool_size, strides, padding, count_include_pad=None):
    n, c, h, w = data.shape
    (kh, kw), (sh, sw) = pool_size, strides
    pt, pl, pb, pr = padding if len(padding) == 4 else padding * 2
    oh, ow = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
    out = np.zeros((n, c, oh, ow))
    for b, ch, y, x in itertools.product(range(n), range(c), range(oh), range(ow)):
        inside = [
            data[b, ch, y * sh + ky - pt, x * sw + kx - pl]
            for ky, kx in itertools.product(range(kh), range(kw))
            if 0 <= y * sh + ky - pt < h and 0 <= x * sw + kx - pl < w
        ]
        if count_include_pad is None:
            out[b, ch, y, x] = max(inside + ([-math.inf] if len(inside) < kh * kw else []))
        else:
            divisor = kh * kw if count_include_pad else len(inside)
            out[b, ch, y, x] = math.fsum(inside) / divisor if divisor else math.nan
    return out


def _strided_slice_oracle(x, begin, end, strides, axes):
    shape = [len(range(*slice(b, e, s).indices(d))) for d, b, e, s in zip(x.shape, begin, end, strides)]

    def go(value, depth):
        if depth == len(begin):
            return [value]
        return [item for v in value[begin[depth]:end[depth]:strides[depth]] for item in go(v, depth + 1)]

    return np.array(go(x.tolist(), 0), dtype=x.dtype).reshape(shape)


def _concatenate_oracle(data, axis):
    axis %= data[0].ndim
    rows = [row for part in data for row in np.moveaxis(part, axis, 0)]
    shape = list(data[0].shape)
    shape[axis] = len(rows)
    out = np.empty([shape[axis]] + shape[:axis] + shape[axis + 1:], dtype=data[0].dtype)
    for i, row in enumerate(rows):
        out[i] = row
    return np.moveaxis(out, 0, axis)


def _take_oracle(data, indices, axis, mode):
    axis = None if axis is None else axis % data.ndim
    src = data.ravel() if axis is None else np.moveaxis(data, axis, 0)
    n = src.shape[0]
    picked = [src[min(max(i, 0), n - 1) if mode == "clip" else i % n] for i in indices.ravel().tolist()]
    out = np.array(picked, dtype=data.dtype).reshape(indices.shape + src.shape[1:])
    return out if axis is None else np.moveaxis(out, list(range(indices.ndim)), list(range(axis, axis + indices.ndim)))


def _transpose_oracle(x, axes):
    axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(a % x.ndim for a in axes)
    out = np.empty([x.shape[a] for a in axes], dtype=x.dtype)
    for idx in np.ndindex(*out.shape):
        src = [0] * x.ndim
        for pos, a in enumerate(axes):
            src[a] = idx[pos]
        out[idx] = x[tuple(src)]
    return out


def _nonzero_oracle(x):
    hits = [idx for idx in np.ndindex(*x.shape) if x[idx] != 0]
    return np.array(hits, dtype=np.int64).reshape(-1, x.ndim).T


def _split_oracle(x, indices_or_sections, axis):
    dim = x.shape[axis]
    if isinstance(indices_or_sections, int):
        step = dim // indices_or_sections
        cuts = [step * k for k in range(1, indices_or_sections)]
    else:
        cuts = list(indices_or_sections)
    edges = [0] + cuts + [dim]
    moved = np.moveaxis(x, axis, 0)
    return tuple(np.moveaxis(moved[b:e], 0, axis) for b, e in zip(edges[:-1], edges[1:]))


def _attention_oracle(q, k, v, mask, heads, head_size, scale, causal, q_col, k_col, v_col):
    """Row by row in float64: each head's scores, its softmax (masked; causal keeps keys j <= i), the context.
    A 3-D mask (b, ., .): b sequences of rows, each with its own keys and mask[i]."""
    if mask.ndim == 3:
        b = mask.shape[0]
        s, sk = q.shape[0] // b, k.shape[0] // b
        parts = [_attention_oracle(q[i * s:(i + 1) * s], k[i * sk:(i + 1) * sk], v[i * sk:(i + 1) * sk], mask[i], heads,
                                   head_size, scale, causal, q_col, k_col, v_col) for i in range(b)]
        return np.concatenate(parts)
    n, nk = q.shape[0], k.shape[0]
    out = np.zeros((n, heads * head_size))
    m = np.broadcast_to(mask.astype(np.float64), (n, nk))
    for h in range(heads):
        qh, kh, vh = (t[:, c + h * head_size: c + (h + 1) * head_size].astype(np.float64)
                      for t, c in ((q, q_col), (k, k_col), (v, v_col)))
        for i in range(n):
            keys = [j for j in range(nk) if not causal or j <= i]
            if not keys:
                continue
            s = np.array([scale * float(qh[i] @ kh[j]) + m[i, j] for j in keys])
            p = np.exp(s - s.max())
            out[i, h * head_size:(h + 1) * head_size] = (p / p.sum()) @ vh[keys]
    return out


def _gelu_tanh_oracle(x):
    return elementwise(lambda v: 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3))),
                       x.astype(np.float64))


def _pool_nd_oracle(kind):
    """Loops over every output position and window position (ONNX's MaxPool / AveragePool semantics)."""

    def oracle(data, pool_size, strides, dilation, padding, ceil_mode, auto_pad, count_include_pad=False,
               storage_order=0):
        n = data.ndim - 2
        sizes = data.shape[2:]
        if auto_pad:  # pads for ceil(size / stride) windows, the odd one after for SAME_UPPER
            totals = [max(0, (math.ceil(d / s) - 1) * s + dl * (k - 1) + 1 - d)
                      for d, k, s, dl in zip(sizes, pool_size, strides, dilation)]
            small = [t // 2 for t in totals]
            big = [t - t // 2 for t in totals]
            padding = small + big if auto_pad == "SAME_UPPER" else big + small
        before, after = padding[:n], padding[n:]
        outs = []
        for d, k, s, dl, b, a in zip(sizes, pool_size, strides, dilation, before, after):
            room = d + b + a - (dl * (k - 1) + 1)
            o = (math.ceil(room / s) if ceil_mode else room // s) + 1
            if ceil_mode and (o - 1) * s >= d + b:
                o -= 1
            outs.append(o)
        out = np.zeros(data.shape[:2] + tuple(outs), np.int64 if kind == "indices" else np.float64)
        for idx in itertools.product(*[range(m) for m in out.shape]):
            best, where, total, count = None, 0, 0.0, 0
            for offs in itertools.product(*[range(k) for k in pool_size]):
                pos = [o * s + r * dl - b for o, s, r, dl, b in zip(idx[2:], strides, offs, dilation, before)]
                inside = all(0 <= p < d for p, d in zip(pos, sizes))
                in_pad = all(-b <= p < d + a for p, d, b, a in zip(pos, sizes, before, after))
                if inside:
                    v = data[idx[:2] + tuple(pos)]
                    total += float(v)
                    if best is None or v > best:
                        best = v
                        order = reversed(range(n)) if storage_order else range(n)
                        where = 0
                        for i in order:
                            where = where * sizes[i] + pos[i]
                count += 1 if (in_pad if count_include_pad else inside) else 0
            if kind == "max":
                out[idx] = -math.inf if best is None else best
            elif kind == "avg":
                out[idx] = total / count if count else math.nan
            else:
                out[idx] = (idx[0] * data.shape[1] + idx[1]) * math.prod(sizes) + where
        return out

    return oracle


def _quantize_oracle(x, scale, zero_point, dtype):
    """Python's round() is half to even; the quotient in float32 as numpy computes it."""
    info = np.iinfo(dtype)

    def one(v, s, z):
        q = float(np.float32(v) / np.float32(s))
        return min(max(round(q) + int(z), int(info.min)), int(info.max))

    return elementwise(one, x, scale, zero_point, dtype=dtype)


def _topk_oracle(which):
    def oracle(data, k, axis, largest, **_):
        moved = np.moveaxis(data, axis, -1)
        count = int(k.reshape(-1)[0])
        out = np.zeros(moved.shape[:-1] + (count,), np.int64 if which == "indices" else data.dtype)
        for idx in itertools.product(*[range(d) for d in moved.shape[:-1]]):
            line = [v.item() for v in moved[idx]]
            def key(i):  # NaN above every number (ONNX Runtime's order), then the lower index
                nan = line[i] != line[i]
                value = 0.0 if nan else line[i]
                return (not nan, -value, i) if largest else (nan, value, i)

            order = sorted(range(len(line)), key=key)[:count]
            out[idx] = order if which == "indices" else [line[i] for i in order]
        return np.moveaxis(out, -1, axis)

    if which == "both":
        return lambda *args, **kw: (_topk_oracle("values")(*args, **kw), _topk_oracle("indices")(*args, **kw))
    return oracle


def _lstm_cell_oracle(gates_x, t, state, weight, gate_order):
    """Unit by unit with scalars: each gate's pre-activation (its projection column plus a dot product), then
    c = f c + i g and h = o tanh(c)."""
    _, batch, hidden = state.shape
    out = np.zeros((2, batch, hidden))
    for b in range(batch):
        for u in range(hidden):
            pre = []
            for k in range(4):
                col = gate_order[k] * hidden + u
                dot = math.fsum(float(state[0, b, r]) * float(weight[col, r]) for r in range(hidden))
                pre.append(float(gates_x[int(t) * batch + b, col]) + dot)
            c = _sigmoid(pre[1]) * float(state[1, b, u]) + _sigmoid(pre[0]) * math.tanh(pre[2])
            out[0, b, u], out[1, b, u] = _sigmoid(pre[3]) * math.tanh(c), c
    return out


def _gru_cell_oracle(gates_x, t, state, weight, bias_n, gate_order, linear_before_reset):
    """Unit by unit with scalars: z and r from their projection column plus a dot product, the candidate from its
    column plus r times (its dot product plus bias_n) (linear_before_reset=1) or plus the dot product of r * h
    (every unit's reset gate first) and bias_n (0), then h = (1 - z) n + z h."""
    _, batch, hidden = state.shape
    out = np.zeros((1, batch, hidden))
    for b in range(batch):
        row = int(t) * batch + b

        def gate(k, u):
            c = gate_order[k] * hidden + u
            return float(gates_x[row, c]), math.fsum(float(state[0, b, r]) * float(weight[c, r]) for r in range(hidden))

        resets = [_sigmoid(sum(gate(1, u))) for u in range(hidden)]
        for u in range(hidden):
            z = _sigmoid(sum(gate(0, u)))
            x_n, dot_n = gate(2, u)
            if linear_before_reset:
                n = math.tanh(x_n + resets[u] * (dot_n + float(bias_n[u])))
            else:
                c = gate_order[2] * hidden + u
                reset_dot = math.fsum(resets[r] * float(state[0, b, r]) * float(weight[c, r]) for r in range(hidden))
                n = math.tanh(x_n + reset_dot + float(bias_n[u]))
            out[0, b, u] = (1 - z) * n + z * float(state[0, b, u])
    return out


ORACLES = {
    "cast": lambda x, dtype: elementwise(lambda v: int(v) if dtype.startswith("int") else v, x, dtype=dtype),
    "where": lambda c, x, y: elementwise(lambda a, b, d: b if a else d, c, x, y),
    "dense": lambda x, w: np.einsum("...k,mk->...m", x.astype(np.float64), w),
    "dense_integer": lambda x, w, z: np.einsum("...k,mk->...m", x.astype(np.int64) - int(z), w.astype(np.int64)).astype(
        np.int32),  # |products| < 2**16, k small: no int32 wrap in the cases
    "matmul": lambda a, b: np.einsum("...nk,...km->...nm", a.astype(np.float64), b),
    "batch_matmul": lambda x, y, transpose_b: np.einsum("bnk,bmk->bnm" if transpose_b else "bnk,bkm->bnm", x.astype(np.float64), y),
    "softmax": lambda x, axis: _softmax_oracle(x, axis),
    "cumsum": lambda x, **attrs: _cumulative_oracle(x, operator.add, 0, **attrs),
    "cumprod": lambda x, **attrs: _cumulative_oracle(x, operator.mul, 1, **attrs),
    "log_softmax": lambda x, axis: _softmax_oracle(x, axis, log=True),
    "layer_norm": _layer_norm_oracle,
    "batch_norm": _batch_norm_oracle,
    "sum": _reduce_oracle(math.fsum), "mean": _reduce_oracle(_mean), "max": _reduce_oracle(max),
    "min": _reduce_oracle(min), "argmax": _argmax_oracle, "prod": _reduce_oracle(math.prod),
    "reshape": lambda x, newshape: np.array(x.ravel().tolist(), dtype=x.dtype).reshape(newshape),
    "dyn.reshape": lambda x, newshape: np.array(x.ravel().tolist(), dtype=x.dtype).reshape(newshape.tolist()),
    "reshape_like": lambda x, like: np.array(x.ravel().tolist(), dtype=x.dtype).reshape(like.shape),
    "dim_arange": lambda x, axis, dtype: np.array(list(range(x.shape[axis])), dtype=dtype),
    "transpose": _transpose_oracle,
    "expand_dims": lambda x, axis, num_newaxis: x.reshape(
        x.shape[: axis % (x.ndim + 1)] + (1,) * num_newaxis + x.shape[axis % (x.ndim + 1):]),
    "squeeze": lambda x, axis: x.reshape([d for i, d in enumerate(x.shape) if not (
        d == 1 and (axis is None or i in {a % x.ndim for a in axis}))]),
    "concatenate": _concatenate_oracle,
    "split": _split_oracle,
    "strided_slice": _strided_slice_oracle,
    "take": _take_oracle,
    "zeros": lambda shape, dtype: np.array([0] * int(np.prod(shape)), dtype=dtype).reshape(shape),
    "ones": lambda shape, dtype: np.array([1] * int(np.prod(shape)), dtype=dtype).reshape(shape),
    "dyn.zeros": lambda shape, dtype: np.array([0] * int(np.prod(shape)), dtype=dtype).reshape(shape.tolist()),
    "dyn.ones": lambda shape, dtype: np.array([1] * int(np.prod(shape)), dtype=dtype).reshape(shape.tolist()),
    "full": lambda v, shape: np.array([v.item()] * int(np.prod(shape)), dtype=v.dtype).reshape(shape),
    "dyn.full": lambda v, shape: np.array([v.item()] * int(np.prod(shape)), dtype=v.dtype).reshape(shape.tolist()),
    "arange": lambda start, stop, step, dtype: np.array(list(range(start.item(), stop.item(), step.item())), dtype=dtype),
    "nonzero": _nonzero_oracle,
    "shape_of": lambda x, dtype: np.array(list(x.shape), dtype=dtype),
    "conv2d": _conv2d_oracle,
    "image_patches": _image_patches_oracle,
    "max_pool2d": _pool_oracle,
    "avg_pool2d": _pool_oracle,
    "attention": _attention_oracle,
    "gelu_tanh": _gelu_tanh_oracle,
    "quantize_linear": _quantize_oracle,
    "topk": _topk_oracle("both"),
    "topk_values": _topk_oracle("values"),
    "topk_indices": _topk_oracle("indices"),
    "max_pool": _pool_nd_oracle("max"),
    "avg_pool": _pool_nd_oracle("avg"),
    "max_pool_indices": _pool_nd_oracle("indices"),
    "lstm_cell": _lstm_cell_oracle,
    "gru_cell": _gru_cell_oracle,
    "bitwise_and": lambda a, b: elementwise(operator.and_, a, b, dtype=a.dtype),
    "bitwise_or": lambda a, b: elementwise(operator.or_, a, b, dtype=a.dtype),
    "bitwise_xor": lambda a, b: elementwise(operator.xor, a, b, dtype=a.dtype),
    "bitwise_not": lambda x: elementwise(lambda v: _wrap(~v, x.dtype), x, dtype=x.dtype),
    "left_shift": _shift_oracle(True),
    "right_shift": _shift_oracle(False),
}
for _name, _fn in UNARY.items():
    ORACLES[_name] = lambda x, _fn=_fn: elementwise(lambda v: _fn(float(v)), x.astype(np.float64))
for _name, _fn in BINARY.items():
    ORACLES[_name] = lambda a, b, _fn=_fn, _name=_name: elementwise(
        _fn, a, b, dtype=bool if _name in BOOL_RESULT else a.dtype)


def test_every_operator_has_an_oracle():
    assert sorted(ORACLES) == list_ops()


def assert_matches(actual, expected):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    if actual.dtype.kind == "f":
        np.testing.assert_allclose(actual, expected.astype(np.float64), rtol=2e-5, atol=2e-5, equal_nan=True)
    else:
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("name", list_ops())
@SETTINGS
@given(data=st.data())
def test_reference_matches_the_oracle(name, data):
    opdef = get_op(name)
    case = data.draw(CASES[name])
    attrs = opdef.full_attrs(case.attrs)
    with np.errstate(all="ignore"):
        actual = opdef.evaluate(case.args, attrs)
        expected = ORACLES[name](*case.args, **attrs)
    if isinstance(actual, tuple):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_matches(a, e)
    else:
        assert_matches(actual, expected)


def test_integer_divide_truncates_toward_zero():
    out = get_op("divide").evaluate([np.array([7, -7, 7, -7]), np.array([2, 2, -2, -2])], {})
    np.testing.assert_array_equal(out, [3, -3, -3, 3])
