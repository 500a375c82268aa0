"""Divergences against hand-computed values on a 3-token vocabulary (spec §1.5, §9)."""

import math

import pytest
import torch

from unisd_plugins.divergences.functions import forward_kl, generalized_jsd, reverse_kl

P = [0.7, 0.2, 0.1]  # teacher
Q = [0.5, 0.3, 0.2]  # student


def _lp(x):
    return torch.tensor([[x]], dtype=torch.float64).log()


def test_forward_kl_matches_hand_computation():
    expected = sum(p * math.log(p / q) for p, q in zip(P, Q, strict=True))
    assert forward_kl(_lp(P), _lp(Q)).item() == pytest.approx(expected, abs=1e-6)


def test_reverse_kl_matches_hand_computation():
    expected = sum(q * math.log(q / p) for p, q in zip(P, Q, strict=True))
    assert reverse_kl(_lp(P), _lp(Q)).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("beta", [0.1, 0.5, 0.9])
def test_generalized_jsd_matches_hand_computation(beta):
    m = [beta * p + (1 - beta) * q for p, q in zip(P, Q, strict=True)]
    expected = beta * sum(p * math.log(p / mi) for p, mi in zip(P, m, strict=True)) + (1 - beta) * sum(
        q * math.log(q / mi) for q, mi in zip(Q, m, strict=True)
    )
    assert generalized_jsd(_lp(P), _lp(Q), beta).item() == pytest.approx(expected, abs=1e-6)


def test_equal_distributions_give_zero():
    lp = torch.log_softmax(torch.randn(2, 4, 11), -1)
    for fn in (forward_kl, reverse_kl, lambda a, b: generalized_jsd(a, b, 0.5)):
        assert fn(lp, lp).abs().max().item() < 1e-6


def test_jsd_bounded_by_log2():
    t = torch.log_softmax(torch.randn(3, 5, 50) * 20, -1)
    s = torch.log_softmax(torch.randn(3, 5, 50) * 20, -1)
    assert generalized_jsd(t, s, 0.5).max().item() <= math.log(2) + 1e-6


def test_gradient_flows_through_student_only_and_pulls_towards_teacher():
    t = torch.log_softmax(torch.tensor([[[2.0, 0.0, -1.0]]]), -1)
    logits = torch.zeros(1, 1, 3, requires_grad=True)
    forward_kl(t, torch.log_softmax(logits, -1)).sum().backward()
    # descending the gradient raises the student's logit of the teacher's top token
    assert logits.grad[0, 0, 0] < 0 and logits.grad[0, 0, 2] > 0


def test_computed_in_fp32_from_bf16_inputs():
    t = torch.log_softmax(torch.randn(1, 2, 7), -1).bfloat16()
    s = torch.log_softmax(torch.randn(1, 2, 7), -1).bfloat16()
    assert forward_kl(t, s).dtype == torch.float32


def test_jsd_rejects_degenerate_beta():
    with pytest.raises(ValueError, match="0 < beta < 1"):
        generalized_jsd(_lp(P), _lp(Q), 0.0)
