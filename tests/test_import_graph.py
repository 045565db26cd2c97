"""The package graph: every module imports at top level in a fresh interpreter, the project's
module-level import graph (function-level imports included) has no cycle, and the packages import
one way only — service → sweeps → mutransfer, dashboards → mutransfer; the science package
imports neither Ray nor FastAPI nor pydantic.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mutransfer", "sweeps", "service", "dashboards")
# What each package may import of the others (the whiteboard's arrows).
ALLOWED = {
    "mutransfer": set(),
    "sweeps": {"mutransfer"},
    "dashboards": {"mutransfer"},
    "service": {"sweeps", "mutransfer", "dashboards"},
}
# Third-party packages a package must never import, at any depth of its own code.
FORBIDDEN = {
    "mutransfer": {"ray", "fastapi", "pydantic", "uvicorn", "starlette"},
    "dashboards": {"ray", "fastapi", "pydantic", "uvicorn", "starlette"},
}


def project_modules() -> dict[str, Path]:
    """Dotted name → file for every module of the four packages."""
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            mods[".".join(parts)] = path
    return mods


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports anywhere in its file (top level or inside functions),
    resolved to the longest known dotted prefix; ``from pkg import mod`` counts as ``pkg.mod``, and
    ``from pkg import name`` as ``pkg`` (its ``__init__``, which defines or re-exports ``name``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    found = set()

    def resolve(dotted: str) -> str | None:
        parts = dotted.split(".")
        for k in range(len(parts), 0, -1):
            cand = ".".join(parts[:k])
            if cand in known:
                return cand
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            # ``from pkg import mod`` imports the module; ``from pkg import name`` reads pkg/__init__.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            hit = resolve(t)
            if hit and hit != name:
                found.add(hit)
    return found


def third_party_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    tops = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            tops.add(node.module.split(".")[0])
    return tops


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def module_graph() -> dict[str, set[str]]:
    """Module → project modules it imports. A package's ``__init__`` re-exporting its own submodules
    is not an edge back from those submodules' point of view, so an ``import pkg.sub`` resolves to
    ``pkg.sub`` (the longest known prefix), never to ``pkg``."""
    mods = project_modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_module_import_graph_has_no_cycle():
    graph = module_graph()
    # A package __init__ imports its submodules by design; a submodule importing its own package's
    # __init__ back (``from mutransfer.diagnostics import x`` inside mutransfer/diagnostics/) is the
    # hidden kind of cycle this test exists for, so those edges are kept.
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_packages_import_one_way():
    graph = module_graph()
    bad = sorted(f"{a} → {b}" for a, targets in graph.items() for b in targets
                 if b.split(".")[0] != a.split(".")[0] and b.split(".")[0] not in ALLOWED[a.split(".")[0]])
    assert not bad, "imports against the package arrows:\n" + "\n".join(bad)


def test_science_and_pages_import_no_service_stack():
    mods = project_modules()
    bad = sorted(f"{name} imports {sorted(third_party_imports(path) & FORBIDDEN[name.split('.')[0]])}"
                 for name, path in mods.items() if name.split(".")[0] in FORBIDDEN
                 and third_party_imports(path) & FORBIDDEN[name.split(".")[0]])
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_imports_at_top_level_in_a_fresh_interpreter(package):
    names = sorted(n for n in project_modules() if n.split(".")[0] == package)
    code = ("import importlib, sys\n"
            f"for n in {names!r}:\n"
            "    importlib.import_module(n)\n"
            "print('ok', len(sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**__import__("os").environ, "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0 and out.stdout.startswith("ok"), out.stderr[-3000:]
