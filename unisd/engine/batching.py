"""Chat rendering, tokenisation and padding.

Prompts are left-padded and completions right-padded, so that ``prompt ⊕ completion`` puts every
completion token at the same column for all rows (spec §1.2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from unisd.components.batch import Tokenized

__all__ = [
    "Tokenized",
    "completion_mask_from_ids",
    "pad_left",
    "pad_right",
    "pad_token_id",
    "render_chat",
    "token_lengths",
    "tokenize_completions",
    "tokenize_prompts",
]


def render_chat(tokenizer, user_text: str) -> str:
    """One user turn rendered with the model's chat template, generation prompt appended."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": user_text}], tokenize=False, add_generation_prompt=True
    )


def token_lengths(tokenizer, texts: Sequence[str]) -> list[int]:
    """Token counts of chat-rendered user turns (for filtering over-long prompts)."""
    rendered = [render_chat(tokenizer, t) for t in texts]
    return [len(ids) for ids in tokenizer(rendered, add_special_tokens=False)["input_ids"]]


def pad_left(sequences: Sequence[Sequence[int]], pad_id: int) -> Tokenized:
    width = max((len(s) for s in sequences), default=0)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        if len(s):
            ids[i, width - len(s) :] = torch.as_tensor(list(s), dtype=torch.long)
            mask[i, width - len(s) :] = 1
    return Tokenized(ids, mask)


def pad_right(sequences: Sequence[Sequence[int]], pad_id: int, min_width: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, T) and float mask (B, T)."""
    width = max([len(s) for s in sequences] + [min_width])
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.float32)
    for i, s in enumerate(sequences):
        if len(s):
            ids[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
            mask[i, : len(s)] = 1.0
    return ids, mask


def tokenize_prompts(tokenizer, texts: Sequence[str]) -> Tokenized:
    """Chat-render and left-pad user turns."""
    rendered = [render_chat(tokenizer, t) for t in texts]
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    return pad_left(ids, pad_token_id(tokenizer))


def tokenize_completions(
    tokenizer, texts: Sequence[str], max_tokens: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gold completions as right-padded ids ending with EOS (like a finished sample)."""
    eos = tokenizer.eos_token_id
    seqs = []
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        ids = list(ids)
        if max_tokens is not None:
            ids = ids[: max_tokens - 1]
        seqs.append(ids + [eos])
    return pad_right(seqs, pad_token_id(tokenizer))


def pad_token_id(tokenizer) -> int:
    pid = tokenizer.pad_token_id
    return int(pid if pid is not None else tokenizer.eos_token_id)


def completion_mask_from_ids(ids: torch.Tensor, eos_id: int | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask of generated tokens up to and including the first EOS, and a per-row "truncated" flag
    (no EOS within the generated length)."""
    eos_ids = torch.as_tensor([eos_id] if isinstance(eos_id, int) else list(eos_id), device=ids.device)
    is_eos = torch.isin(ids, eos_ids)
    T = ids.shape[1]
    idx = torch.arange(T, device=ids.device).expand_as(ids)
    first = torch.where(is_eos, idx, torch.full_like(idx, T)).min(-1).values  # T when no EOS
    mask = (idx <= first.unsqueeze(-1)).float()
    truncated = first >= T  # ran to the length limit: every token is a real sample
    return mask, truncated
