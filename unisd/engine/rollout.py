"""Student rollouts: sample completions, build the completion masks."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from unisd.engine.batching import Tokenized, completion_mask_from_ids, pad_token_id
from unisd.engine.decoding import adapter_disabled, eos_ids

__all__ = ["Rollout", "adapter_disabled", "eos_ids", "sample"]


@dataclass
class Rollout:
    """Sampled completions: ids (B, T) right-padded, ``present`` (tokens that exist, incl. EOS),
    ``loss_mask`` (present, minus truncated rows when masking them), and ``truncated`` (B,)."""

    ids: torch.Tensor
    present: torch.Tensor
    loss_mask: torch.Tensor
    truncated: torch.Tensor


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
