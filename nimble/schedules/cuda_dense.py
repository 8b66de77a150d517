"""dense on CUDA: out = epilogue(x(n, k) @ w(m, k)^T + bias), the same signature as the CPU template.

Block tile (threads_y * rows) x (threads_x * cols) of the output, one block per tile
(blockIdx.y over rows, blockIdx.x over columns); each thread accumulates a rows x cols register
tile (the reduction stage ``acc``, "local", computed at the thread loop) over k in steps of
``k_tile``. With ``shared="yes"`` each k step first stages the block's x tile (block rows x
k_tile) and w tile (block columns x k_tile) in shared memory, loaded by all the block's threads
together (consecutive threads read consecutive k: coalesced), between two ``__syncthreads()``.
``w_layout="km"`` stores the w tile k-major, so that the threads of a warp, which own
consecutive column groups, read it with a stride of ``cols`` words (at most 2-way bank
conflicts) rather than ``cols * k_tile`` (up to 16-way) as with "mk".
The weight is read as given (m, k) for both ``weight="input"`` and ``"const"``.

Knobs: threads_x (8, 16, 32), threads_y (4, 8, 16), rows and cols per thread (1, 2, 4),
k_tile (4, 8, 16), shared ("yes", "no"), w_layout ("km", "mk").

Fallback (documented heuristic): 16 x 16 threads with a 4 x 4 register tile (64 x 64 block
tile, 16 outputs per thread to reuse each shared load 4 times), k_tile 8 (2 x 64 x 8 floats =
4 KiB of shared memory per step), the w tile k-major; for a representative n <= 16 (a decode
step, a small batch) rows 1 and threads_y 4 so the block tile is not mostly past the last row.
"""
from __future__ import annotations

from .. import te
from .cuda_template import CudaTemplate
from .dense import Dense, _dims, apply_epilogue
from .base import Instance, TemplateError
from .space import ConfigSpace


class CudaDense(CudaTemplate):
    reference = Dense.reference
    flops = Dense.flops

    def num_inputs(self, sig):
        return len(sig.args)

    def space(self, sig):
        _dims(sig)
        s = ConfigSpace("dense.cuda")
        s.define_knob("threads_x", (8, 16, 32))
        s.define_knob("threads_y", (4, 8, 16))
        s.define_knob("rows", (1, 2, 4))
        s.define_knob("cols", (1, 2, 4))
        s.define_knob("k_tile", (4, 8, 16))
        s.define_knob("shared", ("yes", "no"))
        s.define_knob("w_layout", ("km", "mk"))
        return s

    def fallback(self, sig, space, hints=None):
        n, _, _ = _dims(sig)
        n_hint = (hints or {}).get(n, 64) if isinstance(n, str) else n
        small = n_hint <= 16
        return space.config(threads_x=16, threads_y=4 if small else 16, rows=1 if small else 4, cols=4,
                            k_tile=8, shared="yes", w_layout="km")

    def instantiate(self, sig, cfg) -> Instance:
        _, k, m = _dims(sig)
        bias = bool(sig.attr("bias", False))
        epilogue = tuple(sig.attr("epilogue", ()))
        names = ["x", "w"] + (["bias"] if bias else []) + [f"residual{i}" for i, e in enumerate(epilogue) if e == "residual"]
        if len(names) != len(sig.args):
            raise TemplateError(f"dense: attrs ask for inputs {names}, signature has {len(sig.args)}")
        tensors, dims = sig.placeholders(names)
        x, w, extra = tensors[0], tensors[1], list(tensors[2:])
        n = x.shape[0]
        r = te.reduce_axis((0, k), "r")
        acc = te.compute((n, m), lambda i, j: te.sum(x[i, r] * w[j, r], axis=r), name="acc")

        def finish(i, j):
            v, pos = acc[i, j], 0
            if bias:
                v, pos = v + extra[0][j], 1
            for e in epilogue:
                if e == "residual":
                    v = apply_epilogue(e, v, extra[pos][i, j])
                    pos += 1
                else:
                    v = apply_epilogue(e, v)
            return v

        out = te.compute((n, m), finish, name="out")
        s = te.create_schedule(out)
        tx, ty, tm, tn, bk = cfg["threads_x"], cfg["threads_y"], cfg["rows"], cfg["cols"], cfg["k_tile"]
        staged = []
        if cfg["shared"] == "yes":
            w_layout = (1, 0) if cfg["w_layout"] == "km" else None
            staged = [s.cache_read(x, "shared", [acc]), s.cache_read(w, "shared", [acc], layout=w_layout)]
        so = s[out]
        i, j = so.axis
        bi, ii = so.split(i, ty * tm)
        ty_loop, ti = so.split(ii, tm)
        bj, jj = so.split(j, tx * tn)
        tx_loop, tj = so.split(jj, tn)
        so.reorder(bi, bj, ty_loop, tx_loop, ti, tj)
        so.bind(bi, "blockIdx.y")
        so.bind(bj, "blockIdx.x")
        so.bind(ty_loop, "threadIdx.y")
        so.bind(tx_loop, "threadIdx.x")
        sa = s[acc]
        sa.scope = "local"
        sa.compute_at(so, tx_loop)
        ai, aj = sa.axis
        ro, ri = sa.split(sa.reduce_axis[0], bk)
        sa.reorder(ro, ri, ai, aj)
        for loop in (ri, ai, aj):  # constant trip counts: unrolled, the accumulators stay in registers
            sa.unroll(loop)
        so.unroll(ti)
        so.unroll(tj)
        k_pos = (1, 0 if cfg["w_layout"] == "km" else 1)  # where k is among each copy's axes
        for t, reads_k in zip(staged, k_pos):
            st = s[t]  # the block loads the tile together, k fastest across threadIdx.x (coalesced)
            st.compute_at(sa, ro)
            k_ax = st.axis[reads_k]
            other = st.axis[1 - reads_k]
            st.reorder(other, k_ax)
            flat = st.fuse(other, k_ax)
            rest, fx = st.split(flat, tx)
            _, fy = st.split(rest, ty)
            st.bind(fy, "threadIdx.y")
            st.bind(fx, "threadIdx.x")
        return Instance(s, list(tensors) + [out], dims)
