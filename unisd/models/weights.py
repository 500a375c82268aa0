"""The weights a model computes with, as plain ``transformers`` parameter names.

Under LoRA, a peft model's own state dict splits each adapted layer into ``base_layer`` and
adapter tensors. An inference engine that takes the student's weights (vLLM) needs them merged,
as ``merge_and_unload`` would write them, but without touching the live model: merging in place
and unmerging again would drift the base weights by rounding at every step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from unisd.engine.modeling import base_model

if TYPE_CHECKING:  # pragma: no cover
    from peft.tuners.tuners_utils import BaseTunerLayer

_BASE = ".base_layer."


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
