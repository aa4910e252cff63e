"""The package's import graph: no cycles (function-level imports count), imports only down the layers, no
private cross-module imports, each layer's third-party libraries, and no import the check cannot see.

The checks read source text (``ast``), so they take ``{module name: (is a package __init__, source)}``:
the real package in the tests of the package, planted violations in the tests of the checks. An import
is an ``import`` statement anywhere in a file, and also a string naming a module of the package
(``"alchemy_tune.tasks.bible:load_genre"`` in a registry, ``importlib.import_module("alchemy_tune.x")``):
a registry's strings are imports like any other. ``importlib.import_module`` of anything but a string
literal is allowed only in the registries that resolve names a user or a table gives (:data:`DYNAMIC`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "alchemy_tune"
ROOT = "alchemy_tune"
# The layers, bottom first: a module may import from its own layer and the ones below it, never above.
LAYERS = ("core", "languages", "tasks", "trial", "results", "tuning", "analysis", "cli")
# alchemy_tune/search.py, the file `ray submit` runs: it calls the CLI and nothing imports it
ENTRY = "alchemy_tune.search"
# Third-party packages a layer never imports (layer -> banned top-level names).
BANNED = {
    "core": ("ray", "optuna", "torch", "transformers"),
    "languages": ("ray", "optuna", "torch", "transformers"),
    "tasks": ("ray", "optuna", "torch", "transformers"),
    "trial": ("ray", "optuna"),
    "results": ("ray", "optuna", "torch"),
    "analysis": ("ray", "optuna", "torch"),
}
# The one documented exception: parameter importance uses Optuna's evaluators on a table (no study, no
# search), see analysis/importance.py.
ALLOWED = {("alchemy_tune.analysis.importance", "optuna")}
PRIVATE_RAY = "ray._private"
PRIVATE_RAY_HOME = "alchemy_tune.tuning.cluster"  # Ray has no public API for what it reads there
# Modules whose import_module takes a name from a table or from the user (the registries).
DYNAMIC = {"alchemy_tune.tasks", "alchemy_tune.cli", "alchemy_tune.tuning.trainable", "alchemy_tune.tuning.checks"}

MODULE_PATH = re.compile(ROOT + r"(\.\w+)+(:\w+)?")
"""A string that names a module of the package (a registry's entry), not prose that mentions one."""

Sources = dict[str, tuple[bool, str]]


def package_sources(package: Path = PACKAGE) -> Sources:
    out = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_init = parts[-1] == "__init__"
        if is_init:
            parts = parts[:-1]
        out[".".join(parts)] = (is_init, path.read_text(encoding="utf-8"))
    return out


def _imports(name: str, is_init: bool, text: str, mods: Sources) -> tuple[set[str], set[str], list[str]]:
    """(package modules ``name`` imports, third-party modules it imports, dynamic imports it cannot resolve)."""
    package = name.split(".") if is_init else name.split(".")[:-1]
    found, external, dynamic = set(), set(), []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                target = package[: len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
            else:
                target = (node.module or "").split(".")
                external.add(".".join(target))
            candidates = {".".join(target)} | {".".join(target + [a.name]) for a in node.names}
        elif isinstance(node, ast.Import):
            candidates = {a.name for a in node.names}
            external |= candidates
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_PATH.fullmatch(node.value):
            candidates = {node.value.split(":")[0]}  # a registry's "module:function" string
        elif isinstance(node, ast.Call) and _is_import_module(node.func):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                external.add(arg.value)
                candidates = {arg.value}
            else:
                if name not in DYNAMIC:
                    dynamic.append(f"{name}: importlib.import_module of a computed name (line {node.lineno})")
                continue
        else:
            continue
        found |= {c for c in candidates if c in mods and c != name and c != ROOT
                  and not (mods[c][0] and name.startswith(c + "."))}
    external = {e for e in external if e and e.split(".")[0] != ROOT}
    return found, external, dynamic


def _is_import_module(func: ast.expr) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or \
        (isinstance(func, ast.Name) and func.id in ("import_module", "__import__"))


def graph_of(mods: Sources) -> tuple[dict[str, set[str]], dict[str, set[str]], list[str]]:
    graph, external, dynamic = {}, {}, []
    for name, (is_init, text) in mods.items():
        graph[name], external[name], found = _imports(name, is_init, text, mods)
        dynamic += found
    return graph, external, dynamic


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


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``module -> target`` for every import of a higher layer (the entry and the package root aside)."""
    found = []
    for module, targets in sorted(graph.items()):
        if module in (ENTRY, ROOT) or _layer(module) is None:
            continue
        for target in sorted(targets):
            if _layer(target) is not None and LAYERS.index(_layer(target)) > LAYERS.index(_layer(module)):
                found.append(f"{module} ({_layer(module)}) -> {target} ({_layer(target)})")
    return found


def third_party_problems(external: dict[str, set[str]]) -> list[str]:
    found = []
    for module, names in sorted(external.items()):
        banned = BANNED.get(_layer(module) or "", ())
        for name in sorted(names):
            top = name.split(".")[0]
            if top in banned and (module, top) not in ALLOWED:
                found.append(f"{module} ({_layer(module)}) imports {name}")
            if (name == PRIVATE_RAY or name.startswith(PRIVATE_RAY + ".")) and module != PRIVATE_RAY_HOME:
                found.append(f"{module} imports {name} (Ray internals only in {PRIVATE_RAY_HOME})")
    return found


def layer_problems(mods: Sources) -> list[str]:
    """Every broken rule of the package ``mods``: the one function the package test and the planted tests use."""
    if len(mods) < 10 or not any(ROOT + "." + layer in mods for layer in LAYERS):
        return [f"the package was not found or is nearly empty ({len(mods)} modules): nothing was checked"]
    graph, external, dynamic = graph_of(mods)
    if sum(map(len, graph.values())) < len(mods) // 2:
        return [f"{sum(map(len, graph.values()))} imports among {len(mods)} modules: the graph is not being read"]
    loose = [f"{name} is outside the layers {LAYERS}" for name in mods
             if name not in (ROOT, ENTRY) and _layer(name) is None]
    cycles = [f"import cycle: {' -> '.join(c)}" for c in _cycles(graph)]
    entry = [f"{m} imports the ray-submit entry" for m, targets in graph.items() if ENTRY in targets]
    private = [f"{name} imports private {target}" for name, targets in graph.items() for target in targets
               if target.rsplit(".", 1)[-1].startswith("_") and not target.rsplit(".", 1)[-1].startswith("__")
               and target.rsplit(".", 1)[0] != name.rsplit(".", 1)[0]]
    return loose + cycles + entry + private + upward_imports(graph) + third_party_problems(external) + dynamic


# --------------------------------------------------------------------------- the package
def test_the_package_keeps_every_rule():
    assert layer_problems(package_sources()) == []


def test_analysis_imports_nothing_from_the_search_layer():
    graph, _, _ = graph_of(package_sources())
    assert not [(m, t) for m, targets in graph.items() if _layer(m) == "analysis" for t in targets
                if _layer(t) == "tuning"]


# --------------------------------------------------------------------------- the checks can fail
def _planted(module: str, text: str, *, is_init: bool = False) -> list[str]:
    mods = package_sources()
    before, source = mods.get(module, (is_init, ""))
    mods[module] = (is_init, source + "\n" + text + "\n")
    return layer_problems(mods)


def test_an_empty_package_fails():
    assert layer_problems({}) and "nothing was checked" in layer_problems({})[0]
    assert layer_problems(package_sources(PACKAGE / "does-not-exist"))


def test_a_graph_that_reads_no_import_fails():
    mods = {name: (is_init, "") for name, (is_init, _) in package_sources().items()}
    assert "the graph is not being read" in layer_problems(mods)[0]


def test_an_import_module_of_a_higher_layer_fails():
    found = _planted("alchemy_tune.trial.train",
                     'import importlib\nimportlib.import_module("alchemy_tune.tuning.search")')
    assert "alchemy_tune.trial.train (trial) -> alchemy_tune.tuning.search (tuning)" in found


def test_a_registry_string_of_a_higher_layer_fails():
    found = _planted("alchemy_tune.tasks", 'LOADER = "alchemy_tune.analysis.report:compute"', is_init=True)
    assert "alchemy_tune.tasks (tasks) -> alchemy_tune.analysis.report (analysis)" in found


def test_a_computed_import_module_outside_the_registries_fails():
    found = _planted("alchemy_tune.trial.train", "import importlib\nname = 'x'\nimportlib.import_module(name)")
    assert any("alchemy_tune.trial.train: importlib.import_module of a computed name" in p for p in found)


def test_ray_in_the_trial_layer_fails():
    assert "alchemy_tune.trial.train (trial) imports ray" in _planted("alchemy_tune.trial.train", "import ray")
    found = _planted("alchemy_tune.results.writer", "def f():\n    from optuna import trial")
    assert "alchemy_tune.results.writer (results) imports optuna" in found


def test_torch_in_the_analysis_layer_fails():
    assert "alchemy_tune.analysis.stats (analysis) imports torch" in _planted("alchemy_tune.analysis.stats",
                                                                             "import torch")


def test_ray_internals_outside_the_cluster_module_fail():
    found = _planted("alchemy_tune.tuning.search", "from ray._private import services")
    assert any("alchemy_tune.tuning.search imports ray._private" in p for p in found)
    assert not _planted("alchemy_tune.tuning.cluster", "from ray._private import services")


def test_an_upward_import_statement_and_a_cycle_fail():
    found = _planted("alchemy_tune.core.errors", "from alchemy_tune.cli import main")
    assert "alchemy_tune.core.errors (core) -> alchemy_tune.cli (cli)" in found
    assert any(p.startswith("import cycle:") for p in found)


def test_a_private_module_imported_from_another_package_fails():
    mods = package_sources()
    mods["alchemy_tune.core._hidden"] = (False, "X = 1")
    mods["alchemy_tune.trial.train"] = (False, mods["alchemy_tune.trial.train"][1]
                                        + "\nfrom alchemy_tune.core._hidden import X\n")
    assert "alchemy_tune.trial.train imports private alchemy_tune.core._hidden" in layer_problems(mods)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_unit_tier_refuses_a_subprocess_ray_and_the_real_encoder():
    """This file is in the unit tier (tests/conftest.py): what a unit test must not start fails it."""
    import subprocess

    import pytest
    import ray

    from alchemy_tune.trial import encoder

    for start in (lambda: subprocess.run(["true"]), lambda: ray.init(num_cpus=1), encoder.bundled_e5):
        with pytest.raises(AssertionError, match="a unit-tier test started"):
            start()
