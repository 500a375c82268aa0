"""Config models of the divergences plugin's components: importing them needs no torch, so a recipe
validates without importing the components themselves (registered with ``config=``)."""

from __future__ import annotations

from pydantic import Field

from unisd.components.kinds import DivergenceConfig


class JSDConfig(DivergenceConfig):
    """Generalized JSD with mixture weight ``beta`` on the teacher (0 < β < 1)."""

    beta: float = Field(0.5, gt=0.0, lt=1.0, description="teacher weight in the mixture m = β·p + (1−β)·q")
