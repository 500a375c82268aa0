"""Retention and fit metrics: JSD properties, PPL definition, identical-model invariants."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from unisd.engine.decoding import generate_texts
from unisd.evaluation.retention import (
    jsd_stats,
    logp_stats,
    paired_stats,
    retention_report,
    token_jsd,
)


def test_token_jsd_bounds_and_symmetry() -> None:
    p = torch.log_softmax(torch.randn(5, 7), -1)
    q = torch.log_softmax(torch.randn(5, 7), -1)
    assert torch.allclose(token_jsd(p, p), torch.zeros(5), atol=1e-6)
    assert torch.allclose(token_jsd(p, q), token_jsd(q, p), atol=1e-6)
    disjoint_p = torch.log(torch.tensor([[1.0, 1e-30], [0.5, 0.5]]))
    disjoint_q = torch.log(torch.tensor([[1e-30, 1.0], [0.5, 0.5]]))
    out = token_jsd(disjoint_p, disjoint_q)
    assert out[0] == pytest.approx(math.log(2), abs=1e-5) and out[1] == pytest.approx(0.0, abs=1e-6)
    assert (token_jsd(p, q) <= math.log(2) + 1e-6).all()


def test_ppl_is_mean_of_per_example_exponentials() -> None:
    stats = logp_stats([-1.0, -3.0, float("nan")])
    assert stats["n"] == 2 and stats["mean_logp"] == pytest.approx(-2.0)
    assert stats["ppl"] == pytest.approx((math.e + math.e**3) / 2)
    assert jsd_stats([0.1, 0.3])["mean"] == pytest.approx(0.2)


def test_paired_stats() -> None:
    method = {"per_example": {"jsd": [0.1, 0.2, 0.3], "base_logp_of_model_completion": [-1.0, -2.0, -3.0]}}
    sft = {"per_example": {"jsd": [0.2, 0.1, 0.4], "base_logp_of_model_completion": [-2.0, -1.0, -4.0]}}
    out = paired_stats(method, sft)
    assert out["jsd_lower_pct"] == pytest.approx(200 / 3) and out["base_logp_higher_pct"] == pytest.approx(200 / 3)


def test_report_on_tiny_model(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tuned = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.05 * torch.randn_like(p))
    prompts = ["def add(a, b):", "Answer the question.", "x"]
    ys = generate_texts(tuned, tok, prompts, max_new_tokens=6, batch_size=2)
    gold = ["return a + b", "Answer: A", "y"]
    same = retention_report(base, base, tok, prompts, ys, gold, batch_size=2)
    assert same["jsd"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert same["gold_fit"]["ppl"] == pytest.approx(same["gold_fit_base"]["ppl"], rel=1e-5)
    rep = retention_report(tuned, base, tok, prompts, ys, gold, base_completions=ys, batch_size=3)
    assert 0 < rep["jsd"]["mean"] <= math.log(2)
    assert rep["retention"]["ppl"] == pytest.approx(same["retention"]["ppl"], rel=1e-4)  # same completions, same base
    assert rep["reverse_jsd"]["mean"] == pytest.approx(rep["jsd"]["mean"], rel=1e-4)
    # batching does not change the numbers
    rep1 = retention_report(tuned, base, tok, prompts, ys, gold, batch_size=1)
    assert rep1["jsd"]["mean"] == pytest.approx(rep["jsd"]["mean"], rel=1e-4)
    assert rep1["gold_fit"]["ppl"] == pytest.approx(rep["gold_fit"]["ppl"], rel=1e-4)
