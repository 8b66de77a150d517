"""Convolution blocks of a model compile to the conv2d template with their bias, batch norm (folded into the
weights), activation and residual in its epilogue, and compute what PyTorch computes at every batch and size."""
import numpy as np
import pytest

import nimble
from nimble import ir
from nimble import ops as nb
from nimble.ir import Any


def _block(rng, channels=6, stride=2):
    """conv(3x3, stride) + bias -> batch_norm -> relu -> conv(3x3) -> batch_norm -> + shortcut(1x1 conv, stride,
    batch_norm) -> relu (ResNet's downsampling block), over (batch, 3, h, w) with batch, h and w dynamic; and the weights."""
    w = {k: rng.standard_normal(s).astype("float32") * 0.3 for k, s in {
        "w1": (channels, 3, 3, 3), "b1": (channels, 1, 1), "w2": (channels, channels, 3, 3),
        "ws": (channels, 3, 1, 1)}.items()}
    for k in ("bn1", "bn2", "bn3"):
        w[k] = [rng.uniform(0.5, 1.5, channels).astype("float32"), rng.standard_normal(channels).astype("float32"),
                rng.standard_normal(channels).astype("float32") * 0.1, rng.uniform(0.5, 2.0, channels).astype("float32")]
    x = ir.var("x", shape=(Any, 3, Any, Any))
    b = ir.Builder()
    c = ir.const

    def bn(v, key):
        return nb.batch_norm(v, *(c(p) for p in w[key]), axis=1, epsilon=1e-5)

    h = b.let("h", nb.relu(bn(nb.add(nb.conv2d(x, c(w["w1"]), strides=(stride, stride), padding=(1, 1)), c(w["b1"])),
                              "bn1")))
    main = b.let("main", bn(nb.conv2d(h, c(w["w2"]), padding=(1, 1)), "bn2"))
    short = b.let("short", bn(nb.conv2d(x, c(w["ws"]), strides=(stride, stride)), "bn3"))
    y = b.let("y", nb.relu(nb.add(main, short)))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], b.ret(y)))
    return mod, w


def _torch_block(w, x, stride):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    t = {k: (torch.from_numpy(v) if not isinstance(v, list) else [torch.from_numpy(p) for p in v]) for k, v in w.items()}

    def bn(v, key):
        g, beta, mean, var = t[key]
        return F.batch_norm(v, mean, var, g, beta, training=False, eps=1e-5)

    with torch.no_grad():
        xt = torch.from_numpy(x)
        h = F.relu(bn(F.conv2d(xt, t["w1"], t["b1"].reshape(-1), stride=stride, padding=1), "bn1"))
        main = bn(F.conv2d(h, t["w2"], padding=1), "bn2")
        return F.relu(main + bn(F.conv2d(xt, t["ws"], stride=stride), "bn3")).numpy()


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_blocks_run_the_template_and_match_torch(stride):
    mod, w = _block(np.random.default_rng(stride), stride=stride)
    exe = nimble.compile(mod)
    names = [p.name for p in exe.packed]
    assert any("conv2d_add_batch_norm_relu" in n for n in names), names  # bias, batch norm, relu fused in
    assert not [n for n in names if "batch_norm" in n and "conv2d" not in n], names
    vm = nimble.VirtualMachine(exe)
    rng = np.random.default_rng(0)
    for n, h, wd in [(1, 9, 9), (2, 5, 12), (1, 1, 1), (3, 17, 4), (0, 6, 6)]:
        x = rng.standard_normal((n, 3, h, wd)).astype("float32")
        np.testing.assert_allclose(vm.run(x), _torch_block(w, x, stride), rtol=1e-4, atol=1e-4)


def test_conv_groups_go_through_the_template_kernel():
    """The lowered groups of the block: each conv with its epilogue is one conv2d-template kernel."""
    from nimble.passes.pipeline import Pipeline
    from nimble.vm.pipeline import compile_pipeline

    mod, _ = _block(np.random.default_rng(0))
    passes = compile_pipeline("llvm", None, False).passes
    upto = [p for p in passes[:[p.name for p in passes].index("lower_kernels") + 1]]
    lowered = Pipeline(upto).run(mod, print_after=(), debug=0)
    kinds = sorted(gk.template for gk in lowered.kernels)
    assert kinds.count("conv2d") == 3, lowered.dump()
