"""``generation.rollout_per_step``: one generation call for all the micro-batches of an optimizer
step, giving each micro-batch the rollout it would have sampled itself (greedy: the same tokens),
for every objective that samples (on-policy, GKD's partial sampling, SSD's base weights)."""

from __future__ import annotations

import json

import pytest
import torch

from unisd.engine.batching import tokenize_prompts
from unisd.runs.launch import train
from unisd.engine.rollout import sample, sample_together
from unisd.models.memory import memory_breakdown
from unisd_plugins.generation.hf import HFGenerate


def load_tiny(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("max_rows", [None, 3, 1])
def test_sampled_together_equals_sampled_apart_when_greedy(tiny_model_dir, max_rows):
    model, tok = load_tiny(tiny_model_dir)
    gen_cfg = type(
        "G",
        (),
        {
            "temperature": 0.0,
            "top_p": 1.0,
            "top_k": None,
            "max_new_tokens": 6,
            "mask_truncated": True,
            "num_generations": 1,
        },
    )()
    backend = HFGenerate(HFGenerate.Config(type="hf"))
    batches = [
        tokenize_prompts(tok, ["What is 2 plus 3?", "Name a colour."]),
        tokenize_prompts(tok, ["Count to three, please, slowly and clearly.", "Hi", "Say yes."]),
    ]
    apart = [sample(backend, model, tok, p, gen_cfg) for p in batches]
    together = sample_together(backend, model, tok, batches, gen_cfg, max_rows=max_rows)
    for a, b in zip(apart, together, strict=True):
        for field in ("ids", "present", "loss_mask", "truncated"):
            assert torch.equal(getattr(a, field).cpu(), getattr(b, field).cpu()), field


class CountingCalls:
    """Counts the generation backend's ``generate`` calls and the rows each decoded."""

    def __init__(self, monkeypatch):
        self.rows: list[int] = []
        original = HFGenerate.generate

        def generate(backend, model, ids, *args, **kwargs):
            self.rows.append(int(ids.shape[0]))
            return original(backend, model, ids, *args, **kwargs)

        monkeypatch.setattr(HFGenerate, "generate", generate)


@pytest.mark.parametrize(
    "recipe_name, extra", [("vanilla", ()), ("gkd", ("objective.on_policy_fraction=0.5",)), ("ssd", ())]
)
def test_one_call_per_step_gives_the_same_greedy_run(make_recipe, tmp_path, monkeypatch, recipe_name, extra):
    common = [
        "generation.temperature=0",
        "lora.dropout=0",
        "training.max_steps=2",
        "checkpoint.every_steps=100",
        "training.grad_accum=3",
        *extra,
    ]
    calls = {}
    for option in ("false", "true"):
        counter = CountingCalls(monkeypatch)
        train(make_recipe(recipe_name, *common, f"generation.rollout_per_step={option}"), tmp_path / option)
        calls[option] = counter.rows
        monkeypatch.undo()
    off, on = _rows(tmp_path / "false" / "metrics.jsonl"), _rows(tmp_path / "true" / "metrics.jsonl")
    for a, b in zip(off, on, strict=True):
        assert a["loss/total"] == pytest.approx(b["loss/total"], rel=1e-5, abs=1e-7)
        assert a["completion/length"] == b["completion/length"]
    if recipe_name == "gkd":  # a micro-batch may sample all, some or none of its rows
        assert len(calls["true"]) <= 2 < len(calls["false"]) and sum(calls["true"]) == sum(calls["false"])
    else:
        assert calls["false"] == [2] * 6 and calls["true"] == [6, 6]


def test_max_batch_rows_caps_each_call(make_recipe, tmp_path, monkeypatch):
    counter = CountingCalls(monkeypatch)
    recipe = make_recipe(
        "vanilla",
        "generation.rollout_per_step=true",
        "generation.max_batch_rows=4",
        "training.grad_accum=3",
        "training.max_steps=1",
        "checkpoint.every_steps=100",
    )
    train(recipe, tmp_path / "run")
    assert counter.rows == [4, 2]


def test_sft_never_plans_a_rollout(make_recipe, tmp_path, monkeypatch):
    counter = CountingCalls(monkeypatch)
    train(
        make_recipe("sft", "generation.rollout_per_step=true", "training.max_steps=1", "checkpoint.every_steps=100"),
        tmp_path / "run",
    )
    assert counter.rows == []


def test_the_memory_check_counts_the_rows_decoded_together(tiny_model_dir):
    model, _ = load_tiny(tiny_model_dir)
    alone = memory_breakdown(model, 2, 64)
    together = memory_breakdown(model, 2, 64, rollout_rows=512)
    assert "rollout_kv_cache" not in alone and together["rollout_kv_cache"] > 0
