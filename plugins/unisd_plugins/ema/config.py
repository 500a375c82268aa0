"""Config models of the ema plugin's components: importing them needs no torch, so a recipe
validates without importing the components themselves (registered with ``config=``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from unisd.components.base import ComponentConfig


class EMAConfig(ComponentConfig):
    """EMA teacher (spec §2b)."""

    beta: float = Field(0.9, ge=0.0, lt=1.0, description="decay β (reference: 0.9 for ema, 0.98 in UniSD*)")
    every: int = Field(10, ge=1, description="sync every N optimizer steps (reference: 10)")
    mode: Literal["fixed", "reference"] = Field(
        "fixed", description="'fixed': EMA of the merged student; 'reference': the authors' no-op under LoRA"
    )
