"""injective on CUDA: the CPU template's ops (elementwise chains with broadcasting, transpose,
reshape) over one flat loop of the output, a thread per element per step.

The output's axes are fused into one flat index, split into blocks of ``threads * per_thread``
elements (blockIdx.x); thread t of a block handles elements ``t, t + threads, ...`` of its
block (``per_thread`` of them, an unrolled loop), so each step of the block reads and writes
``threads`` consecutive floats (coalesced). The guard of the last block exists only when the
element count is not a multiple of the block's elements (symbolic or not).

Knobs: threads (64, 128, 256, 512), per_thread (1, 2, 4).

Fallback (documented heuristic): 256 threads (a multiple of the 32-lane warp, 8 warps to hide
latency, several blocks per SM); 4 elements per thread when the representative output has at
least 2^20 elements (fewer, longer-lived threads), else 1 (more blocks to fill 132 SMs).
"""
from __future__ import annotations

from .. import te
from .cuda_template import CudaTemplate
from .injective import Injective, _flat_index, _plan, _plan_shape, element_value, unflatten
from .base import Instance, Signature
from .softmax import element_count
from .space import ConfigSpace


class CudaInjective(CudaTemplate):
    reference = Injective.reference
    flops = Injective.flops

    def space(self, sig):
        _plan(sig)
        s = ConfigSpace("injective.cuda")
        s.define_knob("threads", (64, 128, 256, 512))
        s.define_knob("per_thread", (1, 2, 4))
        return s

    def fallback(self, sig, space, hints=None):
        _, out_shape = _plan(sig)
        size = element_count(out_shape, {k: v for k, v in (hints or {}).items()}) if _all_known(out_shape, hints) else 1 << 20
        return space.config(threads=256, per_thread=4 if size >= 1 << 20 else 1)

    def instantiate(self, sig, cfg) -> Instance:
        kind, _ = _plan(sig)
        names = [f"in{k}" for k in range(len(sig.args))]
        if kind == "reshape":  # the output's dims are named by an extra (shape-only) argument
            out_sig = Signature(tuple(sig.args) + ((tuple(sig.attr("newshape")), "float32"),), sig.attrs)
            tensors, dims = out_sig.placeholders(names + ["shape_of_out"])
            inputs, out_shape = tensors[:-1], tensors[-1].shape
        else:
            inputs, dims = sig.placeholders(names)
            out_shape = _plan_shape(inputs, kind, sig)
        x0 = inputs[0]

        def value(idx):
            if kind == "reshape":
                return x0[tuple(unflatten(_flat_index(idx, out_shape), x0.shape))]
            return element_value(sig, kind, inputs, idx)

        out = te.compute(out_shape, lambda *i: value(list(i)), name="out")
        s = te.create_schedule(out)
        st = s[out]
        if out_shape:
            flat = st.axis[0]
            for ax in st.axis[1:]:
                flat = st.fuse(flat, ax)
            rest, tx = st.split(flat, cfg["threads"])
            bx, step = st.split(rest, cfg["per_thread"])
            st.bind(bx, "blockIdx.x")
            st.bind(tx, "threadIdx.x")
            st.unroll(step)
        return Instance(s, list(inputs) + [out], dims)


def _all_known(shape, hints) -> bool:
    return all(not isinstance(d, str) or d in (hints or {}) for d in shape)
