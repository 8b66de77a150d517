"""The template registry: the built-in table (``builtin.py``) plus templates registered by ``@template``.

Built-in templates are listed in one explicit table, loaded on the first lookup; ``@template`` is
for templates defined outside nimble (a test's or a user's module, which the tuner's workers
import by name so that the decorator registers them there too).
"""
from __future__ import annotations

from .base import Instance, Signature, Template, TemplateError, TemplateKernel

TEMPLATES: dict = {}  # (name, target) -> Template instance
_builtins_loaded = False


def _register(name: str, target: str, cls) -> None:
    if (name, target) in TEMPLATES:
        raise TemplateError(f"template {name!r} for {target!r} is registered twice")
    inst = cls()
    inst.name, inst.target = name, target
    TEMPLATES[(name, target)] = inst


def template(name: str, target: str = "llvm"):
    """Class decorator registering a Template subclass defined outside nimble under (name, target)."""

    def register(cls):
        _load_builtin_templates()
        _register(name, target, cls)
        return cls

    return register


def get_template(name: str, target: str = "llvm") -> Template:
    _load_builtin_templates()
    try:
        return TEMPLATES[(name, target)]
    except KeyError:
        known = sorted(n for n, t in TEMPLATES if t == target)
        raise TemplateError(f"no template {name!r} for target {target!r}; known: {known}") from None


def _load_builtin_templates() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    from .builtin import BUILTIN_TEMPLATES

    _builtins_loaded = True
    for name, target, cls in BUILTIN_TEMPLATES:
        _register(name, target, cls)


__all__ = ["Signature", "Instance", "Template", "TemplateKernel", "TemplateError", "template", "get_template",
           "TEMPLATES"]
