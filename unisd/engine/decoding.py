"""Text in, text out: batched decoding of prompts, greedy or sampled.

The held-out check, the retention metrics and components' offline generation (induced
instructions, contrastive negatives) share this one helper; training rollouts go through the
recipe's generation backend instead.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any
from collections.abc import Sequence

import torch

from unisd.engine.batching import Tokenized, pad_left, pad_token_id, render_chat
from unisd.engine.sharding import is_sharded


def eos_ids(tokenizer, model) -> list[int]:
    """Every id that ends a completion: the model's generation config and the tokenizer's EOS."""
    ids = set()
    gen_cfg = getattr(model, "generation_config", None)
    for src in (getattr(gen_cfg, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(src, int):
            ids.add(src)
        elif src:
            ids.update(int(i) for i in src)
    return sorted(ids)


def adapter_disabled(model):
    """Context manager running ``model`` with its base weights (LoRA adapter off); a no-op without one."""
    return model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()


def prompt_ids(tokenizer, prompts: Sequence[str], *, chat: bool = True) -> list[list[int]]:
    """Token ids of each prompt: the user turn rendered with the chat template (``chat``, when the
    tokenizer has one), else the raw text with the tokenizer's special tokens."""
    if chat and getattr(tokenizer, "chat_template", None):
        ids = tokenizer([render_chat(tokenizer, p) for p in prompts], add_special_tokens=False)["input_ids"]
    else:
        ids = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    return [list(i) for i in ids]


def encode_prompts(tokenizer, prompts: Sequence[str], *, chat: bool = True) -> Tokenized:
    """:func:`prompt_ids`, left-padded."""
    return pad_left(prompt_ids(tokenizer, prompts, chat=chat), pad_token_id(tokenizer))


@torch.no_grad()
def generate_texts(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    batch_size: int = 8,
    seed: int | None = None,
    base: bool = False,
    chat: bool = True,
    device: Any = None,
    progress: str | None = None,
) -> list[str]:
    """The continuation of each prompt as text: greedy at ``temperature`` 0, else sampled (no top-k
    or top-p cut; ``seed`` seeds torch first). ``base`` decodes with the base weights (LoRA adapter
    off). The model runs in eval mode and is put back as it was; under FSDP2 every process decodes
    until all have finished. ``progress``: the description of a progress bar over the prompts (shown
    on a terminal only, like the training bar)."""
    device = device if device is not None else next(model.parameters()).device
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "pad_token_id": pad_token_id(tokenizer),
        "eos_token_id": eos_ids(tokenizer, model),
        "do_sample": temperature > 0,
    }
    if temperature > 0:
        kwargs.update(temperature=temperature, top_k=0)
    if is_sharded(model):
        kwargs["synced_gpus"] = True
    if seed is not None:
        torch.manual_seed(seed)
    was = model.training
    model.eval()
    out: list[str] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=len(prompts), desc=progress, unit="answer", dynamic_ncols=True, disable=None if progress else True)
    try:
        with adapter_disabled(model) if base else nullcontext():
            for start in range(0, len(prompts), batch_size):
                enc = encode_prompts(tokenizer, prompts[start : start + batch_size], chat=chat)
                ids = model.generate(input_ids=enc.ids.to(device), attention_mask=enc.mask.to(device), **kwargs)
                out += tokenizer.batch_decode(ids[:, enc.ids.shape[1] :], skip_special_tokens=True)
                bar.update(enc.ids.shape[0])
    finally:
        bar.close()
        model.train(was)
    return out
