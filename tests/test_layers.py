"""The package's layers: lower ones never import higher ones, and no module imports itself
back through others (issue: three import cycles made the old flat layout hard to read)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Lowest first; a module may import its own layer and the ones before it.
LAYERS = (
    ("fuzzgrad._version", "fuzzgrad.errors"),
    ("fuzzgrad.registry", "fuzzgrad.strategies"),
    ("fuzzgrad.oracles",),
    ("fuzzgrad.verdict",),
    ("fuzzgrad.properties",),
    ("fuzzgrad.report",),
    ("fuzzgrad.engine",),
    ("fuzzgrad.nightly",),
    ("fuzzgrad.integrations",),
    ("fuzzgrad", "fuzzgrad.__main__"),  # the facade
)
FOLDERS = {"fuzzgrad": ROOT / "fuzzgrad", "fuzzgrad.strategies": ROOT / "strategies"}


def _modules() -> dict[str, Path]:
    out = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def _layer(module: str) -> int:
    best, rank = -1, None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank is not None, f"{module} is in no layer"
    return rank


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every fuzzgrad module ``module`` imports, at the top or inside a function."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


MODULES = _modules()
GRAPH = {m: _imports(m, p, set(MODULES)) for m, p in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_layer(module):
    mine = _layer(module)
    higher = sorted(m for m in GRAPH[module] if _layer(m) > mine)
    assert not higher, f"{module} (layer {mine}) imports higher layers: {higher}"


def test_no_import_cycles():
    """Between modules, counting imports inside functions too (a package and its own
    submodules excepted: ``__init__`` re-exports them)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(GRAPH[m]):
            if n.startswith(m + ".") or m.startswith(n + "."):
                continue
            if state.get(n) == 1:
                cycle = stack[stack.index(n) :] + [n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)
