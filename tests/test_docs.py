"""The documentation keeps up with the code.

* every hook in :mod:`unisd.hookspecs` has a section on the plugin-writing page;
* every registry (extension point) and its protocol are documented there;
* every built-in component and shipped recipe is named in the hand-written pages;
* every config field of the five mechanisms is in its page's field table;
* the generated reference pages cover every recipe field, recipe and command;
* the plugin example on the plugin-writing page runs;
* links between pages and the mkdocs nav point at files that exist;
* README and ``.ci/run`` install the same thing.

``mkdocs build --strict`` itself runs in CI (``.ci/run``), after ``scripts/gen_docs.py``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import types
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PLUGINS_PAGE = DOCS / "plugins.md"
GENERATED = {"reference/recipe.md", "reference/recipes.md", "reference/cli.md"}
MECHANISM_PAGES = {
    "agreement.md": "agreement",
    "ema.md": "ema",
    "contrastive.md": "contrastive",
    "feature-matching.md": "feature_matching",
    "clipping.md": "clip",
}

_FENCE = re.compile(r"^(```|~~~)")


def headings(text: str) -> list[str]:
    """Heading texts (backticks removed) outside fenced code blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            out.append(line.lstrip("#").strip().replace("`", ""))
    return out


def hand_written() -> dict[str, str]:
    pages = {}
    for p in sorted(DOCS.rglob("*.md")):
        rel = p.relative_to(DOCS).as_posix()
        if rel not in GENERATED:
            pages[rel] = p.read_text(encoding="utf-8")
    return pages


@pytest.fixture(scope="module")
def gen_docs():
    """scripts/gen_docs.py as a module."""
    spec = importlib.util.spec_from_file_location("unisd_gen_docs", REPO / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def builtin_host(gen_docs):
    """A plugin host with only UniSD's own plugins (third-party ones may be installed)."""
    from unisd.plugins import PluginHost

    with gen_docs.builtin_only_environment():
        yield PluginHost().load()


@pytest.fixture(scope="module")
def generated(gen_docs) -> dict[str, str]:
    return gen_docs.generate()


# -- plugin-writing page -----------------------------------------------------------------------------
def test_every_hookspec_has_a_section() -> None:
    from unisd import hookspecs

    specs = sorted(n for n, f in vars(hookspecs).items() if callable(f) and hasattr(f, f"{hookspecs.PROJECT}_spec"))
    assert "unisd_register" in specs and len(specs) >= 6
    titles = headings(PLUGINS_PAGE.read_text(encoding="utf-8"))
    missing = [s for s in specs if s not in titles]
    assert not missing, f"docs/plugins.md needs a section (a heading) for each hook: {missing}"


def test_every_registry_and_protocol_is_documented() -> None:
    from unisd.registries import Registries

    text = PLUGINS_PAGE.read_text(encoding="utf-8")
    titles = headings(text)
    for attr, reg in Registries().all().items():
        assert f"`registry.{attr}`" in text, f"registry.{attr} is missing from the registries table"
        assert f"`{reg.kind}`" in text, f"kind {reg.kind!r} is missing from the registries table"
        if reg.base is not None:
            assert reg.base.__name__ in titles, f"docs/plugins.md needs a section for the protocol {reg.base.__name__}"
    for env in (
        "UNISD_DISABLE_PLUGIN_AUTOLOAD",
        "UNISD_PLUGINS",
        "UNISD_BLOCK_PLUGINS",
        "UNISD_SKIP_BROKEN_PLUGINS",
        "UNISD_TRACE_PLUGINS",
    ):
        assert f"`{env}" in text, f"environment variable {env} is not documented"


def test_plugin_example_runs() -> None:
    from unisd.plugins import PluginHost
    from unisd.recipe import recipe_model

    text = PLUGINS_PAGE.read_text(encoding="utf-8")
    section = text.split("## The smallest plugin", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    module = types.ModuleType("docs_smallest_plugin")
    exec(compile(code, "docs/plugins.md", "exec"), module.__dict__)

    host = PluginHost()
    host.register_plugin(module, "docs_smallest_plugin", package="docs-example")
    host.load()
    divs = host.registries.divergences
    assert divs.origin("total_variation") == "docs-example"
    recipe = recipe_model(host.registries).model_validate({"divergence": {"type": "total_variation"}})
    div = divs.get("total_variation")(recipe.divergence)
    p = torch.log(torch.tensor([[[0.5, 0.5, 1e-30]], [[1.0, 1e-30, 1e-30]]]))
    q = torch.log(torch.tensor([[[0.5, 0.5, 1e-30]], [[1e-30, 1e-30, 1.0]]]))
    torch.testing.assert_close(div.per_token(p, q), torch.tensor([[0.0], [1.0]]))
    assert div.upper_bound == 1.0


# -- every component, recipe and mechanism field ---------------------------------------------------
def test_every_builtin_component_and_recipe_is_named(builtin_host) -> None:
    corpus = "\n".join(hand_written().values())
    missing = [
        f"{reg.kind} {name}" for reg in builtin_host.registries for name in reg.names() if f"`{name}`" not in corpus
    ]
    assert not missing, f"built-ins not named in any hand-written docs page: {missing}"


@pytest.mark.parametrize("page, component", sorted(MECHANISM_PAGES.items()))
def test_mechanism_page_lists_every_config_field(builtin_host, page: str, component: str) -> None:
    from unisd.components.base import config_model_of
    from unisd.registries import COMPONENT_KINDS

    text = (DOCS / "mechanisms" / page).read_text(encoding="utf-8")
    regs = [getattr(builtin_host.registries, k) for k in COMPONENT_KINDS]
    cls = next(r.get(component) for r in regs if component in r)
    common = ("type", "name")  # every component's (docs/plugins.md, "One type twice")
    fields = [f for f in config_model_of(cls).model_fields if f not in common]
    missing = [f for f in fields if f"| `{f}` |" not in text]
    assert not missing, f"docs/mechanisms/{page}: config fields of {component!r} without a table row: {missing}"
    for section in ("## What", "## Why", "## Config fields", "## Cost", "## Reference vs fixed behaviour"):
        assert section in text, f"docs/mechanisms/{page} lacks the section {section!r}"
    if component == "agreement":  # the context builders' own fields are documented there too
        builders = builtin_host.registries.context_builders
        for name in builders.names():
            for f in builders.get(name).Config.model_fields:
                if f in common:
                    continue
                assert f"`{f}`" in text, f"context builder {name!r} field {f!r} is not in docs/mechanisms/{page}"


# -- generated reference ---------------------------------------------------------------------------
def test_generated_reference_covers_everything(builtin_host, generated) -> None:
    from unisd.cli.main import COMMANDS
    from unisd.components.base import config_model_of
    from unisd.recipe.sections import DataConfig, OptimConfig, TrainingConfig
    from unisd.registries import COMPONENT_KINDS

    reg = builtin_host.registries
    recipe_titles = headings(generated["recipe.md"])
    for kind in (*COMPONENT_KINDS, "divergences", "datasets"):
        for name in getattr(reg, kind).names():
            assert name in recipe_titles, f"recipe reference lacks {kind} {name!r}"
            for field in config_model_of(getattr(reg, kind).get(name)).model_fields:
                assert f"| `{field}` |" in generated["recipe.md"], f"recipe reference lacks field {field!r} of {name!r}"
    for section in (DataConfig, OptimConfig, TrainingConfig):
        for field in section.model_fields:
            assert f"| `{field}` |" in generated["recipe.md"]
    recipes_titles = headings(generated["recipes.md"])
    assert [n for n in reg.recipes.names() if n not in recipes_titles] == []
    cli_titles = headings(generated["cli.md"])
    for cmd in COMMANDS:
        assert f"unisd {cmd}" in cli_titles, f"CLI reference lacks 'unisd {cmd}'"
    for sub in ("unisd plugins list", "unisd recipe validate", "unisd recipe schema", "unisd recipe show"):
        assert sub in cli_titles
    assert "agreement_mad" not in generated["recipe.md"]  # third-party plugins stay out of the reference


# -- links, nav, README and CI -------------------------------------------------------------------------
_LINK = re.compile(r"\]\(([^)#\s]+\.md)(#[^)]*)?\)")


def _exists(rel: str) -> bool:
    return rel in GENERATED or (DOCS / rel).is_file()


def test_links_and_nav_point_at_pages() -> None:
    bad = []
    for rel, text in hand_written().items():
        for target, _ in _LINK.findall(text):
            if "://" in target:
                continue
            resolved = os.path.normpath(os.path.join(os.path.dirname(rel), target)).replace(os.sep, "/")
            if not _exists(resolved):
                bad.append(f"{rel} -> {target}")
    assert not bad, f"links to missing pages: {bad}"

    def files(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            for item in node:
                yield from files(item)
        elif isinstance(node, dict):
            for v in node.values():
                yield from files(v)

    nav = list(files(yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]))
    assert [f for f in nav if not _exists(f)] == []
    assert set(GENERATED) <= set(nav)
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")} | GENERATED
    assert sorted(on_disk - set(nav)) == [], "pages missing from the mkdocs nav (mkdocs.yml)"


def test_readme_and_ci_install_the_same_thing() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    fresh = next((line for line in readme.splitlines() if line.startswith("python3 -m venv .venv && ")), None)
    assert fresh, "README has no fresh-machine line starting 'python3 -m venv .venv && '"
    installs = [part.strip() for part in fresh.split("&&") if part.strip().startswith(".venv/bin/pip install")]
    assert installs and "'torch==" in installs[0], "the README install line must pin torch"
    for part in installs:
        assert part in ci, f".ci/run must run the README's install command: {part}"
    assert '.venv/bin/pytest -m "not slow"' in readme and '.venv/bin/pytest -m "not slow"' in ci
    assert "set -euo pipefail" in ci and os.access(REPO / ".ci" / "run", os.X_OK)
