"""Student construction (LoRA or full fine-tuning), optimizer and learning-rate schedule."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch

from unisd.models.wrapping import (  # noqa: F401 (re-exported here for one release)
    adapter_merged,
    base_model,
    trainable_parameters,
    unwrap,
)

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel

log = logging.getLogger("unisd.model")


def build_student(model: PreTrainedModel, recipe) -> torch.nn.Module:
    """Wrap ``model`` with a LoRA adapter (peft) or make every parameter trainable."""
    lora = recipe.lora
    if recipe.training.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if not lora.enabled:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in lora.target_modules if t not in present]
    if missing:
        raise ValueError(
            f"lora.target_modules {missing} match no module of {type(model).__name__}; "
            f"module names include {sorted(present)[:30]}"
        )
    cfg = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        bias="none",
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, cfg)
    if recipe.training.gradient_checkpointing:
        peft_model.enable_input_require_grads()
    return peft_model


def build_optimizer(model: torch.nn.Module, recipe, total_steps: int, extra_params=()):
    """AdamW over the model's trainable parameters (plus components' own, e.g. a feature
    projection) and the recipe's schedule with warm-up."""
    from transformers import get_scheduler

    o = recipe.optim
    params = list(trainable_parameters(model).values()) + list(extra_params)
    if not params:
        raise ValueError("the model has no trainable parameters (check lora.target_modules)")
    optimizer = torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)
    warmup = int(round(o.warmup_ratio * total_steps))
    name = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}[o.scheduler]
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=max(total_steps, 1))
    return optimizer, scheduler
