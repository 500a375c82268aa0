"""Rough training-memory estimate, checked before a run starts.

The estimate is deliberately simple and errs on the high side:

* weights: every parameter in the model dtype (plus ``teacher_copies`` extra copies);
* trainable state: fp32 gradient + two fp32 Adam moments per trainable parameter (LoRA: only the
  adapters, ``r * (in + out)`` per targeted linear layer);
* activations kept for backward, per layer and token: ``8*hidden + 4*intermediate`` values, the
  attention probabilities ``heads * seq_len``, and with LoRA the adapters' dropped-out inputs
  ``6*hidden + intermediate`` (with gradient checkpointing: one layer's worth plus each layer's input);
* logits: student logits, log-softmax and its gradient, teacher log-probs — 4 fp32 ``B*S*V`` tensors;
* with ``generation.rollout_per_step``: the key/value cache of the rows decoded together, where it
  exceeds the activations and logits (it is freed before the micro-batches train);
* 20 % overhead for the allocator, the optimizer's temporaries and the framework.

Sharded over ``shards`` processes (FSDP2), each process holds ``1/shards`` of the weights and of
the trainable state, plus two transformer blocks gathered whole (the one running and the next).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unisd.models.errors import InsufficientMemoryError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from unisd.recipe.sections import LoraConfig, ModelConfig

_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
_OVERHEAD = 1.2
_DEFAULT_LORA_R = 64
_DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _meta_model(model_config: ModelConfig) -> torch.nn.Module:
    """The architecture of ``model_config`` on the meta device (no weights are read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from unisd.models.loading import resolve_model_path

    path = resolve_model_path(model_config.name_or_path, model_config.revision, model_config.gguf_file)
    cfg = AutoConfig.from_pretrained(
        path, revision=model_config.revision, trust_remote_code=model_config.trust_remote_code
    )
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg, trust_remote_code=model_config.trust_remote_code)


def _lora_settings(lora: bool | LoraConfig) -> tuple[bool, int, tuple[str, ...]]:
    if isinstance(lora, bool):
        return lora, _DEFAULT_LORA_R, _DEFAULT_TARGETS
    return lora.enabled, lora.r, tuple(lora.target_modules)


def _trainable_params(model: torch.nn.Module, lora: bool | LoraConfig) -> tuple[int, bool]:
    """(trainable parameter count, whether only adapters train)."""
    import torch

    params = list(model.parameters())
    flags = {p.requires_grad for p in params}
    if flags == {True, False}:  # already wrapped (e.g. peft): trust requires_grad
        return sum(p.numel() for p in params if p.requires_grad), True
    enabled, r, targets = _lora_settings(lora)
    if not enabled:
        return sum(p.numel() for p in params), False
    return sum(
        r * (m.in_features + m.out_features)
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in targets
    ), True


def memory_breakdown(
    model_or_config: torch.nn.Module | ModelConfig,
    batch_size: int,
    seq_len: int,
    lora: bool | LoraConfig = True,
    *,
    gradient_checkpointing: bool = False,
    teacher_copies: int = 0,
    shards: int = 1,
    rollout_rows: int = 0,
) -> dict[str, int]:
    """The estimate of :func:`estimate_memory` for one process, split into named parts (bytes).

    ``rollout_rows``: rows decoded in one generation call (``generation.rollout_per_step``); their
    key/value cache is counted where it exceeds the training pass's activations and logits, which it
    never coexists with."""
    import torch

    if isinstance(model_or_config, torch.nn.Module):
        model = model_or_config
        dtype_bytes = next(model.parameters()).element_size()
    else:
        model = _meta_model(model_or_config)
        dtype_bytes = _DTYPE_BYTES[model_or_config.dtype]
    cfg: Any = getattr(model, "config", None)
    cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    hidden = int(getattr(cfg, "hidden_size", 0) or 0)
    layers = int(getattr(cfg, "num_hidden_layers", 0) or 0)
    heads = int(getattr(cfg, "num_attention_heads", 0) or 0)
    inter = int(getattr(cfg, "intermediate_size", 0) or 4 * hidden)
    vocab = int(getattr(cfg, "vocab_size", 0) or 0)

    n_params = sum(p.numel() for p in model.parameters())
    tokens = batch_size * seq_len
    trainable, adapters = _trainable_params(model, lora)
    per_layer_token = 8 * hidden + 4 * inter + heads * seq_len
    if adapters:  # adapter inputs after dropout: q, k, v, o, gate, up (hidden) and down (inter)
        per_layer_token += 6 * hidden + inter
    kept_layers = 1 if gradient_checkpointing else layers
    activations = tokens * (per_layer_token * kept_layers + (hidden * layers if gradient_checkpointing else 0))
    weights = n_params * dtype_bytes * (1 + teacher_copies)
    parts = {
        "weights": weights // shards + (2 * weights // max(layers, 1) if shards > 1 else 0),
        "trainable_state": trainable * 12 // shards,
        "activations": activations * dtype_bytes,
        "logits": tokens * vocab * 4 * 4,
    }
    if rollout_rows:
        kv_heads = int(getattr(cfg, "num_key_value_heads", 0) or heads)
        head_dim = int(getattr(cfg, "head_dim", 0) or (hidden // max(heads, 1)))
        kv_cache = rollout_rows * seq_len * layers * 2 * kv_heads * head_dim * dtype_bytes
        parts["rollout_kv_cache"] = max(0, kv_cache - parts["activations"] - parts["logits"])
    parts["overhead"] = int(sum(parts.values()) * (_OVERHEAD - 1))
    return parts


def estimate_memory(
    model_or_config: torch.nn.Module | ModelConfig,
    batch_size: int,
    seq_len: int,
    lora: bool | LoraConfig = True,
    **kwargs: Any,
) -> int:
    """Rough peak bytes to train ``model_or_config`` on ``batch_size`` sequences of ``seq_len`` tokens.

    ``lora``: ``True``/``False`` or a recipe :class:`LoraConfig`; keyword options as in
    :func:`memory_breakdown`. A ``ModelConfig`` is sized from its config alone (meta device).
    """
    return sum(memory_breakdown(model_or_config, batch_size, seq_len, lora, **kwargs).values())


def available_memory(device: str | torch.device | None = None) -> int:
    """Free bytes on ``device``: CUDA free memory, else the host's available virtual memory."""
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda":
        return int(torch.cuda.mem_get_info(dev.index if dev.index is not None else torch.cuda.current_device())[0])
    import psutil

    return int(psutil.virtual_memory().available)


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def check_fits(
    model_or_config: torch.nn.Module | ModelConfig,
    batch_size: int,
    seq_len: int,
    lora: bool | LoraConfig = True,
    *,
    device: str | torch.device | None = None,
    headroom: float = 0.9,
    reserved: int = 0,
    reserved_by: str = "",
    **kwargs: Any,
) -> int:
    """Raise :class:`InsufficientMemoryError` when the estimate exceeds ``headroom`` × the memory
    that is free once ``reserved`` bytes are set aside (e.g. a generation engine's share, named
    by ``reserved_by``).

    Returns the estimate (bytes) when it fits.
    """
    parts = memory_breakdown(model_or_config, batch_size, seq_len, lora, **kwargs)
    need, free = sum(parts.values()), available_memory(device) - reserved
    if need > headroom * free:
        detail = ", ".join(f"{k} {_gib(v)}" for k, v in parts.items())
        shards = kwargs.get("shards", 1)
        per = f" per process (weights and optimizer state split over {shards} processes)" if shards > 1 else ""
        held = f" after the {_gib(reserved)} that {reserved_by} reserves" if reserved else ""
        raise InsufficientMemoryError(
            f"training needs about {_gib(need)}{per} ({detail}) but only {_gib(max(free, 0))} is free on "
            f"{device or 'cpu'}{held}. Reduce training.batch_size (and raise grad_accum), shorten "
            f"generation.max_new_tokens or data.max_prompt_length, enable lora or "
            f"training.gradient_checkpointing, shard with distributed.strategy=fsdp2 over more processes, "
            f"or use a smaller model."
        )
    return need
