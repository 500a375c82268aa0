"""The objectives the paper's methods and baselines use, each a few calls to the micro-step's stages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from unisd.components.kinds import Objective
from unisd_plugins.objectives.config import DistillConfig, SFTConfig

if TYPE_CHECKING:  # pragma: no cover
    from unisd.components.batch import MicroResult, Tokenized
    from unisd.components.stages import Stages


class Distill(Objective):
    """The student samples; the teacher, shown the reference, scores the sample; the recipe's
    divergence (with its guards, weights and auxiliary terms) is minimised. With
    ``on_policy_fraction < 1`` each row keeps its gold completion with probability ``1 − λ`` (GKD)."""

    Config: ClassVar = DistillConfig

    def loss(self, step: Stages, records: list[dict[str, Any]], prompt: Tokenized, rng: torch.Generator) -> MicroResult:
        fraction = self.config.on_policy_fraction
        off = torch.rand(len(records), generator=rng) >= fraction if fraction < 1.0 else None
        if off is None or not off.any():  # every row sampled
            return step.distill(records, prompt, step.sample(prompt))
        gold = step.gold(records)
        seqs = [gold.ids[i][gold.present[i] > 0].tolist() for i in range(len(records))]
        truncated = torch.zeros(len(records), dtype=torch.bool)
        on = (~off).nonzero().squeeze(-1)
        if len(on):
            sampled = step.sample(type(prompt)(prompt.ids[on], prompt.mask[on]))
            for j, i in enumerate(on.tolist()):
                seqs[i] = sampled.ids[j][sampled.present[j] > 0].cpu().tolist()
                truncated[i] = bool(sampled.truncated[j])
        return step.distill(records, prompt, step.rollout(seqs, truncated))


class SFT(Objective):
    """Cross-entropy on the records' gold completions (no sampling, no teacher)."""

    Config: ClassVar = SFTConfig

    def loss(self, step: Stages, records: list[dict[str, Any]], prompt: Tokenized, rng: torch.Generator) -> MicroResult:
        return step.nll(prompt, step.gold(records))

    def describe(self, step) -> str:
        return "L = nll (gold completion)"


class SSD(Objective):
    """Simple self-distillation: cross-entropy on samples from the base weights, unverified."""

    def loss(self, step: Stages, records: list[dict[str, Any]], prompt: Tokenized, rng: torch.Generator) -> MicroResult:
        return step.nll(prompt, step.sample(prompt, use_base=True))

    def describe(self, step) -> str:
        return "L = nll (the base weights' own samples)"
