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

from unisd.components.kinds import StabilityGuard
from unisd_plugins.opening.config import SkipOpeningConfig


class SkipOpening(StabilityGuard):
    """Down-weights the first ``tokens`` positions of every completion."""

    Config: ClassVar = SkipOpeningConfig

    def token_weights(self, mask: torch.Tensor, batch) -> torch.Tensor:
        w = torch.ones_like(mask, dtype=torch.float32)
        w[:, : self.config.tokens] = self.config.weight
        batch.logs["skip_opening/fraction"] = float(((1 - w) * mask).sum() / mask.sum().clamp(min=1))
        return w
