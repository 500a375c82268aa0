"""estimate_memory / check_fits: sanity of the rough training-memory estimate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from unisd.models import memory
from unisd.models.errors import InsufficientMemoryError
from unisd.models.memory import available_memory, check_fits, estimate_memory, memory_breakdown
from unisd.recipe.sections import LoraConfig, ModelConfig


@pytest.fixture(scope="module")
def smollm_shaped() -> torch.nn.Module:
    """SmolLM2-135M's architecture on the meta device (no weights)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        tie_word_embeddings=True,
    )
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg)


def test_estimate_grows_with_batch_and_length(smollm_shaped) -> None:
    base = estimate_memory(smollm_shaped, 1, 256)
    assert estimate_memory(smollm_shaped, 2, 256) > base
    assert estimate_memory(smollm_shaped, 1, 512) > base
    assert estimate_memory(smollm_shaped, 4, 512, gradient_checkpointing=True) < estimate_memory(smollm_shaped, 4, 512)


def test_smollm2_magnitude(smollm_shaped) -> None:
    parts = memory_breakdown(smollm_shaped, 4, 512, lora=True)
    assert 0.45 * 2**30 < parts["weights"] < 0.6 * 2**30  # ~135M fp32 parameters
    total = sum(parts.values())
    assert 2 * 2**30 < total < 16 * 2**30
    full = memory_breakdown(smollm_shaped, 4, 512, lora=False)
    assert full["trainable_state"] > 5 * parts["trainable_state"]


def test_lora_config_is_accepted(smollm_shaped) -> None:
    assert estimate_memory(smollm_shaped, 2, 128, LoraConfig(enabled=False)) == estimate_memory(
        smollm_shaped, 2, 128, False
    )
    assert estimate_memory(smollm_shaped, 2, 128, LoraConfig(r=8)) < estimate_memory(
        smollm_shaped, 2, 128, LoraConfig(r=64)
    )


def test_model_config_matches_live_model(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    live = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert estimate_memory(ModelConfig(name_or_path=str(tiny_model_dir)), 2, 64) == estimate_memory(live, 2, 64)


def test_peft_wrapped_model_counts_only_adapters(tiny_model_dir: Path) -> None:
    import peft
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    wrapped = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    n_trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    assert memory_breakdown(wrapped, 1, 16)["trainable_state"] == 12 * n_trainable


def test_check_fits(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = ModelConfig(name_or_path=str(tiny_model_dir))
    assert available_memory() > 0
    assert check_fits(cfg, 1, 32) == estimate_memory(cfg, 1, 32)
    monkeypatch.setattr(memory, "available_memory", lambda device=None: 1024)
    with pytest.raises(InsufficientMemoryError, match=r"Reduce training.batch_size"):
        check_fits(cfg, 1, 32)
