"""Dispatch tables are data the VM lowers: no module of ``nimble.dispatch`` imports ``nimble.vm``."""
import ast
import subprocess
import sys
from pathlib import Path

import nimble.dispatch

DISPATCH = Path(nimble.dispatch.__file__).parent


def imported_modules(path: Path) -> list:
    """Absolute names of the modules a file of ``nimble.dispatch`` imports (anywhere in it)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["nimble", "dispatch"][:max(2 - node.level + 1, 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.append(module)
            names += [f"{module}.{a.name}" for a in node.names]
    return names


def test_no_dispatch_module_imports_the_vm():
    offenders = {p.name: [m for m in imported_modules(p) if m == "nimble.vm" or m.startswith("nimble.vm.")]
                 for p in sorted(DISPATCH.glob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_import_walker_sees_a_relative_vm_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from ..vm.executable import LinkedKernel\n")
    assert "nimble.vm.executable" in imported_modules(bad)


def test_importing_every_dispatch_module_loads_no_vm_module():
    code = ("import sys, importlib, pkgutil, nimble.dispatch as d\n"
            "for m in pkgutil.iter_modules(d.__path__): importlib.import_module('nimble.dispatch.' + m.name)\n"
            "print(sorted(n for n in sys.modules if n == 'nimble.vm' or n.startswith('nimble.vm.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
