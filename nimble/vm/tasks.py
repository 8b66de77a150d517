"""Model-level task extraction: the tunable primitive functions of a module, deduplicated."""
from __future__ import annotations

from ..passes.pipeline import Pipeline, default_ir_passes, fuse_pass
from ..tuner.buckets import BucketSpec
from ..tuner.task import Task
from .kernels import dense_group_signature


def model_signatures(mod) -> list:
    """(template name, signature) of every template-backed fused group, each once (BERT's 12
    layers share their tasks)."""
    # the passes nimble.compile runs up to fusion: the tasks are the kernels a compile of this module builds
    fused = Pipeline(default_ir_passes() + [fuse_pass()]).run(mod, print_after=(), debug=0)
    seen, out = set(), []
    for groups, _ in fused.fusion.values():
        for g in groups.values():
            found = dense_group_signature(g, fused.types)
            if found is None:
                continue
            key = ("dense", found[0])
            if key not in seen:
                seen.add(key)
                out.append(key)
    return out


def extract_tasks(mod, target: str = "llvm", buckets=None) -> list:
    """Tuning tasks of a model: each tunable primitive function of ``mod`` in each bucket.

    ``buckets``: a ``BucketSpec`` or its text (``"n=1:8,9:32,33:128"``) for the symbolic dim
    ``n`` of the signatures (default: powers of two up to 512); a static signature gets one
    ``static`` task.
    """
    spec = buckets if isinstance(buckets, BucketSpec) or buckets is None else BucketSpec.parse(buckets)
    if spec is None:
        spec = BucketSpec.powers_of_two("n", 512)
    tasks = []
    for template, sig in model_signatures(mod):
        if not sig.symbolic_dims:
            tasks.append(Task(template, sig, target, "static"))
            continue
        for b in spec.buckets:
            tasks.append(Task(template, sig, target, f"{sig.symbolic_dims[0]}={b.lo}..{b.hi}"))
    return tasks
