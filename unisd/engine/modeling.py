"""Student construction (LoRA or full fine-tuning), optimizer and learning-rate schedule."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

import torch

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


def trainable_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


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


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module under DDP/accelerate wrappers (peft wrapper kept)."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return model


def base_model(model: torch.nn.Module) -> PreTrainedModel:
    """The transformers model under DDP/accelerate and peft wrappers (module paths are relative to it)."""
    model = unwrap(model)
    get_base_model = getattr(model, "get_base_model", None)  # a peft model's
    return cast("PreTrainedModel", get_base_model() if get_base_model is not None else model)


@contextmanager
def adapter_merged(model: torch.nn.Module) -> Iterator[bool]:
    """Run ``model`` with its LoRA deltas folded into the base weights, exactly undone afterwards.

    Each LoRA linear's base weight is replaced by a new tensor ``W + ΔW`` while the adapter path is
    switched off, and the original tensor object is put back on exit (no ``W + ΔW − ΔW`` rounding
    drift, so the base teacher and resumed runs stay bit-exact). Decoding then does one matmul per
    layer instead of three. Yields whether anything was merged (False without a LoRA adapter, or
    with adapter layers other than linear ones, which are left as they are).
    """
    try:
        from peft.tuners.lora import Linear as LoraLinear
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # pragma: no cover - peft is a dependency
        yield False
        return
    base = unwrap(model)
    layers = [m for m in base.modules() if isinstance(m, BaseTunerLayer)]
    disable_adapter = getattr(base, "disable_adapter", None)  # peft's context manager
    if (
        not layers
        or disable_adapter is None
        or any(type(m) is not LoraLinear for m in layers)
        or any(m.disable_adapters for m in layers)
    ):  # already running the base weights (SSD's sampler)
        yield False
        return
    originals = []
    with torch.no_grad():
        for layer in cast("list[LoraLinear]", layers):  # each one's type is LoraLinear (checked above)
            weight = cast(torch.Tensor, layer.get_base_layer().weight)  # a linear layer's
            deltas = [layer.get_delta_weight(name) for name in layer.active_adapters if name in layer.lora_A]
            if deltas:
                originals.append((weight, weight.data))
                delta = cast(torch.Tensor, sum(deltas))  # deltas is not empty: a tensor, not sum's start 0
                weight.data = weight.data + delta.to(weight.dtype)
    try:
        with disable_adapter():
            yield True
    finally:
        for weight, data in originals:
            weight.data = data
