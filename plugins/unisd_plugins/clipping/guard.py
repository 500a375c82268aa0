"""Divergence clipping: D ← min(D, c) per token, before agreement weighting and normalisation.

``static``: a fixed cap c (reference 10.0). ``quantile``: c = the masked ``quantile`` of D in the
micro-batch (no gradient, floored at 1e-6). ``relative``: c = ``factor`` × the masked mean of D in
the micro-batch (OPSD-style per-token clipping relative to the batch: a few tokens, often the
opening, cannot dominate the update). ``fraction``: c = fraction × the divergence's upper
bound (for bounded divergences such as JSD ≤ log 2). Tokens above the cap get no gradient; a token
exactly at the cap keeps its full gradient. A static cap at or above the divergence's
bound can never bind: that is an error at setup, not a silent no-op (spec §7.7).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from unisd.components.kinds import StabilityGuard
from unisd.api import series
from unisd_plugins.clipping.config import ClipConfig


class DivergenceClip(StabilityGuard):
    """Hard cap on per-token divergences: clipped tokens get no gradient."""

    Config: ClassVar = ClipConfig
    activity_metrics: ClassVar = ("fraction", "mass_removed", "cap", "max_divergence")

    def setup(self, run) -> None:
        div = run.divergence
        bound = getattr(div, "upper_bound", float("inf"))
        c = self.config
        if c.mode == "static" and c.cap >= bound:
            raise ValueError(
                f"clip: static cap {c.cap} can never bind for divergence {div.name!r} (bounded by {bound:.4f}); "
                "use mode: quantile, mode: fraction, or a smaller cap"
            )
        if c.mode == "fraction" and bound == float("inf"):
            raise ValueError(
                f"clip: mode 'fraction' needs a bounded divergence; {div.name!r} is unbounded — use static or quantile"
            )
        self.bound = bound

    def cap_for(self, divergence: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | float:
        c = self.config
        if c.mode == "static":
            return c.cap
        if c.mode == "fraction":
            return c.fraction * self.bound
        valid = divergence.detach()[mask > 0]
        if valid.numel() == 0:
            return float("inf")
        if c.mode == "relative":
            return (c.factor * valid.float().mean()).clamp(min=1e-6)
        return torch.quantile(valid.float(), c.quantile).clamp(min=1e-6)

    def transform_divergence(self, divergence, mask, batch):
        cap = self.cap_for(divergence, mask)
        clipped = divergence > cap
        cap = torch.as_tensor(cap, dtype=divergence.dtype, device=divergence.device)
        out = torch.where(clipped, cap, divergence)
        d = divergence.detach() * mask
        mass = float(d.sum())
        batch.logs.update(
            {
                f"{self.name}/{k}": v
                for k, v in {
                    "fraction": float((clipped.float() * mask).sum() / mask.sum().clamp(min=1)),
                    "mass_removed": float((d - out.detach() * mask).sum()) / mass if mass > 0 else 0.0,
                    "cap": float(cap),
                    "max_divergence": float(d.max()) if d.numel() else 0.0,
                }.items()
            }
        )
        return out

    def inert_reason(self, history, steps):
        clipped = series(history, f"{self.name}/fraction")
        if clipped and max(clipped) == 0:
            largest = series(history, f"{self.name}/max_divergence")
            seen = f" (the largest per-token divergence logged: {max(largest):.3g})" if largest else ""
            how = {
                "static": f"cap {self.config.cap:g}",
                "quantile": f"quantile {self.config.quantile:g}",
                "relative": f"factor {self.config.factor:g} × the batch mean",
                "fraction": f"fraction {self.config.fraction:g} of the bound",
            }[self.config.mode]
            return f"nothing was clipped: {how} (mode {self.config.mode}) was never reached{seen}"
        return None
