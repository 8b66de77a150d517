"""The in-process memo of compiled functions: structurally equal loop IR compiles once, anything
different compiles again."""
import numpy as np

import nimble
from nimble import settings, te
from nimble.codegen import memo
from nimble.tir.lower import lower


def _scaled(scale, name="memo_k", same_var=True):
    n = te.var("n")
    m = n if same_var else te.var("n")  # two variables both called n are different variables
    A = te.placeholder((n,), name="A")
    B = te.placeholder((m,), name="B")
    C = te.compute((n,), lambda i: A[i] * scale + B[i], name="C")
    return [A, B, C], lower(C, [A, B, C], name)


def test_equal_structure_gives_equal_keys_and_differences_do_not():
    key = memo.structural_key([_scaled(2.0)[1]])
    assert key is not None and key == memo.structural_key([_scaled(2.0)[1]])
    assert key != memo.structural_key([_scaled(3.0)[1]])
    assert key != memo.structural_key([_scaled(2.0, name="other")[1]])
    assert key != memo.structural_key([_scaled(2.0, same_var=False)[1]])
    assert memo.structural_key([_scaled(0.0)[1]]) != memo.structural_key([_scaled(-0.0)[1]])
    assert key != memo.structural_key([_scaled(2.0)[1]], "another host")


def test_unknown_nodes_are_never_keyed():
    assert memo.structural_key([object()]) is None


def test_a_second_build_reuses_the_first_and_computes_the_same():
    (args, _), (args2, _) = _scaled(2.0, "memo_reuse"), _scaled(2.0, "memo_reuse")
    before = dict(memo.stats)
    k1 = nimble.build(args[-1], args, name="memo_reuse")
    k2 = nimble.build(args2[-1], args2, name="memo_reuse")
    assert memo.stats["hits"] >= before["hits"] + 1
    assert k1.object_code is k2.object_code
    x, y = np.arange(7, dtype="float32"), np.ones(7, dtype="float32")
    np.testing.assert_array_equal(k1(x, y), x * 2 + 1)
    np.testing.assert_array_equal(k2(x, y), x * 2 + 1)


def test_no_cache_setting_bypasses_the_memo():
    args, _ = _scaled(5.0, "memo_off")
    old = settings.current()
    settings.update(no_cache=True)
    try:
        before = dict(memo.stats)
        nimble.build(args[-1], args, name="memo_off")
        nimble.build(args[-1], args, name="memo_off")
        assert memo.stats == before
    finally:
        settings.update(no_cache=old.no_cache)
