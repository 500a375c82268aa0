"""Teacher-forced scoring of ``context ⊕ completion`` at the completion positions.

The logits at column ``P − 1 + t`` of the concatenated sequence predict completion token ``t``;
only those ``T`` columns are projected to the vocabulary (``logits_to_keep``), never the prompt.
Positions are computed from the attention mask, so left padding does not shift them.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import torch

from unisd.components.batch import Scores
from unisd.engine.batching import Tokenized
from unisd.engine.modeling import base_model

LM_HEAD_INPUT = "lm_head_input"


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


@contextmanager
def capture_features(model: torch.nn.Module, layers: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hooks by module path; ``"lm_head_input"`` captures the LM head's input."""
    captured: dict[str, torch.Tensor] = {}
    handles = []
    base = base_model(model)
    for path in layers:
        if path == LM_HEAD_INPUT:
            head = base.get_output_embeddings()
            if head is None:
                raise ValueError("the model has no output embedding layer to hook for 'lm_head_input'")
            handles.append(head.register_forward_pre_hook(lambda m, args, p=path: captured.__setitem__(p, args[0])))
        else:
            try:
                module = base.get_submodule(path)
            except AttributeError:
                names = [n for n, _ in base.named_modules() if n][:40]
                raise ValueError(f"feature layer {path!r} is not a module path of {type(base).__name__}; e.g. {names[-5:]}") from None
            handles.append(module.register_forward_hook(lambda m, a, out, p=path: captured.__setitem__(p, out[0] if isinstance(out, tuple) else out)))
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()


def score(
    forward: Callable[..., Any],
    model_for_hooks: torch.nn.Module,
    prompt: Tokenized,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    temperature: float,
    full_logprobs: bool = True,
    feature_layers: Sequence[str] = (),
) -> Scores:
    """Run ``forward`` on ``prompt ⊕ completion`` and return log-probs aligned to the completion.

    ``forward`` is a model (or a teacher-provider callable) called with ``input_ids``,
    ``attention_mask``, ``position_ids`` and ``logits_to_keep``. Log-softmax is taken in fp32 over
    the full vocabulary at ``temperature``.
    """
    device = completion_ids.device
    P, T = prompt.ids.shape[1], completion_ids.shape[1]
    input_ids = torch.cat([prompt.ids.to(device), completion_ids], dim=1)
    attn = torch.cat([prompt.mask.to(device), (completion_mask > 0).long()], dim=1)
    # Columns after a completion's EOS are padding; attending to them is harmless (they come after
    # every scored position), but keep them masked for clean attention statistics.
    with capture_features(model_for_hooks, feature_layers) as feats:
        out = forward(input_ids=input_ids, attention_mask=attn, position_ids=position_ids_from_mask(attn),
                      logits_to_keep=T + 1, use_cache=False)
    logits = out.logits[:, -(T + 1):-1, :].float()
    logprobs = torch.log_softmax(logits / temperature, dim=-1)
    token_logps = logprobs.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
    features = {name: _align(f, P, T) for name, f in feats.items()}
    return Scores(token_logps=token_logps, logprobs=logprobs if full_logprobs else None, features=features)


def _align(feature: torch.Tensor, P: int, T: int) -> torch.Tensor:
    """Slice a captured (B, L, H) feature to the T columns that predict the completion."""
    L = feature.shape[1]
    if L == T + 1:  # already cut by logits_to_keep (LM-head input)
        return feature[:, :-1]
    if L == P + T:
        return feature[:, P - 1: P + T - 1]
    raise ValueError(f"captured feature has sequence length {L}, expected {P + T} or {T + 1}")
