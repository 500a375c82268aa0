"""How a logged metric is combined over the micro-batches of a step: by its name.

A value whose last name segment says it is an extreme (``weight_min``, ``max_divergence``,
``token_min``) is reduced by min or max; every other value by the mean over the micro-batches that
logged it. (Across processes, the losses are averaged; other values are the main process's.)
"""

from __future__ import annotations


def aggregation(key: str) -> str:
    """``"min"``, ``"max"`` or ``"mean"`` for the metric ``key``."""
    last = key.rsplit("/", 1)[-1]
    if last == "min" or last.endswith("_min") or last.startswith("min_"):
        return "min"
    if last == "max" or last.endswith("_max") or last.startswith("max_"):
        return "max"
    return "mean"


class StepMetrics:
    """The metrics of one optimizer step, combined micro-batch by micro-batch."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, key: str, value: float) -> None:
        how, seen = aggregation(key), self.counts.get(key, 0)
        if seen == 0:
            self.values[key] = value
        elif how == "min":
            self.values[key] = min(self.values[key], value)
        elif how == "max":
            self.values[key] = max(self.values[key], value)
        else:  # a running mean over the micro-batches that logged it
            self.values[key] += (value - self.values[key]) / (seen + 1)
        self.counts[key] = seen + 1

    def result(self) -> dict[str, float]:
        return dict(self.values)
