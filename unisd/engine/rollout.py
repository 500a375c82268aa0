"""Student rollouts: sample completions, build the completion masks."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from unisd.components.batch import Rollout
from unisd.engine.batching import Tokenized, completion_mask_from_ids, pad_left, pad_right, pad_token_id
from unisd.engine.decoding import adapter_disabled, eos_ids

__all__ = ["Rollout", "adapter_disabled", "eos_ids", "sample", "sample_together"]


def sample(backend, model, tokenizer, prompt: Tokenized, gen_cfg, *, use_base: bool = False) -> Rollout:
    """Sample one completion per prompt row with ``backend`` (model in eval mode, no gradient).

    ``use_base`` samples from the base weights (LoRA adapter disabled), as SSD needs.
    """
    was_training = model.training
    model.eval()
    ctx = adapter_disabled(model) if use_base else nullcontext()
    try:
        with torch.no_grad(), ctx:
            ids = backend.generate(
                model,
                prompt.ids,
                prompt.mask,
                gen_cfg,
                eos_token_ids=eos_ids(tokenizer, model),
                pad_token_id=pad_token_id(tokenizer),
            )
    finally:
        model.train(was_training)
    present, truncated = completion_mask_from_ids(ids, eos_ids(tokenizer, model))
    loss_mask = present.clone()
    if gen_cfg.mask_truncated:
        loss_mask[truncated] = 0.0
    return Rollout(ids, present, loss_mask, truncated)


def sample_together(
    backend, model, tokenizer, prompts: list[Tokenized], gen_cfg, *, use_base: bool = False, max_rows: int | None = None
) -> list[Rollout]:
    """One completion per row of each batch in ``prompts``, sampled in as few generation calls as
    ``max_rows`` allows, returned per batch in the form :func:`sample` gives.

    Decoding reads every weight once per token for all the rows of a call, so one wide call is
    cheaper than one per batch. Rows are re-padded together; when ``max_rows`` splits them, they are
    sorted by prompt length first, so each call pads little.
    """
    rows = [ids[mask > 0].tolist() for p in prompts for ids, mask in zip(p.ids, p.mask, strict=True)]
    n, cap = len(rows), max_rows or len(rows)
    order = sorted(range(n), key=lambda i: len(rows[i])) if cap < n else list(range(n))
    device, pad = prompts[0].ids.device, pad_token_id(tokenizer)
    seqs: list[list[int]] = [[] for _ in range(n)]
    truncated = torch.zeros(n, dtype=torch.bool)
    for start in range(0, n, cap):
        part = order[start : start + cap]
        joint = pad_left([rows[i] for i in part], pad)
        roll = sample(
            backend,
            model,
            tokenizer,
            Tokenized(joint.ids.to(device), joint.mask.to(device)),
            gen_cfg,
            use_base=use_base,
        )
        for k, i in enumerate(part):
            seqs[i] = roll.ids[k][roll.present[k] > 0].tolist()
            truncated[i] = bool(roll.truncated[k])
    out, at = [], 0
    for p in prompts:
        b = p.ids.shape[0]
        ids, present = pad_right(seqs[at : at + b], pad)
        loss_mask = present.clone()
        if gen_cfg.mask_truncated:
            loss_mask[truncated[at : at + b]] = 0.0
        out.append(Rollout(ids.to(device), present.to(device), loss_mask.to(device), truncated[at : at + b].clone()))
        at += b
    return out
