"""The package's import graph: no cycles (function-level imports count), imports only down the layers, no
private cross-module imports, no Optuna or Ray internals outside the one documented place."""

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


# The layers, bottom first: a module may import from its own layer and the ones below it, never above.
LAYERS = ("core", "languages", "tasks", "trial", "results", "tuning", "analysis", "cli")
# alchemy_tune/search.py, the file `ray submit` runs: it calls the CLI and nothing imports it
ENTRY = "alchemy_tune.search"


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``module -> target`` for every import of a higher layer (the entry and the package root aside)."""
    found = []
    for module, targets in sorted(graph.items()):
        if module in (ENTRY, "alchemy_tune") or _layer(module) is None:
            continue
        for target in sorted(targets):
            if _layer(target) is not None and LAYERS.index(_layer(target)) > LAYERS.index(_layer(module)):
                found.append(f"{module} ({_layer(module)}) -> {target} ({_layer(target)})")
    return found


def test_every_module_belongs_to_a_layer():
    loose = [name for name in _modules() if name not in ("alchemy_tune", ENTRY) and _layer(name) is None]
    assert loose == [], f"modules outside the layers {LAYERS}: {loose}"


def test_imports_go_only_down_the_layers():
    mods = _modules()
    graph = {name: _imports(name, path, mods) for name, path in mods.items()}
    assert upward_imports(graph) == []
    assert not any(ENTRY in targets for targets in graph.values()), "nothing imports the ray-submit entry"


def test_the_layer_check_finds_an_upward_import():
    graph = {"alchemy_tune.trial.train": {"alchemy_tune.core.errors", "alchemy_tune.tuning.search"},
             "alchemy_tune.cli.plan": {"alchemy_tune.trial.config"}, ENTRY: {"alchemy_tune.cli"}}
    assert upward_imports(graph) == ["alchemy_tune.trial.train (trial) -> alchemy_tune.tuning.search (tuning)"]
