"""IR -> IR passes and analyses used by the VM compiler."""
from .fuse import Group, fusion_groups  # noqa: F401
from .device import Placement, place_devices  # noqa: F401
from .fold import eliminate_dead_code, fold_constants  # noqa: F401
from .anf import to_anf  # noqa: F401
