"""Masked, weighted reduction of per-token values to a scalar (spec §1.6 and §7.2)."""

from __future__ import annotations

import torch


def masked_mean(
    values: torch.Tensor,
    mask: torch.Tensor,
    token_weights: torch.Tensor | None = None,
    sequence_weights: torch.Tensor | None = None,
    normalization: str = "sequence",
) -> torch.Tensor:
    """Reduce (B, T) ``values`` over ``mask``.

    ``"sequence"``: L_b = Σ_t m w v / max(1, Σ_t m w) (token weights act inside a sequence), then
    L = (1/B) Σ_b s_b L_b with sequence weights s_b (default 1). ``"token"``: one global weighted
    token mean Σ m w s v / max(1, Σ m w s). All-masked rows contribute 0, never NaN.
    """
    m = mask.float()
    w = m if token_weights is None else m * token_weights.float()
    if normalization == "token":
        if sequence_weights is not None:
            w = w * sequence_weights.float().unsqueeze(-1)
        return (w * values).sum() / w.sum().clamp(min=1.0)
    if normalization != "sequence":
        raise ValueError(f"unknown normalization {normalization!r}; use 'sequence' or 'token'")
    per_seq = (w * values).sum(-1) / w.sum(-1).clamp(min=1.0)
    if sequence_weights is not None:
        per_seq = per_seq * sequence_weights.float()
    return per_seq.mean() if per_seq.numel() else values.sum() * 0.0
