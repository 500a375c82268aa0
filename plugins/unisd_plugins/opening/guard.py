"""Skip the opening: the first ``tokens`` completion tokens get loss weight ``weight`` (0: dropped).

An answer-aware teacher often prefers another *opening* than the student ("To solve this problem,
we need to …") while agreeing on the content; ``unisd inspect`` shows how much of the divergence
sits there. Dropping those positions from the loss (TRL SDFT's ``num_loss_tokens_to_skip``) keeps
the student's own format and distils the rest. With ``weight: 0`` a dropped token also leaves its
sequence's normaliser, so each sequence is the mean over the tokens that remain.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field

from unisd.components.base import ComponentConfig
from unisd.components.kinds import StabilityGuard


class SkipOpeningConfig(ComponentConfig):
    """Loss weight of the first completion tokens."""

    tokens: int = Field(2, ge=1, description="how many leading completion tokens")
    weight: float = Field(0.0, ge=0.0, lt=1.0, description="their loss weight (0 drops them)")


class SkipOpening(StabilityGuard):
    """Down-weights the first ``tokens`` positions of every completion."""

    Config: ClassVar = SkipOpeningConfig

    def token_weights(self, mask: torch.Tensor, batch) -> torch.Tensor:
        w = torch.ones_like(mask, dtype=torch.float32)
        w[:, : self.config.tokens] = self.config.weight
        batch.logs["skip_opening/fraction"] = float(((1 - w) * mask).sum() / mask.sum().clamp(min=1))
        return w
