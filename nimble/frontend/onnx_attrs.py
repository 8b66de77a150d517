"""Attribute checks the ONNX spec makes: an axis in [-rank, rank), a perm that is a permutation,
no repeated axes. Out-of-range values are refused (as ONNX Runtime does), never wrapped modulo the
rank; the converter loop adds the node's name to the ``MalformedNodeError``."""
from __future__ import annotations

from .onnx_graph import MalformedNodeError


def axis_in(value, rank: int, what: str = "axis") -> int:
    """``value`` as an axis of a rank-``rank`` tensor, normalised to [0, rank)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedNodeError(f"{what} must be an integer, got {value!r}")
    if not -rank <= value < rank:
        raise MalformedNodeError(f"{what} = {value} is out of range for a rank-{rank} input "
                                    f"(expected {-rank} <= {what} < {rank})")
    return value % rank


def axes_in(values, rank: int, what: str = "axes") -> list:
    """Each of ``values`` as an axis of rank ``rank`` (normalised), none repeated."""
    out = [axis_in(v, rank, what) for v in values]
    if len(set(out)) != len(out):
        raise MalformedNodeError(f"{what} {list(values)} name an axis twice (rank {rank})")
    return out


def perm_of(perm, rank: int) -> tuple:
    """``perm`` checked to be a permutation of range(rank)."""
    perm = list(perm)
    if sorted(perm) != list(range(rank)) or any(isinstance(p, bool) for p in perm):
        raise MalformedNodeError(f"perm {perm} is not a permutation of the {rank} axes of the input")
    return tuple(perm)


def flag_of(value, what: str) -> bool:
    """A 0/1 attribute (``keepdims``): any other value is refused (ONNX Runtime reads only 1 as true)."""
    if isinstance(value, bool) or value not in (0, 1):
        raise MalformedNodeError(f"{what} must be 0 or 1, got {value!r}")
    return bool(value)
