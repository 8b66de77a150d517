"""The compile pipeline as data: an ordered list of passes, each a function from one IR to the next.

    pipe = Pipeline([Pass("anf", to_anf, "IRModule", "IRModule", "..."), ...])
    result = pipe.run(mod)                        # runs every pass in order
    pipe.names                                    # ('anf', 'fold', 'dce', ...)
    pipe.insert_after("bytecode", Pass(...))      # a new Pipeline with one more pass

Each pass names the IR it takes and the IR it gives; the constructor checks that they chain. ``run`` times
every pass and, through the ``nimble.passes`` logger, prints what ``nimble.settings`` asks for:
``NIMBLE_DEBUG >= 1`` one line per pass (name, milliseconds, a one-line summary of its result),
``NIMBLE_DEBUG >= 3`` the IR after every pass, ``NIMBLE_PRINT_AFTER=fuse,lower_kernels`` the IR after the named
ones. An IR is printed by ``str()`` unless it has a ``dump()`` method; a one-line summary comes from ``summary()``
when it has one. The IR -> IR passes of the model IR are in ``default_ir_passes``; the VM compiler appends
fusion, kernel lowering and bytecode (``nimble.vm.pipeline.compile_pipeline``).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import settings
from ..debug import attach_stderr_handler, debug_logger
from ..errors import NimbleError
from ..ir.module import IRModule
from ..ir.printer import print_module

log = debug_logger("nimble.passes")


class PipelineError(NimbleError, ValueError):
    """A pipeline that does not chain, or a pass name that is not in it."""


@dataclass(frozen=True)
class Pass:
    """One step of the pipeline: ``run`` maps an IR of kind ``takes`` to one of kind ``gives``."""

    name: str
    run: Callable
    takes: str
    gives: str
    doc: str = ""


@dataclass(frozen=True)
class PassTiming:
    name: str
    seconds: float


class Pipeline:
    """An ordered, checked list of ``Pass``es; ``run(ir)`` applies them in turn."""

    def __init__(self, passes: Sequence[Pass]):
        passes = tuple(passes)
        seen: set = set()
        for p in passes:
            if p.name in seen:
                raise PipelineError(f"pipeline: pass name {p.name!r} appears twice")
            seen.add(p.name)
        for a, b in zip(passes, passes[1:]):
            if a.gives != b.takes:
                raise PipelineError(f"pipeline: pass {a.name!r} gives {a.gives} but the next pass {b.name!r} takes "
                                    f"{b.takes}")
        self.passes = passes
        self.timings: list[PassTiming] = []

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.passes)

    def index(self, name: str) -> int:
        """Position of the pass called ``name``; an unknown name is a PipelineError listing the known ones."""
        for i, p in enumerate(self.passes):
            if p.name == name:
                return i
        raise PipelineError(f"pipeline: no pass named {name!r}; the passes are {', '.join(self.names)}")

    def insert_after(self, name: str, new: Pass) -> Pipeline:
        """A new pipeline with ``new`` right after the pass called ``name``."""
        i = self.index(name) + 1
        return Pipeline(self.passes[:i] + (new,) + self.passes[i:])

    def run(self, ir, print_after: Sequence[str] | None = None, debug: int | None = None):
        """Run every pass on ``ir``; print as ``NIMBLE_DEBUG`` / ``NIMBLE_PRINT_AFTER`` (or the arguments) ask."""
        level = settings.current().debug if debug is None else debug
        wanted = tuple(settings.current().print_after if print_after is None else print_after)
        for name in wanted:
            self.index(name)  # a misspelt name is an error before any work is done
        if level or wanted:
            attach_stderr_handler()
        self.timings = []
        for p in self.passes:
            start = time.perf_counter()
            ir = p.run(ir)
            seconds = time.perf_counter() - start
            self.timings.append(PassTiming(p.name, seconds))
            if level >= 1:
                log.debug("pass %-14s %9.1f ms  %s", p.name, seconds * 1e3, summary(ir))
            if level >= 3 or p.name in wanted:
                log.debug("IR after %s (%s):\n%s", p.name, p.gives, dump(ir))
        if level >= 1:
            log.debug("pipeline total %.1f ms", sum(t.seconds for t in self.timings) * 1e3)
        return ir

    def __repr__(self) -> str:
        return "Pipeline(" + " -> ".join(self.names) + ")"


def dump(ir) -> str:
    """The full text of an IR: ``ir.dump()`` or ``ir.disassemble()`` where defined, the module printer for an
    ``IRModule``, else str."""
    if hasattr(ir, "dump"):
        return ir.dump()
    if hasattr(ir, "disassemble"):
        return ir.disassemble()
    if isinstance(ir, IRModule):
        return print_module(ir)
    return str(ir)


def summary(ir) -> str:
    """One line about an IR: ``ir.summary()`` where defined; for an ``IRModule``, its functions and let count."""
    if hasattr(ir, "summary"):
        return ir.summary()
    if isinstance(ir, IRModule):
        return f"{len(ir.functions)} functions, {_count_lets(ir)} lets"
    return type(ir).__name__


def _count_lets(mod: IRModule) -> int:
    from ..ir.expr import Let

    count = 0
    for func in mod.functions.values():
        body = func.body
        while isinstance(body, Let):
            count += 1
            body = body.body
    return count


def fuse_pass() -> Pass:
    """The ``fuse`` pass: type-check, then the fusion groups of every function (``nimble.passes.fuse.fuse_ops``)."""
    from .fuse import fuse_ops

    return Pass("fuse", fuse_ops, "IRModule", "FusedModule", "fusion groups of every function")


def default_ir_passes() -> list[Pass]:
    """The model-IR passes every compile runs, in order: ANF, constant folding, dead code, exported patterns."""
    from .anf import to_anf
    from .attention import fuse_attention
    from .fold import eliminate_dead_code, fold_constants
    from .patterns import rewrite_patterns
    from .rows import fold_rows
    from .shape_ops import simplify_shape_ops

    return [
        Pass("anf", to_anf, "IRModule", "IRModule", "A-normal form: every operator call bound by a let"),
        Pass("fold", fold_constants, "IRModule", "IRModule", "evaluate calls whose arguments are all constants"),
        Pass("dce", eliminate_dead_code, "IRModule", "IRModule", "drop let bindings nobody uses"),
        Pass("patterns", rewrite_patterns, "IRModule", "IRModule",
             "exported LayerNorm / GELU / attention decompositions -> one operator each"),
        Pass("rows", fold_rows, "IRModule", "IRModule", "move reshapes below row-wise operators"),
        Pass("attention", fuse_attention, "IRModule", "IRModule",
             "multi-head attention chains (head split, scores, softmax, context, head merge) -> one attention call"),
        Pass("shape_ops", simplify_shape_ops, "IRModule", "IRModule",
             "arange / dyn.reshape sized by other tensors' dims -> dim_arange / reshape_like (no host shape call)"),
    ]
