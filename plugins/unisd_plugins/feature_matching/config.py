"""Config models of the feature matching plugin's components: importing them needs no torch, so a recipe
validates without importing the components themselves (registered with ``config=``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from unisd.components.batch import LM_HEAD_INPUT
from unisd.components.kinds import AuxiliaryLossConfig


class FeatureMatchingConfig(AuxiliaryLossConfig):
    """Feature matching (spec §2d). ``weight`` is λ_h (reference: 0.1; 0.01 in UniSD*)."""

    weight: float = 0.1
    layers: list[int | str] = Field(
        default_factory=lambda: [LM_HEAD_INPUT], description="module paths, decoder-layer indices, or 'lm_head_input'"
    )
    metric: Literal["mse", "cosine"] = "mse"
    projection: bool = Field(
        False, description="learn a linear map (identity-initialised) from student to teacher features"
    )
