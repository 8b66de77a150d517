"""The layer order of docs DESIGN.md holds: a subpackage imports only the layers above it in LAYERS.

Every import counts, module-level or inside a function (a lazy import is still an arrow). ``python
tests/test_import_layers.py`` prints the graph: each subpackage and the subpackages it imports.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "nimble"

# bottom (imports nothing of nimble's layers) to top; DESIGN.md's table, with `ir` before `ops` (the operator
# registry fills the IR's operator table) and `models` (builders over ir/ops) before the VM and the importers.
LAYERS = ("te", "tir", "codegen", "schedules", "tuner", "dispatch", "ir", "ops", "passes", "models", "vm",
          "frontend", "cli")
# single modules any layer may import: they import no layer themselves
BASE = ("errors", "debug", "settings", "version", "dtypes")


def _target(module: Path, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The top-level names under ``nimble`` that an import statement in ``module`` reaches."""
    here = module.relative_to(ROOT).parts[:-1]
    if isinstance(node, ast.Import):
        return [a.name.split(".")[1] for a in node.names if a.name.startswith("nimble.")]
    if node.level == 0:
        if not (node.module or "").startswith("nimble"):
            return []
        parts = node.module.split(".")[1:]
    else:
        base = list(here[: len(here) - (node.level - 1)]) if node.level - 1 <= len(here) else []
        parts = base + (node.module.split(".") if node.module else [])
    if parts:
        return [parts[0]]
    return [a.name for a in node.names]  # `from .. import x` at the package root: x is the module


def import_graph() -> dict[str, dict[str, list[str]]]:
    """subpackage -> imported top-level name -> ["file:line", ...]"""
    graph: dict = defaultdict(lambda: defaultdict(list))
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if len(parts) < 2:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for name in _target(path, node):
                    if name != parts[0]:
                        graph[parts[0]][name].append(f"{path.relative_to(ROOT.parent)}:{node.lineno}")
    return graph


def module_imports(package: str) -> dict[str, set[str]]:
    """module -> the modules of the same subpackage it imports (module-level or lazy)."""
    pkg_dir = ROOT / package
    names = {p.stem for p in pkg_dir.glob("*.py")}
    out: dict = {}
    for path in sorted(pkg_dir.glob("*.py")):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:
                    deps.update(a.name for a in node.names if a.name in names)
        out[path.stem] = deps & names - {path.stem}
    return out


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of the module graph (as a path that returns to its start), or [] if there is none."""
    state: dict = {}

    def visit(m, path):
        state[m] = "open"
        for d in sorted(graph.get(m, ())):
            if state.get(d) == "open":
                return path[path.index(d):] + [d]
            if d not in state:
                found = visit(d, path + [d])
                if found:
                    return found
        state[m] = "done"
        return []

    for m in sorted(graph):
        if m not in state:
            found = visit(m, [m])
            if found:
                return found
    return []


def upward_arrows(graph) -> list[str]:
    bad = []
    for src, targets in graph.items():
        for dst, where in targets.items():
            if dst in BASE:
                continue
            if src not in LAYERS or dst not in LAYERS or LAYERS.index(dst) > LAYERS.index(src):
                bad.append(f"{src} -> {dst} ({', '.join(where[:3])})")
    return sorted(bad)


def test_every_subpackage_is_in_the_layer_order():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LAYERS)


def test_no_import_goes_up_the_layer_order():
    assert upward_arrows(import_graph()) == []


# subpackages whose modules import each other without a cycle (lazy imports count); the schedule
# templates are listed in one table (schedules/builtin.py) instead of registering by import
ACYCLIC = ("schedules", "dispatch", "ir", "ops", "passes", "models", "cli")


def test_no_import_cycle_inside_these_subpackages():
    for package in ACYCLIC:
        assert import_cycle(module_imports(package)) == [], package


def test_the_cycle_finder_finds_cycles():
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert import_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    module = ROOT / "tuner" / "example.py"
    lazy = ast.parse("def f():\n    from ..vm.tasks import extract_tasks\nfrom .. import __version__\n")
    found = [_target(module, n) for n in ast.walk(lazy) if isinstance(n, ast.ImportFrom)]
    assert sorted(found) == [["__version__"], ["vm"]]
    assert upward_arrows({"tuner": {"vm": ["x.py:1"]}, "te": {"errors": ["y.py:1"]}}) == ["tuner -> vm (x.py:1)"]


if __name__ == "__main__":
    for layer in LAYERS:
        deps = sorted(import_graph().get(layer, {}))
        print(f"{layer:10s} -> {', '.join(deps) or '(nothing)'}")
    print("upward:", upward_arrows(import_graph()) or "none")
