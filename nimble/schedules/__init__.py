"""Schedule templates with tunable knobs: config spaces, the registry, one template per operator family."""
from .registry import Instance, Signature, Template, TemplateError, TemplateKernel, get_template, template  # noqa: F401
from .space import Config, ConfigSpace, Knob  # noqa: F401
