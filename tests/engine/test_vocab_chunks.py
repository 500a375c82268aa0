"""Block-wise LM head + log-softmax + divergence: equal to the naive full-vocabulary path, values and
gradients, for every divergence and for a frozen or a trainable head; and a whole micro-step of
each kind of recipe gives the same loss and gradients with ``training.logit_chunk`` on or off."""

from __future__ import annotations

import pytest
import torch

from unisd.engine.vocab_chunks import block_logprobs, divergence_and_token_logprobs, token_logprobs
from unisd_plugins.divergences.functions import forward_kl, generalized_jsd, reverse_kl

DIVERGENCES = {"forward_kl": forward_kl, "reverse_kl": reverse_kl, "jsd": lambda t, s: generalized_jsd(t, s, 0.3)}


def _naive(per_token, hs, ht, w, wt, ids, tau):
    s, t = block_logprobs(hs, w, None, tau), block_logprobs(ht, wt, None, tau).detach()
    return per_token(t, s), s.gather(-1, ids[..., None])[..., 0], t.gather(-1, ids[..., None])[..., 0]


@pytest.mark.parametrize("name", sorted(DIVERGENCES))
@pytest.mark.parametrize("trainable_head", [False, True])
def test_blocks_equal_the_naive_path_values_and_gradients(name, trainable_head):
    g = torch.Generator().manual_seed(0)
    B, T, H, V, tau = 3, 5, 8, 50, 0.7
    hs = torch.randn(B, T, H, generator=g, requires_grad=True)
    ht = torch.randn(B, T, H, generator=g)
    w = (torch.randn(V, H, generator=g) / 2).requires_grad_(trainable_head)
    wt = torch.randn(V, H, generator=g) / 2
    ids = torch.randint(0, V, (B, T), generator=g)
    upstream = torch.randn(B, T, generator=g), torch.randn(B, T, generator=g)
    per_token = DIVERGENCES[name]

    def grads(div, tok):
        loss = (div * upstream[0]).sum() + (tok * upstream[1]).sum()
        return torch.autograd.grad(loss, [hs, w] if trainable_head else [hs])

    ref = _naive(per_token, hs, ht, w, wt, ids, tau)
    ref_grads = grads(*ref[:2])
    for chunk in (1, 4, 7, 100):  # blocks that divide B·T, that do not, and one block for all
        got = divergence_and_token_logprobs(per_token, hs, (w, None), ht, (wt, None), ids, tau, chunk=chunk)
        for a, b in zip(got, ref, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert not got[2].requires_grad
        values_only = divergence_and_token_logprobs(
            per_token, hs, (w, None), ht, (wt, None), ids, tau, chunk=chunk, token_grad=False
        )[1]
        assert not values_only.requires_grad
        torch.testing.assert_close(values_only, ref[1], rtol=1e-5, atol=1e-6)
        for a, b in zip(grads(*got[:2]), ref_grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_token_logprobs_with_and_without_gradient():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(2, 6, 4, generator=g, requires_grad=True)
    w, ids = torch.randn(30, 4, generator=g), torch.randint(0, 30, (2, 6), generator=g)
    ref = block_logprobs(h, w, None, 1.3).gather(-1, ids[..., None])[..., 0]
    got = token_logprobs(h, w, None, ids, 1.3, chunk=5)
    torch.testing.assert_close(got, ref)
    (gr,), (gg,) = torch.autograd.grad(ref.sum(), h), torch.autograd.grad(got.sum(), h)
    torch.testing.assert_close(gg, gr)
    with torch.no_grad():
        assert not token_logprobs(h, w, None, ids, 1.3, chunk=5).requires_grad


@pytest.mark.parametrize(
    "name,extra",
    [
        ("vanilla", ()),
        ("sdft", ()),
        ("sft", ()),
        ("unisd-star", ()),
        ("unisd-ema", ()),
        ("vanilla", ("lora.enabled=false", "components=[{type: frozen_copy}]")),
        ("unisd-feature", ("components=[{type: frozen_copy}, {type: feature_matching}]",)),
    ],
)
def test_a_micro_step_is_the_same_with_blocks(make_recipe, tmp_path, name, extra, monkeypatch):
    """Loss, logged terms and LoRA gradients of one micro-batch, naive vs blocks of 3 tokens."""
    from unisd.engine import scoring, step, vocab_chunks
    from unisd.engine.trainer import Trainer

    calls = []
    for module, fn in ((step, "divergence_and_token_logprobs"), (scoring, "token_logprobs")):
        real = getattr(vocab_chunks, fn)
        monkeypatch.setattr(module, fn, lambda *a, real=real, fn=fn, **k: calls.append(fn) or real(*a, **k))

    trainer = Trainer(make_recipe(name, "training.logit_chunk=3", *extra), tmp_path / "run")
    run = trainer.setup()
    rows = [run.records[i] for i in range(2)]
    params = [p for p in run.model.parameters() if p.requires_grad]
    results = {}
    for chunk in (0, 3):
        trainer.micro.logit_chunk = chunk
        torch.manual_seed(123)
        res = trainer.micro(rows, 1, torch.Generator().manual_seed(7))
        grads = torch.autograd.grad(res.loss, params, allow_unused=True)
        results[chunk] = (res, [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)])
    (a, ga), (b, gb) = results[0], results[3]
    assert calls.count("divergence_and_token_logprobs" if name != "sft" else "token_logprobs") >= 1  # blocks were used
    if name == "unisd-star":  # the agreement contexts and the negative are scored in blocks too
        assert "token_logprobs" in calls
    torch.testing.assert_close(b.loss, a.loss, rtol=1e-5, atol=1e-6)
    assert set(a.terms) == set(b.terms)
    for k in a.terms:
        torch.testing.assert_close(b.terms[k], a.terms[k], rtol=1e-5, atol=1e-6)
    for x, y in zip(gb, ga, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)
    trainer.close()


def test_a_component_that_reads_full_logprobs_gets_them(make_recipe, tmp_path):
    """Requirements(full_logprobs=True) turns the blocks off for the run: batch.*.logprobs are there."""
    from unisd.components.base import Requirements
    from unisd.engine.trainer import Trainer

    trainer = Trainer(make_recipe("unisd-clip"), tmp_path / "run")
    run = trainer.setup()
    guard = trainer.micro.guards[0]
    seen = []
    guard.requirements = lambda: Requirements(full_logprobs=True)
    original = guard.transform_divergence

    def spy(div, mask, batch):
        seen.append((batch.student.logprobs is not None, batch.teacher.logprobs is not None))
        return original(div, mask, batch)

    guard.transform_divergence = spy
    from unisd.engine.step import MicroStep

    run.components = [guard]
    micro = MicroStep(run, trainer.ddp_model, trainer.micro.teacher, trainer.micro.generator, trainer.micro.objective)
    assert micro.logit_chunk == 0 and trainer.micro.logit_chunk == 256
    micro([run.records[0], run.records[1]], 1, torch.Generator().manual_seed(0))
    assert seen == [(True, True)]
    trainer.close()
