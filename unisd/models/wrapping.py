"""What wraps a model, and the weights it computes with: unwrapping DDP/accelerate and peft, the
trainable parameters, and LoRA's deltas, folded in for decoding (:func:`adapter_merged`) or
computed as plain ``transformers`` weights for an inference engine (:func:`effective_weights`).

Under LoRA, a peft model's own state dict splits each adapted layer into ``base_layer`` and
adapter tensors. An inference engine that takes the student's weights (vLLM) needs them merged,
as ``merge_and_unload`` would write them, but without touching the live model: merging in place
and unmerging again would drift the base weights by rounding at every step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, cast

import torch

if TYPE_CHECKING:  # pragma: no cover
    from peft.tuners.tuners_utils import BaseTunerLayer
    from transformers import PreTrainedModel

_BASE = ".base_layer."


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


def trainable_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


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


def effective_weights(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(name, tensor)`` for every entry of the underlying ``transformers`` model's state
    dict, with active LoRA deltas added to their base weights (none while the adapter is disabled,
    e.g. inside ``model.disable_adapter()``). Unchanged tensors are the live ones, not copies."""
    base = base_model(model)
    tuner_layers = _tuner_layers(base)
    with torch.no_grad():
        for key, tensor in base.state_dict().items():
            owner, sep, rest = key.rpartition(_BASE)
            if sep:
                layer = tuner_layers[owner]
                if rest == "weight":
                    tensor = _with_delta(owner, layer, tensor)
                yield f"{owner}.{rest}", tensor
            elif not _is_adapter_tensor(key, tuner_layers):
                yield key, tensor


def adapters_disabled(model: torch.nn.Module) -> bool:
    """Whether ``model``'s adapter is switched off (inside ``model.disable_adapter()``); False
    without one. The weights it computes with are then the frozen base weights."""
    return any(layer.disable_adapters for layer in _tuner_layers(base_model(model)).values())


def _tuner_layers(base: torch.nn.Module) -> dict[str, BaseTunerLayer]:
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # peft not installed: no adapters possible
        return {}
    return {name: m for name, m in base.named_modules() if isinstance(m, BaseTunerLayer)}


def _is_adapter_tensor(key: str, tuner_layers: dict[str, BaseTunerLayer]) -> bool:
    owner = key
    while "." in owner:
        owner = owner.rsplit(".", 1)[0]
        if owner in tuner_layers:
            return True
    return False


def _with_delta(name: str, layer: BaseTunerLayer, weight: torch.Tensor) -> torch.Tensor:
    if layer.disable_adapters or layer.merged:
        return weight
    active = [
        a
        for a in layer.active_adapters
        if a in getattr(layer, "lora_A", {}) or a in getattr(layer, "lora_embedding_A", {})
    ]
    if not active:
        return weight
    if not hasattr(layer, "get_delta_weight"):
        raise TypeError(
            f"{name}: {type(layer).__name__} has no get_delta_weight(); only LoRA-style adapters can be merged"
        )
    merged = weight.clone()
    for adapter in active:
        merged += layer.get_delta_weight(adapter).to(merged.dtype)
    return merged
