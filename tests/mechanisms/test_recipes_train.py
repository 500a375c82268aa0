"""Every shipped single-mechanism and baseline recipe trains a few steps on the tiny model."""

import json
import math

import pytest

from unisd.runs.launch import train

RECIPES = [
    "vanilla",
    "sdft",
    "opsd",
    "gkd",
    "ssd",
    "sft",
    "unisd-agreement",
    "unisd-agreement-seq",
    "unisd-ema",
    "unisd-contrastive",
    "unisd-feature",
    "unisd-feature-only",
    "unisd-clip",
    "unisd-star",
    "unisd-star-reference",
    "token-clip",
]


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_trains(name, make_recipe, tmp_path):
    extra = ["components.ema.every=1"] if "ema" in name or "star" in name else []
    if "agreement" in name or "star" in name:
        extra.append("components.agreement.contexts={type: retrieval, k: 2, lexical: true}")
    recipe = make_recipe(name, "training.max_steps=2", *extra)
    summary = train(recipe, tmp_path / "run")
    rows = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["loss/total"]) for r in rows)
    assert (tmp_path / "run" / "final" / "merged" / "config.json").exists()
    assert summary["steps"] == 2


@pytest.fixture
def rows_sampled(monkeypatch):
    """The number of prompt rows of every ``generate`` call of the HF backend."""
    from unisd_plugins.generation.hf import HFGenerate

    rows: list[int] = []
    real = HFGenerate.generate

    def counting(self, model, prompt_ids, *a, **kw):
        rows.append(prompt_ids.shape[0])
        return real(self, model, prompt_ids, *a, **kw)

    monkeypatch.setattr(HFGenerate, "generate", counting)
    return rows


def test_gkd_samples_only_its_on_policy_rows(make_recipe, tmp_path, rows_sampled):
    train(make_recipe("gkd", "training.max_steps=2", "objective.on_policy_fraction=0.0"), tmp_path / "off")
    assert rows_sampled == []  # all gold: nothing generated
    train(make_recipe("gkd", "training.max_steps=3", "objective.on_policy_fraction=0.5"), tmp_path / "mixed")
    assert 0 < sum(rows_sampled) < 3 * 2 * 2  # some rows sampled, the gold rows not


@pytest.mark.parametrize(
    "setting",
    [
        "components=[{type: feature_matching, weight: 0.1, layers: [lm_head_input]}, {type: frozen_copy}]",
        "lora.enabled=false",
    ],
)
def test_feature_matching_hooks_the_model_the_teacher_runs(setting, make_recipe, tmp_path):
    # the teacher's features used to be looked up on the student's hooks: KeyError 'lm_head_input'
    recipe = make_recipe("unisd-feature", "training.max_steps=1", "training.grad_accum=1", setting)
    train(recipe, tmp_path / "run")
    rows = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert math.isfinite(rows[0]["loss/total"]) and "loss/feature_matching" in rows[0]


def test_num_generations_samples_several_completions_per_prompt(make_recipe, tmp_path, rows_sampled):
    from unisd.errors import UserError
    from unisd.recipe import RecipeError

    train(
        make_recipe("vanilla", "training.max_steps=1", "training.grad_accum=1", "generation.num_generations=3"),
        tmp_path / "g",
    )
    assert rows_sampled == [2 * 3]  # batch_size 2 prompts × 3 completions each
    with pytest.raises((RecipeError, UserError, ValueError), match="num_generations"):
        make_recipe("sft", "generation.num_generations=2")
