"""Named components: one type twice (two feature-matching terms on different layers, each with its
own weight, logs, checkpoint state and --set address), with no core edit."""

from __future__ import annotations

import json
import logging

import pytest

from unisd.runs.launch import train
from unisd.recipe import RecipeError

TWO_FEATURES = (
    "components=[{type: feature_matching, name: early, layers: [0], weight: 0.1, projection: true}, "
    "{type: feature_matching, name: late, layers: [-1], weight: 0.3}]"
)


def test_two_feature_matching_terms_train_as_separate_terms(make_recipe, tmp_path, caplog):
    recipe = make_recipe("vanilla", TWO_FEATURES, "training.max_steps=2")
    with caplog.at_level(logging.INFO, logger="unisd.train"):
        train(recipe, tmp_path / "run")
    assert "loss: L = 1·forward_kl + 0.1·early + 0.3·late" in caplog.text
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        assert {"loss/early", "loss/late"} <= set(row) and row["loss/early"] != row["loss/late"]
        expected = row["loss/forward_kl"] + 0.1 * row["loss/early"] + 0.3 * row["loss/late"]
        assert row["loss/total"] == pytest.approx(expected, rel=1e-5)
        assert any(k.startswith("early/") for k in row) and any(k.startswith("late/") for k in row)
    # the projection of "early" is checkpointed under its own name
    import torch

    from unisd.engine import checkpoint as ckpt

    state = torch.load(ckpt.latest_complete(tmp_path / "run" / "checkpoints") / "components.pt", weights_only=False)
    assert set(state) == {"early"}


def test_one_type_twice_needs_names(make_recipe):
    with pytest.raises(RecipeError, match="feature_matching listed more than once; give each a name"):
        make_recipe("vanilla", "components=[{type: feature_matching}, {type: feature_matching, layers: [0]}]")


def test_set_addresses_a_component_by_its_name(make_recipe):
    recipe = make_recipe("vanilla", TWO_FEATURES, "components.late.weight=0.5")
    assert [(c.name, c.weight) for c in recipe.components] == [("early", 0.1), ("late", 0.5)]
    with pytest.raises(RecipeError, match=r"2 items have type 'feature_matching'.*by its name: \['early', 'late'\]"):
        make_recipe("vanilla", TWO_FEATURES, "components.feature_matching.weight=0.5")


def test_the_divergence_is_a_named_term(make_recipe, tmp_path, caplog):
    """The divergence is logged, weighted and described under its name like any other term."""
    recipe = make_recipe(
        "vanilla",
        "divergence={type: reverse_kl, name: rkl, weight: 0.5}",
        "components=[{type: feature_matching, layers: [-1], weight: 0.2}]",
        "training.max_steps=1",
    )
    with caplog.at_level(logging.INFO, logger="unisd.train"):
        train(recipe, tmp_path / "run")
    assert "loss: L = 0.5·rkl + 0.2·feature_matching" in caplog.text
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert "loss/divergence" not in row and "loss/reverse_kl" not in row
    assert row["loss/total"] == pytest.approx(0.5 * row["loss/rkl"] + 0.2 * row["loss/feature_matching"], rel=1e-5)


def test_a_component_may_not_take_the_divergences_name(make_recipe):
    with pytest.raises(RecipeError, match="'forward_kl' is also the name of the divergence's loss term"):
        make_recipe("vanilla", "components=[{type: feature_matching, name: forward_kl}]")
