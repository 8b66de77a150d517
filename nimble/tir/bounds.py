"""Default bounds checks on indices read from data (``D[I[i], j]``): the conditions, found once per stage.

An index that contains a load is data: the kernel cannot know it is inside the tensor it reads,
so lowering asserts ``0 <= index < extent`` before the element is stored (status -> OutOfRangeError).
Conditions the simplifier proves (a clamped index) cost nothing; ``build(..., bounds_checks=False)``
drops the rest for one kernel.
"""
from __future__ import annotations

from ..te.expr import Cast, Expr, Max, Min, Select, all_, any_, not_
from ..te.simplify import bound, prove
from ..te.tensor import Reduce, TensorLoad
from ..te.visit import children, free_vars, substitute, walk


def _reads_data(e: Expr) -> bool:
    return any(isinstance(n, TensorLoad) for n in walk(e))


def _nonneg(e: Expr) -> bool:
    """0 <= e for every value of the loads in e (clamps and selects looked through)."""
    if bound(e)[0] >= 0:
        return True
    if isinstance(e, Max):
        return _nonneg(e.a) or _nonneg(e.b)
    if isinstance(e, Min):
        return _nonneg(e.a) and _nonneg(e.b)
    if isinstance(e, Select):
        return _nonneg(e.true_value) and _nonneg(e.false_value)
    return isinstance(e, Cast) and _nonneg(e.value)


def _below(e: Expr, ext) -> bool:
    """e < ext for every value of the loads in e."""
    if prove(e < ext) is True:
        return True
    if isinstance(e, Min):
        return _below(e.a, ext) or _below(e.b, ext)
    if isinstance(e, Max):
        return _below(e.a, ext) and _below(e.b, ext)
    if isinstance(e, Select):
        return _below(e.true_value, ext) and _below(e.false_value, ext)
    return isinstance(e, Cast) and _below(e.value, ext)


def index_checks(stage_name: str, body: Expr) -> list:
    """``[(condition, message)]`` for every load in ``body`` whose index is read from data.

    Loads under a ``Select`` are checked only where their branch is taken; loads nested in an
    index are checked first (their own index may be data too).
    """
    out: list = []
    seen: set = set()

    def add(cond: Expr, when: list, msg: str):
        for taken, c in reversed(when):
            cond = any_(not_(c), cond) if taken else any_(c, cond)
        if prove(cond) is True:
            return
        key = (str(cond), msg)
        if key not in seen:
            seen.add(key)
            out.append((cond, msg))

    def go(e: Expr, when: list):
        if isinstance(e, Select):
            go(e.cond, when)
            go(e.true_value, when + [(True, e.cond)])
            go(e.false_value, when + [(False, e.cond)])
            return
        if isinstance(e, Reduce):
            go(e.source, when)
            return
        for c in children(e):
            go(c, when)
        if isinstance(e, TensorLoad):
            t = e.tensor
            for k, (idx, ext) in enumerate(zip(e.indices, t.shape)):
                if _reads_data(idx) and not (_nonneg(idx) and _below(idx, ext)):
                    msg = (f"{stage_name}: an index read from data is outside {t.name} dimension {k} "
                           f"(expected 0 <= index < {ext})")
                    add(all_(idx >= 0, idx < ext), when, msg)

    go(body, [])
    return out


def place_checks(checks: list, axis_map: dict, leaves: list, attached: dict) -> dict:
    """``checks`` (over the stage's axes) rewritten over its loops by ``axis_map`` and keyed, like
    guards, by id of the innermost leaf loop they need: the last one they use, or the loop where a
    buffer they read is computed (``attached``: tensor -> its stage's attach point). None: at the store."""
    pos_of = {iv.var: k for k, iv in enumerate(leaves)}
    at_of = {id(iv): k for k, iv in enumerate(leaves)}
    out: dict = {}
    for cond, msg in checks:
        cond = substitute(cond, axis_map)
        used = [pos_of[v] for v in free_vars(cond) if v in pos_of]
        at_store = False
        for n in walk(cond):
            if isinstance(n, TensorLoad) and n.tensor in attached:
                attach = attached[n.tensor]
                if isinstance(attach, tuple) and id(attach[1]) in at_of:
                    used.append(at_of[id(attach[1])])
                else:
                    at_store = True  # computed somewhere this nest cannot see: check at the store
        key = None if at_store or not used else id(leaves[max(used)])
        out.setdefault(key, []).append((cond, msg))
    return out
