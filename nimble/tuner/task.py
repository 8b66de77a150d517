"""Task: one template + signature + target, tuned in one shape bucket."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ..schedules.registry import Signature, get_template
from .buckets import BucketKey
from .workload import WorkloadKey


@dataclass(frozen=True)
class Task:
    """What to tune: ``template`` for ``signature`` on ``target``, measured at the representative
    values of ``bucket`` or at its traffic points (``points()``; ``BucketKey.parse("static")`` when the
    signature has no symbolic dim)."""

    template: str
    signature: Signature
    target: str = "llvm"
    bucket: BucketKey = BucketKey.parse("static")

    def __post_init__(self):
        if isinstance(self.bucket, str):
            object.__setattr__(self, "bucket", BucketKey.parse(self.bucket))
        missing = set(self.signature.symbolic_dims) - set(self.bucket.dims)
        if missing:
            from ..errors import TuningError

            raise TuningError(f"task {self.template}: bucket {self.bucket} gives no value for {sorted(missing)}")

    @cached_property
    def template_obj(self):
        return get_template(self.template, self.target.split()[0])

    @cached_property
    def space(self):
        return self.template_obj.space(self.signature)

    @property
    def dims(self) -> dict:
        """Symbolic dim -> the value this task is measured at."""
        return dict(self.bucket.representatives())

    def points(self) -> list[tuple[dict, int]]:
        """(binding, weight) pairs this task is measured at: the representatives alone, or the buckets' traffic
        points (``Bucket.points``). Dims whose buckets carry the same points move together (the model's
        symbolic dims tracking one length, as ``extract_tasks`` keys them); other dims combine as a product."""
        rep = self.dims
        groups: dict = {}
        for b in self.bucket.buckets:
            groups.setdefault(b.weighted_points(), []).append(b.dim)
        out = [(rep, 1)]
        for points, dims in groups.items():
            if len(points) == 1:
                continue
            out = [({**binding, **{d: v for d in dims}}, weight * w) for binding, weight in out for v, w in points]
        return out

    def fallback(self):
        return self.template_obj.fallback(self.signature, self.space, self.dims)

    @cached_property
    def workload_key(self) -> WorkloadKey:
        args = [(shape, dtype) for shape, dtype in self.signature.args]
        return WorkloadKey(self.template, args, self.target, _thaw(dict(self.signature.attrs)))

    def flops(self) -> float:
        """FLOPs of one call: at the representatives, or the weighted mean over the traffic points."""
        points = self.points()
        if len(points) == 1:
            return self.template_obj.flops(self.signature, self.dims)
        total = sum(w for _, w in points)
        return sum(w * self.template_obj.flops(self.signature, b) for b, w in points) / total

    def build(self, config, name: str | None = None):
        return self.template_obj.build(self.signature, config, name=name or self.template)

    def __str__(self):
        return f"{self.template}{[list(s) for s, _ in self.signature.args]} @ {self.bucket}"


def _thaw(v):
    if isinstance(v, tuple) and v and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) for x in v):
        return {k: _thaw(x) for k, x in v}
    if isinstance(v, tuple):
        return [_thaw(x) for x in v]
    if isinstance(v, dict):
        return {k: _thaw(x) for k, x in v.items()}
    return v


def task_label(task: Task) -> str:
    """What tells one task from another in progress output: template, workload hash, shapes, bucket."""
    shapes = " ".join("(" + ",".join(str(d) for d in shape) + ")" for shape, _ in task.signature.args)
    return f"{task.template} #{task.workload_key.short_hash} {shapes} {task.bucket}"
