"""The template registry: one explicit table of built-in templates, plus ``@template`` for outside ones."""
import importlib
import inspect
import pkgutil

import pytest

import nimble.schedules as schedules
from nimble.schedules import Template, TemplateError, get_template, template
from nimble.schedules.builtin import BUILTIN_TEMPLATES
from nimble.schedules.cuda_template import CudaTemplate
from nimble.schedules.registry import TEMPLATES


def test_every_template_class_of_the_package_is_in_the_table():
    defined = set()
    for info in pkgutil.iter_modules(schedules.__path__):
        module = importlib.import_module(f"nimble.schedules.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Template) and cls not in (Template, CudaTemplate) and cls.__module__ == module.__name__:
                defined.add(cls)
    assert defined == {cls for _, _, cls in BUILTIN_TEMPLATES}
    assert len({(n, t) for n, t, _ in BUILTIN_TEMPLATES}) == len(BUILTIN_TEMPLATES)


def test_lookup_gives_an_instance_named_as_in_the_table():
    for name, target, cls in BUILTIN_TEMPLATES:
        t = get_template(name, target)
        assert type(t) is cls and (t.name, t.target) == (name, target)
    with pytest.raises(TemplateError, match="no template 'nope' for target 'llvm'; known: .*'dense'"):
        get_template("nope")


def test_outside_templates_register_once():
    @template("test_registry_once", "llvm")
    class Once(Template):
        pass

    try:
        assert type(get_template("test_registry_once")) is Once
        with pytest.raises(TemplateError, match="registered twice"):
            template("test_registry_once", "llvm")(Once)
        with pytest.raises(TemplateError, match="'dense' for 'llvm' is registered twice"):
            template("dense", "llvm")(Once)
    finally:
        TEMPLATES.pop(("test_registry_once", "llvm"), None)
