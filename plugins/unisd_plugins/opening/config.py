"""Config models of the opening plugin's components: importing them needs no torch, so a recipe
validates without importing the components themselves (registered with ``config=``)."""

from __future__ import annotations

from pydantic import Field

from unisd.components.base import ComponentConfig


class SkipOpeningConfig(ComponentConfig):
    """Loss weight of the first completion tokens."""

    tokens: int = Field(2, ge=1, description="how many leading completion tokens")
    weight: float = Field(0.0, ge=0.0, lt=1.0, description="their loss weight (0 drops them)")
