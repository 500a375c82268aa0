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
        self.divergence = div


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


def test_feature_matching_layers_by_index_and_path_cosine_and_projection(tiny_model_dir, make_recipe):
    from transformers import AutoModelForCausalLM

    from unisd.engine.batching import pad_left, pad_right
    from unisd.engine.modeling import build_student
    from unisd.engine.scoring import score
    from unisd_plugins.feature_matching.loss import FeatureMatching, FeatureMatchingConfig

    model = build_student(AutoModelForCausalLM.from_pretrained(tiny_model_dir), make_recipe("vanilla")).eval()

    class _Run:
        pass

    run = _Run()
    run.model, run.device = model, torch.device("cpu")
    fm = FeatureMatching(
        FeatureMatchingConfig(type="feature_matching", layers=[-1, "model.norm"], metric="cosine", projection=True)
    )
    fm.setup(run)
    assert fm.paths == ["model.layers.1", "model.norm"]
    assert set(fm.requirements().feature_layers) == {"model.layers.1", "model.norm"}
    assert len(fm.trainable_parameters()) == 2  # one identity-initialised projection per layer
    cids, cmask = pad_right([[20, 21, 22]], 0)
    s = score(model, model, pad_left([[5, 6, 7]], 0), cids, cmask, temperature=1.0, feature_layers=fm.paths)
    with torch.no_grad(), model.disable_adapter():
        t = score(model, model, pad_left([[8, 9, 10, 11]], 0), cids, cmask, temperature=1.0, feature_layers=fm.paths)
    same = fm.compute(DistillBatch([{}], cids, cmask, s, s, 1.0, 0, None)).value
    assert same.item() == pytest.approx(0.0, abs=1e-5)  # identical features: zero cosine distance
    term = fm.compute(DistillBatch([{}], cids, cmask, s, t, 1.0, 0, None))
    assert term.value.item() > 0 and set(term.logs) == {"model.layers.1", "model.norm", "distance"}
    assert term.logs["distance"] == pytest.approx(term.value.item())
    term.value.backward()
    assert all(p.grad is not None for p in fm.trainable_parameters())
    state = fm.unisd_checkpoint_state(None)
    fm2 = FeatureMatching(fm.config)
    fm2.setup(run)
    fm2.unisd_load_checkpoint_state(None, state)
    assert all(torch.equal(a, b) for a, b in zip(fm.trainable_parameters(), fm2.trainable_parameters(), strict=True))


def test_feature_layer_index_out_of_range_is_a_clear_error(tiny_model_dir, make_recipe):
    from transformers import AutoModelForCausalLM

    from unisd_plugins.feature_matching.loss import FeatureMatching, FeatureMatchingConfig

    class _Run:
        pass

    run = _Run()
    run.model, run.device = AutoModelForCausalLM.from_pretrained(tiny_model_dir), torch.device("cpu")
    with pytest.raises(ValueError, match="index 7 out of range"):
        FeatureMatching(FeatureMatchingConfig(type="feature_matching", layers=[7])).setup(run)


def test_relative_cap_is_a_multiple_of_the_batch_mean_and_ties_keep_their_gradient():
    g = _clip(ForwardKL(DivergenceConfig(type="forward_kl")), mode="relative", factor=2.0)
    d = torch.tensor([[1.0, 1.0, 1.0, 5.0]], requires_grad=True)  # mean 2 -> cap 4
    b = _batch(torch.zeros(1, 4), torch.zeros(1, 4), torch.zeros(1, 4), torch.ones(1, 4))
    out = g.transform_divergence(d, torch.ones(1, 4), b)
    assert out.tolist() == [[1.0, 1.0, 1.0, 4.0]] and b.logs["clip/cap"] == pytest.approx(4.0)
    out.sum().backward()
    assert d.grad.tolist() == [[1.0, 1.0, 1.0, 0.0]]


def test_quantile_cap_gives_a_token_exactly_at_the_cap_its_full_gradient():
    g = _clip(ForwardKL(DivergenceConfig(type="forward_kl")), mode="quantile", quantile=0.5)
    d = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)  # median 2.0 is a token's own value
    b = _batch(torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 3), torch.ones(1, 3))
    g.transform_divergence(d, torch.ones(1, 3), b).sum().backward()
    assert d.grad.tolist() == [[1.0, 1.0, 0.0]]
