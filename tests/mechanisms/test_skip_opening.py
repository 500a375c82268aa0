"""The skip_opening guard: the first N completion tokens leave the divergence loss."""

import pytest
import torch

from unisd.components.batch import DistillBatch, Scores
from unisd.engine.reduction import masked_mean
from unisd_plugins.opening.guard import SkipOpening, SkipOpeningConfig


def _batch(B, T):
    z = torch.zeros(B, T)
    return DistillBatch(
        [{"id": str(b)} for b in range(B)],
        torch.zeros(B, T, dtype=torch.long),
        torch.ones(B, T),
        Scores(z),
        Scores(z),
        0.7,
        0,
        None,
    )


def test_dropped_tokens_leave_numerator_and_normaliser():
    guard = SkipOpening(SkipOpeningConfig(type="skip_opening", tokens=2))
    mask = torch.tensor([[1.0, 1, 1, 1], [1, 1, 1, 0]])
    d = torch.tensor([[9.0, 9.0, 1.0, 3.0], [9.0, 9.0, 2.0, 7.0]], requires_grad=True)
    b = _batch(2, 4)
    w = guard.token_weights(mask, b)
    loss = masked_mean(d, mask, w)
    assert loss.item() == pytest.approx(((1 + 3) / 2 + 2 / 1) / 2)
    loss.backward()
    assert d.grad[:, :2].abs().sum() == 0 and d.grad[0, 2] > 0
    assert b.logs["skip_opening/fraction"] == pytest.approx(4 / 7)


def test_down_weighting_keeps_the_tokens_with_a_smaller_weight():
    guard = SkipOpening(SkipOpeningConfig(type="skip_opening", tokens=1, weight=0.5))
    w = guard.token_weights(torch.ones(1, 3), _batch(1, 3))
    assert w.tolist() == [[0.5, 1.0, 1.0]]


def test_skip_opening_trains_in_a_recipe(make_recipe, tmp_path):
    from unisd.runs.launch import train

    recipe = make_recipe("vanilla", "components=[{type: skip_opening, tokens: 2}]", "training.max_steps=1")
    summary = train(recipe, tmp_path / "run")
    assert summary["steps"] == 1
    import json

    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert 0 < row["skip_opening/fraction"] <= 1
