"""The real embedded model (SmolLM2-135M-Instruct): a few self-distillation steps, and one composed
UniSD* step with all five mechanisms. Slow: CPU generation with a 135M model."""

from __future__ import annotations

import json
import math

import pytest
import torch

from unisd.runs.launch import train
from unisd.recipe import load_recipe

pytestmark = pytest.mark.slow

SMALL = [
    "generation.max_new_tokens=12",
    "training.batch_size=2",
    "training.grad_accum=1",
    "evaluation.heldout=0",
    "logging.progress_bar=false",
    "data.dataset.size=16",
    "checkpoint.every_steps=100",
]


def _trainable(run_dir):
    from safetensors.torch import load_file

    return load_file(str(run_dir / "final" / "adapter" / "adapter_model.safetensors"))


def test_real_model_sdft_steps_change_weights(real_model_dir, tmp_path):
    recipe = load_recipe("demo", [*SMALL, "training.max_steps=2", "optim.lr=1e-3"])
    summary = train(recipe, tmp_path / "run")
    rows = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(math.isfinite(r["loss/total"]) and r["loss/total"] > 0 for r in rows)
    weights = _trainable(tmp_path / "run")
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in weights.items())  # B starts at zero
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(summary["model"]["merged"])
    assert merged.config.vocab_size > 1000 and not any(torch.isnan(p).any() for p in merged.parameters())


def test_real_model_unisd_star_step(real_model_dir, tmp_path):
    recipe = load_recipe(
        "unisd-star",
        [
            *SMALL,
            "model.name_or_path=smollm2-135m-instruct",
            "training.max_steps=1",
            "data.dataset={type: reasoning_gym, task: chain_sum, size: 16}",
            "components.agreement.contexts={type: retrieval, k: 3, lexical: true}",
            "components.ema.every=1",
        ],
    )
    train(recipe, tmp_path / "run")
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    for term in (f"loss/{recipe.divergence.type}", "loss/contrastive", "loss/feature_matching", "loss/total"):
        assert math.isfinite(row[term]), term
    assert 0 < row["agreement/weight_mean"] <= 1 and "clip/fraction" in row
