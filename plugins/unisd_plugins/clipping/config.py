"""Config models of the clipping plugin's components: importing them needs no torch, so a recipe
validates without importing the components themselves (registered with ``config=``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from unisd.components.base import ComponentConfig


class ClipConfig(ComponentConfig):
    """Divergence clipping (spec §2e)."""

    mode: Literal["static", "quantile", "relative", "fraction"] = "static"
    cap: float = Field(10.0, gt=0.0, description="static cap")
    quantile: float = Field(0.95, gt=0.0, lt=1.0, description="quantile mode: cap = this masked quantile of D")
    factor: float = Field(3.0, gt=0.0, description="relative mode: cap = factor × the masked batch mean of D")
    fraction: float = Field(0.5, gt=0.0, lt=1.0, description="fraction mode: cap = fraction × divergence upper bound")
