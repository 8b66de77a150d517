"""IR -> IR passes and analyses used by the VM compiler, and the ``Pipeline`` that runs them in order."""
from .fuse import FusedModule, Group, fuse_ops, fusion_groups  # noqa: F401
from .device import Placement, place_devices  # noqa: F401
from .fold import eliminate_dead_code, fold_constants  # noqa: F401
from .anf import to_anf  # noqa: F401
from .pipeline import Pass, Pipeline, PipelineError, default_ir_passes, fuse_pass  # noqa: F401
