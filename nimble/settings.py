"""Every ``NIMBLE_*`` environment variable, read in one place, parsed once, with errors that name the variable.

    from nimble import settings
    settings.current().debug          # NIMBLE_DEBUG as an int
    settings.set_num_threads(4)       # the one thread count: kernels, the VM and the host fingerprint
    settings.reload()                 # read the environment again (after changing os.environ)

The environment is read when this module is first imported; after that the values change only through
``set_num_threads`` / ``update`` or an explicit ``reload()``. ``VARIABLES`` is the table the README prints:

| variable | type | default | what it sets |
|---|---|---|---|
| ``NIMBLE_DEBUG`` | int >= 0 | 0 | printing: 1 pass times, typed IR, loop IR; 2 + LLVM IR, bytecode; 3 + IR after every pass |
| ``NIMBLE_PRINT_AFTER`` | comma list of pass names | (none) | print the IR after these passes of ``nimble.passes.Pipeline`` |
| ``NIMBLE_NUM_THREADS`` | int >= 1 | ``os.cpu_count()`` | threads of parallel loops; recorded in the host fingerprint |
| ``NIMBLE_PARALLEL_MIN_WORK`` | int >= 0 | 32768 | a parallel loop with less work (iterations x body) runs on one thread |
| ``NIMBLE_CPU`` | str | host CPU | LLVM ``-mcpu`` for generated code (no host features when set) |
| ``NIMBLE_CACHE_DIR`` | path | ``~/.cache/nimble`` | the on-disk object and executable cache |
| ``NIMBLE_NO_CACHE`` | bool | false | never read or write the object cache |
| ``NIMBLE_VM`` | ``native`` or ``python`` | native | the default ``VirtualMachine`` backend |
| ``NIMBLE_BYTECODE_OPT`` | bool | true | run the bytecode optimisations (``nimble.vm.bytecode_opt``) |
| ``NIMBLE_AMX`` | bool | true | int8 products of models on Intel AMX tiles where the CPU has AMX-INT8 |
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace

from .errors import NimbleError


@dataclass(frozen=True)
class Settings:
    """The parsed values of every ``NIMBLE_*`` variable (see the module docstring)."""

    debug: int = 0
    print_after: tuple[str, ...] = ()
    num_threads: int = 1
    parallel_min_work: int = 32768
    cpu: str = ""
    cache_dir: str = ""
    no_cache: bool = False
    vm: str = "native"
    bytecode_opt: bool = True
    amx: bool = True


def _int(minimum: int) -> Callable[[str, str], int]:
    def parse(name: str, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise NimbleError(f"{name}: expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise NimbleError(f"{name}: expected an integer >= {minimum}, got {value}")
        return value
    return parse


def _bool(name: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise NimbleError(f"{name}: expected one of 1/0, true/false, yes/no, on/off, got {text!r}")


def _names(name: str, text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _text(name: str, text: str) -> str:
    return text


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(name: str, text: str) -> str:
        if text not in choices:
            raise NimbleError(f"{name}: expected one of {choices}, got {text!r}")
        return text
    return parse


def _default_cache_dir() -> str:
    return os.path.join(os.path.expanduser("~"), ".cache", "nimble")


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, the ``Settings`` field it sets, its parser and default."""

    env: str
    field: str
    parse: Callable[[str, str], object]
    default: Callable[[], object]


VARIABLES: tuple[Variable, ...] = (
    Variable("NIMBLE_DEBUG", "debug", _int(0), lambda: 0),
    Variable("NIMBLE_PRINT_AFTER", "print_after", _names, lambda: ()),
    Variable("NIMBLE_NUM_THREADS", "num_threads", _int(1), lambda: os.cpu_count() or 1),
    Variable("NIMBLE_PARALLEL_MIN_WORK", "parallel_min_work", _int(0), lambda: 32768),
    Variable("NIMBLE_CPU", "cpu", _text, lambda: ""),
    Variable("NIMBLE_CACHE_DIR", "cache_dir", _text, _default_cache_dir),
    Variable("NIMBLE_NO_CACHE", "no_cache", _bool, lambda: False),
    Variable("NIMBLE_VM", "vm", _choice("native", "python"), lambda: "native"),
    Variable("NIMBLE_BYTECODE_OPT", "bytecode_opt", _bool, lambda: True),
    Variable("NIMBLE_AMX", "amx", _bool, lambda: True),
)
assert {v.field for v in VARIABLES} == {f.name for f in fields(Settings)}


def read(environ: Mapping[str, str]) -> Settings:
    """Parse every variable of ``VARIABLES`` from ``environ``; an empty value means the default."""
    values = {}
    for var in VARIABLES:
        text = environ.get(var.env, "").strip()
        values[var.field] = var.parse(var.env, text) if text else var.default()
    return Settings(**values)


_current = read(os.environ)


def current() -> Settings:
    """The settings in force."""
    return _current


def reload(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the environment (or ``environ``) again; the new settings replace the current ones."""
    global _current
    _current = read(os.environ if environ is None else environ)
    return _current


def update(**changes) -> Settings:
    """Change some settings from Python (names are ``Settings`` fields); returns the new settings."""
    global _current
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise NimbleError(f"settings.update: unknown setting(s) {unknown}; expected some of {sorted(known)}")
    _current = replace(_current, **changes)
    return _current


def num_threads() -> int:
    """Threads of parallel loops, the VM's kernel calls and the host fingerprint of tuning records."""
    return _current.num_threads


def set_num_threads(n: int) -> None:
    """Set how many threads parallel loops of every kernel use from now on (and the fingerprint reports)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise NimbleError(f"set_num_threads: expected a positive integer, got {n!r}")
    update(num_threads=n)
