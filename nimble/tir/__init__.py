"""The loop IR and the lowering of schedules to it."""
from .lower import LowerError, flatten, lower  # noqa: F401
from .nodes import Allocate, Assert, Buffer, For, IfThenElse, LetStmt, Load, PrimFunc, Seq, Stmt, Store, While, seq  # noqa: F401
