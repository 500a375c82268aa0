"""A step's metrics over its micro-batches: extremes by min/max, the rest by their mean."""

import pytest

from unisd.engine.aggregation import StepMetrics, aggregation


def test_each_metric_is_reduced_as_its_name_says():
    assert [
        aggregation(k)
        for k in (
            "agreement/weight_min",
            "clip/max_divergence",
            "weights/token_min",
            "loss/total",
            "clip/fraction",
            "grad/x_norm",
            "timing/max",
        )
    ] == ["min", "max", "min", "mean", "mean", "mean", "max"]
    step = StepMetrics()
    for micro in (
        {"agreement/weight_min": 0.4, "clip/max_divergence": 2.0, "loss/total": 1.0, "diag/only_first": 5.0},
        {"agreement/weight_min": 0.9, "clip/max_divergence": 7.0, "loss/total": 3.0},
        {"agreement/weight_min": 0.2, "clip/max_divergence": 1.0, "loss/total": 2.0},
    ):
        for k, v in micro.items():
            step.add(k, v)
    out = step.result()
    assert out["agreement/weight_min"] == 0.2 and out["clip/max_divergence"] == 7.0  # not a mean of extremes
    assert (
        out["loss/total"] == pytest.approx(2.0) and out["diag/only_first"] == 5.0
    )  # the mean over those that logged it


def test_a_run_with_accumulation_logs_the_step_minimum(make_recipe, tmp_path, monkeypatch):
    """grad_accum = 2: a micro-batch minimum of 0.1 and one of 0.5 log 0.1 (the old mean gave 0.3)."""
    import json

    from unisd.engine import step as step_module
    from unisd.runs.launch import train

    real = step_module.MicroStep.__call__
    calls = iter([0.1, 0.5] * 10)

    def fake(self, *a, **k):
        res = real(self, *a, **k)
        res.logs["probe/value_min"] = next(calls)
        res.logs["probe/value_max"] = res.logs["probe/value_min"] * 10
        return res

    monkeypatch.setattr(step_module.MicroStep, "__call__", fake)
    train(make_recipe("vanilla", "training.max_steps=2", "training.grad_accum=2"), tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["probe/value_min"] for r in rows] == [0.1, 0.1] and [r["probe/value_max"] for r in rows] == [5.0, 5.0]
