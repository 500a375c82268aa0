"""The import graph of ``unisd/`` has no cycle, counting every import: module level, inside
functions, and type-only ones under ``TYPE_CHECKING``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import unisd

PACKAGE = Path(unisd.__file__).parent


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, mods: dict[str, Path]) -> set[str]:
    """The modules of ``unisd`` that ``node`` imports (``from P import m``: the submodule ``P.m``
    when it is one, else ``P``; a package's own ``__init__`` only when a name is taken from it)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in mods}
    base = node.module or ""
    if node.level:
        pkg = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        pkg = pkg[: len(pkg) - node.level + 1]
        base = ".".join(pkg + ([base] if base else []))
    out = set()
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        out.add(sub if sub in mods else base)
    return {m for m in out if m in mods}


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _targets(name, path, node, mods)
        graph[name] = edges - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_unisd_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 50  # the walk saw the package
    found = cycles(graph)
    detail = "; ".join(
        " ↔ ".join(c) + " (" + ", ".join(f"{v} → {sorted(graph[v] & set(c))}" for v in c) + ")" for c in found
    )
    assert not found, f"import cycles in unisd/: {detail}"


def test_the_cycle_finder_finds_a_type_only_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    src = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from unisd.engine.run import Run\n"
    node = next(n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.ImportFrom) and n.module.startswith("unisd"))
    assert _targets("unisd.components.base", PACKAGE / "components" / "base.py", node, _modules()) == {
        "unisd.engine.run"
    }


def test_the_bottom_layer_imports_nothing_above_it():
    """components/, hookspecs, registry and errors name no engine, recipe, plugin host or evaluation module."""
    graph = import_graph()
    bottom = [
        m
        for m in graph
        if m.startswith("unisd.components") or m in ("unisd.hookspecs", "unisd.registry", "unisd.errors")
    ]
    upper = ("unisd.engine", "unisd.recipe", "unisd.plugins", "unisd.evaluation", "unisd.cli")
    offending = {m: sorted(t for t in graph[m] if t.startswith(upper)) for m in bottom}
    assert not {m: t for m, t in offending.items() if t}


#: record slots the built-in components declare (they have no registry to list them from)
PLUGIN_SLOTS = {"aux_contexts", "negative_prompt", "negative_reference", "frozen_copy"}
#: registered built-in names that are also ordinary words of the core, each meaning something else there
HOMONYMS = {
    "base": "the base model (replicate's untrained row, inspect's base-weights prompt), not the teacher 'base'",
    "student": "the student prompt's label in inspect, not the teacher provider 'student'",
    "jsd": "the retention statistic (JSD to the base model), not the divergence 'jsd'",
    "mechanisms": "the summary's key for mechanism activity, not the experiment 'mechanisms'",
    "jsonl": "unisd train --data FILE.jsonl reads a records file with the records adapter (a documented shortcut)",
}


def _builtin_names() -> set[str]:
    """Every name a built-in plugin registers (origin: the unisd distribution), in every registry."""
    from unisd.plugins import BUILTIN_DISTRIBUTION, get_host

    registries = vars(get_host().registries)
    names = {n for reg in registries.values() for n in reg.names() if reg.origin(n) == BUILTIN_DISTRIBUTION}
    assert {"distill", "forward_kl", "reasoning_gym", "hf", "unisd-six", "demo", "sft", "ema"} <= names
    return names


def test_the_core_code_names_no_plugin_slot_or_component():
    """No string in the code of ``unisd/`` (docstrings and comments aside) names what a built-in
    plugin registers (a component, objective, divergence, dataset, backend, evaluator, recipe or
    experiment) or a built-in record slot: the core reaches them only through registries (defaults
    by ``default=True``) and requirements."""
    words = (_builtin_names() | PLUGIN_SLOTS) - set(HOMONYMS)
    found = []
    for module, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = {
            id(n.body[0].value)
            for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body
            and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docs
                and node.value in words
            ):
                found.append(f"{module}:{node.lineno}: {node.value!r}")
    assert not found, found


def test_the_built_in_plugins_use_only_the_public_api():
    """Built-in plugins import ``unisd``, ``unisd.api`` and ``unisd.components`` alone, as a third-party
    plugin should (docs/plugins.md): the rest of ``unisd`` may move between releases."""
    import unisd_plugins

    public = ("unisd", "unisd.api", "unisd.components")
    found = []
    for path in Path(unisd_plugins.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.module and not node.level
                else []
            )
            for name in names:
                if (name == "unisd" or name.startswith("unisd.")) and not (
                    name in public or name.startswith("unisd.components.")
                ):
                    found.append(f"{path.name}:{node.lineno}: {name}")
    assert not found, found


def test_the_plugin_api_names_resolve():
    import unisd.api

    for name in unisd.api.__all__:
        assert getattr(unisd.api, name) is not None, name


def test_the_plugin_api_lists_what_it_loads():
    import unisd.api

    assert sorted(unisd.api.__all__) == sorted(unisd.api._WHERE)


ARCHITECTURE = PACKAGE.parent / "docs" / "concepts" / "architecture.md"


def _layers() -> list[list[str]]:
    """The layer table of docs/concepts/architecture.md: per row, the packages and modules it names."""
    text = ARCHITECTURE.read_text(encoding="utf-8").split("## Layers", 1)[1]
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2:3].isdigit()]
    return [re.findall(r"`(unisd[\w.]*)`", row.split("|")[2]) for row in rows]


def _alias(path: Path) -> bool:
    """A module left at an old path: it only makes itself the moved module."""
    return "sys.modules[__name__] = _moved" in path.read_text(encoding="utf-8")


def _layer_of(module: str, layers: list[list[str]]) -> int | None:
    best: tuple[int, int] | None = None
    for i, names in enumerate(layers):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > best[1]):
                best = (i, len(name))
    return best[0] if best else None


def test_every_import_goes_down_the_layers_the_architecture_page_draws():
    layers = _layers()
    assert len(layers) >= 8, "the layer table of docs/concepts/architecture.md was not found"
    graph, mods = import_graph(), _modules()
    unplaced = [m for m in graph if not _alias(mods[m]) and _layer_of(m, layers) is None]
    assert not unplaced, f"modules no row of the layer table places: {unplaced}"
    upward = []
    for module, targets in sorted(graph.items()):
        if _alias(mods[module]):
            continue
        own = _layer_of(module, layers)
        for target in sorted(targets):
            layer = _layer_of(target, layers)
            if layer is not None and own is not None and layer > own:
                upward.append(f"{module} (layer {own + 1}) imports {target} (layer {layer + 1})")
    assert not upward, "\n".join(upward)


def test_the_sandbox_imports_nothing_else_of_unisd():
    graph = import_graph()
    outside = {
        m: sorted(t for t in targets if not t.startswith("unisd.sandbox"))
        for m, targets in graph.items()
        if m.startswith("unisd.sandbox")
    }
    assert not {m: t for m, t in outside.items() if t}, outside


def test_the_layer_finder_sees_an_upward_import():
    layers = [["unisd.a"], ["unisd.b"]]
    assert (
        _layer_of("unisd.a.x", layers) == 0
        and _layer_of("unisd.b", layers) == 1
        and _layer_of("unisd.c", layers) is None
    )
