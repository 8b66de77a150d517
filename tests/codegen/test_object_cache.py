import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, numpy as np, nimble
    from nimble import te
    from nimble.codegen import jit
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: te.tanh(A[i]) * 2.0, name="B")
    k = nimble.build(B, [A, B], name="cached")
    x = np.linspace(-2, 2, 9).astype("float32")
    assert np.allclose(k(x), np.tanh(x) * 2, atol=1e-6)
    print(json.dumps(jit.stats))
""")


def run(cache_dir):
    env = dict(os.environ, NIMBLE_CACHE_DIR=str(cache_dir))
    env.pop("NIMBLE_NO_CACHE", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_skips_llvm(tmp_path):
    first = run(tmp_path)  # the kernel and the parallel-for runtime (codegen/parallel.py)
    assert first == {"llvm_compiles": 2, "cache_hits": 0}
    assert len(list((tmp_path / "objects").glob("*.o"))) == 2
    second = run(tmp_path)
    assert second == {"llvm_compiles": 0, "cache_hits": 2}


def test_cache_key_changes_with_the_kernel():
    from nimble.codegen.jit import object_key

    assert object_key("define void @a() { ret void }") != object_key("define void @b() { ret void }")
