"""Masked normalisation (spec §1.6) and weights (spec §7.2)."""

import torch

from unisd.engine.reduction import masked_mean


def test_sequence_normalisation_is_mean_of_per_sequence_means():
    v = torch.tensor([[1.0, 3.0, 100.0], [2.0, 0.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert masked_mean(v, m).item() == (2.0 + 2.0) / 2


def test_token_normalisation_is_global_token_mean():
    v = torch.tensor([[1.0, 3.0, 100.0], [2.0, 0.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert masked_mean(v, m, normalization="token").item() == 2.0


def test_all_masked_rows_do_not_produce_nan():
    v = torch.tensor([[float("nan"), 1.0], [1.0, 1.0]]).nan_to_num(5.0)
    m = torch.zeros(2, 2)
    out = masked_mean(v, m)
    assert torch.isfinite(out) and out.item() == 0.0


def test_token_weights_act_within_a_sequence_only():
    v = torch.tensor([[1.0, 3.0]])
    m = torch.ones(1, 2)
    assert masked_mean(v, m, token_weights=torch.tensor([[1.0, 0.0]])).item() == 1.0
    # a constant token weight cancels (the reference's sequence-level behaviour) unless w·n < 1
    assert masked_mean(v, m, token_weights=torch.full((1, 2), 0.7)).item() == masked_mean(v, m).item()


def test_sequence_weights_scale_each_sequence():
    v = torch.tensor([[1.0], [3.0]])
    m = torch.ones(2, 1)
    assert masked_mean(v, m, sequence_weights=torch.tensor([1.0, 0.5])).item() == (1.0 + 1.5) / 2
