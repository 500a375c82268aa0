"""Objectives are components: the built-in ones come from the objectives plugin, and a new one
(the docs' sampled-token reverse KL) trains from a plugin module with no core edit."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from unisd.plugins import get_host, reset_host

PLUGINS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


@pytest.fixture
def docs_objective(tmp_path, monkeypatch):
    """The ``Objective`` example of docs/plugins.md, as a plugin module named by UNISD_PLUGINS."""
    section = PLUGINS_PAGE.read_text(encoding="utf-8").split("### `Objective`", 1)[1].split("### `Divergence`", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[-1]
    (tmp_path / "docs_objective_plugin.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("UNISD_PLUGINS", "docs_objective_plugin")
    reset_host()
    yield get_host()
    sys.modules.pop("docs_objective_plugin", None)
    monkeypatch.delenv("UNISD_PLUGINS")
    reset_host()


def test_a_new_objective_trains_from_a_plugin(docs_objective, make_recipe, tmp_path, caplog):
    from unisd.runs.launch import train

    assert docs_objective.registries.objectives.origin("sampled_reverse_kl") != "unisd"
    recipe = make_recipe("vanilla", "objective={type: sampled_reverse_kl}", "training.max_steps=2")
    train(recipe, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all("loss/sampled_reverse_kl" in r and r["loss/total"] == r["loss/sampled_reverse_kl"] for r in rows)
    assert all("completion/length" in r for r in rows)


def test_builtin_objectives_are_registered_components():
    from unisd.components.kinds import Objective

    objectives = get_host().registries.objectives
    assert set(objectives.names()) >= {"distill", "sft", "ssd"}
    assert all(
        issubclass(objectives.get(n), Objective) and objectives.origin(n) == "unisd" for n in ("distill", "sft", "ssd")
    )


def test_an_objective_that_never_samples_refuses_several_generations(make_recipe):
    from unisd.recipe import RecipeError

    with pytest.raises(RecipeError, match="objective 'sft' trains on the gold completion only"):
        make_recipe("sft", "generation.num_generations=2")
