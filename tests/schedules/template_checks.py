"""Shared checks for schedule templates: which configs to test, cached builds, numpy comparison."""
from __future__ import annotations

import functools
import random

import numpy as np

from nimble.schedules.registry import get_template


def configs_to_test(name: str, sig, hints=None, seeds=(1, 2)) -> list:
    """Indices of the fallback, the first and last configs and a few random ones (deduplicated)."""
    t = get_template(name)
    space = t.space(sig)
    picks = [t.fallback(sig, space, hints).index, 0, len(space) - 1]
    picks += [space.random(random.Random(seed)).index for seed in seeds]
    return list(dict.fromkeys(picks))


@functools.lru_cache(maxsize=None)
def built(name: str, sig, index: int):
    """The kernel of config ``index`` of template ``name`` for ``sig`` (built once per test run)."""
    t = get_template(name)
    return t.build(sig, t.space(sig).get(index))


def check_against_reference(name: str, sig, index: int, dims: dict, seed: int = 0, rtol=1e-5, atol=1e-5,
                            inputs=None) -> None:
    t = get_template(name)
    rng = np.random.default_rng(seed)
    inputs = inputs if inputs is not None else t.random_inputs(sig, dims, rng)
    got = built(name, sig, index)(*inputs)
    want = t.reference(sig, inputs)[0]
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol,
                               err_msg=f"{name} config {t.space(sig).get(index)} dims {dims}")
