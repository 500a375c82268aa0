"""Config models of the objectives plugin's components: importing them needs no torch, so a recipe
validates without importing the components themselves (registered with ``config=``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from unisd.components.kinds import ObjectiveConfig


class DistillConfig(ObjectiveConfig):
    """On-policy self-distillation."""

    on_policy_fraction: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="share of rows whose completion is sampled; the rest use the gold completion (GKD's λ)",
    )


class SFTConfig(ObjectiveConfig):
    """Supervised fine-tuning on the gold completion."""

    samples: ClassVar[bool] = False
