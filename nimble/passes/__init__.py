"""IR -> IR passes and analyses used by the VM compiler."""
from .fuse import Group, fusion_groups  # noqa: F401
