"""Clipping (spec §2e), contrastive sign (§2c), feature matching (§2d)."""

import math

import pytest
import torch

from unisd.components.batch import DistillBatch, Scores
from unisd_plugins.clipping.guard import ClipConfig, DivergenceClip
from unisd_plugins.contrastive.loss import ContrastiveConfig, TokenContrastive
from unisd_plugins.divergences.functions import GeneralizedJSD, JSDConfig, ForwardKL
from unisd.components.kinds import DivergenceConfig


class _Run:
    def __init__(self, div):
        self.extras = {"divergence": div}


def _batch(ls, lt, ln, mask):
    B, T = ls.shape

    def score_contexts(texts, *, temperature, full_logprobs=False, feature_layers=()):
        return Scores(token_logps=ln)

    recs = [{"id": str(b), "negative_prompt": "bad"} for b in range(B)]
    return DistillBatch(recs, torch.zeros(B, T, dtype=torch.long), mask, Scores(ls), Scores(lt), 0.7, 0, score_contexts)


def _clip(div, **kw):
    g = DivergenceClip(ClipConfig(type="clip", **kw))
    g.setup(_Run(div))
    return g


def test_static_cap_binds_and_zeroes_gradient_of_clipped_tokens():
    d = torch.tensor([[1.0, 20.0, 5.0]], requires_grad=True)
    g = _clip(ForwardKL(DivergenceConfig(type="forward_kl")), cap=10.0)
    b = _batch(torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 3), torch.ones(1, 3))
    out = g.transform_divergence(d, torch.ones(1, 3), b)
    assert out.tolist() == [[1.0, 10.0, 5.0]]
    out.sum().backward()
    assert d.grad.tolist() == [[1.0, 0.0, 1.0]]
    assert b.logs["clip/fraction"] == pytest.approx(1 / 3)


def test_static_cap_that_cannot_bind_on_jsd_is_an_error():
    with pytest.raises(ValueError, match="can never bind"):
        _clip(GeneralizedJSD(JSDConfig(type="jsd", beta=0.5)), cap=10.0)


@pytest.mark.parametrize("kw", [{"mode": "quantile", "quantile": 0.5}, {"mode": "fraction", "fraction": 0.5}])
def test_adaptive_caps_bind_on_jsd(kw):
    g = _clip(GeneralizedJSD(JSDConfig(type="jsd", beta=0.5)), **kw)
    d = torch.tensor([[0.05, 0.1, 0.6, 0.69]])
    b = _batch(torch.zeros(1, 4), torch.zeros(1, 4), torch.zeros(1, 4), torch.ones(1, 4))
    out = g.transform_divergence(d, torch.ones(1, 4), b)
    assert out.max() < d.max() and b.logs["clip/fraction"] > 0
    if kw["mode"] == "fraction":
        assert out.max().item() == pytest.approx(0.5 * math.log(2), abs=1e-6)


def test_contrastive_is_zero_when_far_closer_to_good_teacher_and_positive_otherwise():
    loss = TokenContrastive(ContrastiveConfig(type="contrastive", margin=0.5))
    ls = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    good = loss.compute(_batch(ls, torch.tensor([[-1.0, -1.1]]), torch.tensor([[-5.0, -5.0]]), torch.ones(1, 2)))
    assert good.value.item() == 0.0
    bad = loss.compute(_batch(ls, torch.tensor([[-5.0, -5.0]]), torch.tensor([[-1.0, -1.0]]), torch.ones(1, 2)))
    assert bad.value.item() == pytest.approx(0.5 + 4.0)
    bad.value.backward()
    # descending moves ℓS towards the good teacher (−5): the gradient on ℓS is positive
    assert (ls.grad > 0).all()
