"""Config models of the contrastive plugin's components: importing them needs no torch, so a recipe
validates without importing the components themselves (registered with ``config=``)."""

from __future__ import annotations

from pydantic import Field

from unisd.components.kinds import AuxiliaryLossConfig


class ContrastiveConfig(AuxiliaryLossConfig):
    """Token contrastive loss. ``weight`` is λ_c (reference: 0.1; 0.01 in UniSD*)."""

    weight: float = 0.1
    margin: float = Field(0.5, ge=0.0, description="hinge margin μ (reference: 0.5; 0.1 in UniSD*)")
    negatives_per_item: int = Field(4, ge=1, description="negatives generated and cached per item; one is used")
    max_new_tokens: int = Field(256, ge=8, description="length limit of a generated negative")
    temperature: float = Field(0.7, gt=0.0, description="sampling temperature of negatives")
    seed: int = 42
