"""Per-token divergences over the full vocabulary, in fp32.

All take log-probabilities ``(B, T, V)`` (teacher without gradient, student with) and return
``(B, T)``. Masking and normalisation happen in the engine's loss assembly.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from unisd.components.kinds import Divergence
from unisd_plugins.divergences.config import JSDConfig


def forward_kl(teacher_logprobs: torch.Tensor, student_logprobs: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) = Σ_v p_v (log p_v − log q_v), p = teacher, q = student."""
    t, s = teacher_logprobs.float(), student_logprobs.float()
    return (t.exp() * (t - s)).sum(-1)


def reverse_kl(teacher_logprobs: torch.Tensor, student_logprobs: torch.Tensor) -> torch.Tensor:
    """KL(q‖p) = Σ_v q_v (log q_v − log p_v)."""
    t, s = teacher_logprobs.float(), student_logprobs.float()
    return (s.exp() * (s - t)).sum(-1)


def generalized_jsd(teacher_logprobs: torch.Tensor, student_logprobs: torch.Tensor, beta: float) -> torch.Tensor:
    """β·KL(p‖m) + (1−β)·KL(q‖m) with m = β·p + (1−β)·q (spec §1.5; β=0.5 is the symmetric JSD)."""
    t, s = teacher_logprobs.float(), student_logprobs.float()
    if not 0.0 < beta < 1.0:
        raise ValueError(f"generalized JSD needs 0 < beta < 1, got {beta} (use forward_kl / reverse_kl for the limits)")
    log_m = torch.logsumexp(torch.stack([t + math.log(beta), s + math.log1p(-beta)]), dim=0)
    kl_pm = (t.exp() * (t - log_m)).sum(-1)
    kl_qm = (s.exp() * (s - log_m)).sum(-1)
    return beta * kl_pm + (1.0 - beta) * kl_qm


class ForwardKL(Divergence):
    """KL(teacher ‖ student): the reference's default (α = 0), mean-seeking."""

    def per_token(self, teacher_logprobs, student_logprobs):
        return forward_kl(teacher_logprobs, student_logprobs)


class ReverseKL(Divergence):
    """KL(student ‖ teacher): mode-seeking, as in the SDFT paper."""

    def per_token(self, teacher_logprobs, student_logprobs):
        return reverse_kl(teacher_logprobs, student_logprobs)


class GeneralizedJSD(Divergence):
    """Generalized Jensen–Shannon divergence JSD(β); bounded above by log 2 (at β = 0.5)."""

    Config: ClassVar = JSDConfig

    @property
    def upper_bound(self) -> float:  # type: ignore[override]
        b = self.config.beta
        return -(b * math.log(b) + (1 - b) * math.log(1 - b))

    def per_token(self, teacher_logprobs, student_logprobs):
        return generalized_jsd(teacher_logprobs, student_logprobs, self.config.beta)
