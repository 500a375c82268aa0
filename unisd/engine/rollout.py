"""Student rollouts: sample completions, build the completion masks."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from unisd.engine.batching import Tokenized, completion_mask_from_ids, pad_token_id
from unisd.engine.sharding import is_sharded


@dataclass
class Rollout:
    """Sampled completions: ids (B, T) right-padded, ``present`` (tokens that exist, incl. EOS),
    ``loss_mask`` (present, minus truncated rows when masking them), and ``truncated`` (B,)."""

    ids: torch.Tensor
    present: torch.Tensor
    loss_mask: torch.Tensor
    truncated: torch.Tensor


def eos_ids(tokenizer, model) -> list[int]:
    ids = set()
    gen_cfg = getattr(model, "generation_config", None)
    for src in (getattr(gen_cfg, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(src, int):
            ids.add(src)
        elif src:
            ids.update(int(i) for i in src)
    return sorted(ids)


def sample(backend, model, tokenizer, prompt: Tokenized, gen_cfg, *, use_base: bool = False) -> Rollout:
    """Sample one completion per prompt row with ``backend`` (model in eval mode, no gradient).

    ``use_base`` samples from the base weights (LoRA adapter disabled), as SSD needs.
    """
    was_training = model.training
    model.eval()
    ctx = adapter_disabled(model) if use_base else nullcontext()
    try:
        with torch.no_grad(), ctx:
            ids = backend.generate(model, prompt.ids, prompt.mask, gen_cfg, eos_token_ids=eos_ids(tokenizer, model),
                                   pad_token_id=pad_token_id(tokenizer))
    finally:
        model.train(was_training)
    present, truncated = completion_mask_from_ids(ids, eos_ids(tokenizer, model))
    loss_mask = present.clone()
    if gen_cfg.mask_truncated:
        loss_mask[truncated] = 0.0
    return Rollout(ids, present, loss_mask, truncated)


def adapter_disabled(model):
    """Context manager running ``model`` with its base weights (LoRA adapter off); a no-op without one."""
    return model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()


@torch.no_grad()
def sample_texts(model, tokenizer, prompts: list[str], *, temperature: float, max_new_tokens: int, seed: int,
                 device=None, base: bool = True) -> list[str]:
    """Chat-rendered user turns → sampled continuations as text, from the base weights by default
    (offline generation for components: induced instructions, contrastive negatives)."""
    from unisd.engine.batching import tokenize_prompts

    enc = tokenize_prompts(tokenizer, prompts)
    torch.manual_seed(seed)
    was = model.training
    model.eval()
    try:
        with adapter_disabled(model) if base else nullcontext():
            ids = model.generate(input_ids=enc.ids.to(device), attention_mask=enc.mask.to(device), do_sample=True,
                                 temperature=temperature, top_k=0, max_new_tokens=max_new_tokens,
                                 pad_token_id=pad_token_id(tokenizer), eos_token_id=eos_ids(tokenizer, model),
                                 synced_gpus=is_sharded(model))
    finally:
        model.train(was)
    return tokenizer.batch_decode(ids[:, enc.ids.shape[1]:], skip_special_tokens=True)
