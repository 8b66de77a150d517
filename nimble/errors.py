"""The few exception classes nimble raises; messages name the argument, the expected and the actual value."""
import builtins


class NimbleError(Exception):
    """Base class of every nimble error."""


class ShapeError(NimbleError, ValueError):
    """A shape (rank, dimension, symbolic-dim binding) does not match what was expected."""


class TypeError(NimbleError, builtins.TypeError):  # noqa: A001 - exported as nimble.TypeError
    """A dtype or type does not match what was expected."""


class TuningError(NimbleError, RuntimeError):
    """Tuning or measuring failed in a way the caller must know about."""


class FormatError(NimbleError, ValueError):
    """A file or record is malformed, truncated, of another version, or altered."""


class OutOfRangeError(NimbleError, IndexError):
    """A value read by a kernel (an index, a gathered position) is outside its valid range."""
