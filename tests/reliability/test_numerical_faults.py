"""Numerical faults: non-finite steps are skipped and logged; too many stop the run with a checkpoint;
empty completions, all-masked rows and truncations never produce NaN."""

import json
import math

import pytest
import torch

from unisd.runs.launch import train
from unisd.engine.trainer import TrainingStopped
from unisd_plugins.divergences.functions import ForwardKL
from unisd_plugins.generation.hf import HFGenerate


def _rows(run_dir):
    return [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_nan_divergence_step_is_skipped_and_logged(make_recipe, tmp_path, monkeypatch):
    calls = {"n": 0}
    orig = ForwardKL.per_token

    def flaky(self, t, s):
        calls["n"] += 1
        d = orig(self, t, s)
        return d * float("nan") if calls["n"] == 3 else d  # a micro-batch of step 2

    monkeypatch.setattr(ForwardKL, "per_token", flaky)
    train(make_recipe("vanilla", "training.max_steps=3"), tmp_path / "run")
    rows = _rows(tmp_path / "run")
    assert [r.get("skipped", 0) for r in rows] == [0, 1.0, 0]
    assert rows[1]["skipped_terms"] == "forward_kl, total"
    assert math.isfinite(rows[2]["loss/total"])


def test_consecutive_bad_steps_stop_the_run_with_a_checkpoint(make_recipe, tmp_path, monkeypatch):
    orig = ForwardKL.per_token
    monkeypatch.setattr(ForwardKL, "per_token", lambda self, t, s: orig(self, t, s) * float("inf"))
    with pytest.raises(TrainingStopped, match="2 consecutive steps with non-finite forward_kl"):
        train(make_recipe("vanilla", "training.max_steps=5", "training.max_bad_steps=2"), tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints").exists()


def test_weights_unchanged_by_a_skipped_step(make_recipe, tmp_path, monkeypatch):
    from unisd.engine.trainer import Trainer

    orig = ForwardKL.per_token
    monkeypatch.setattr(ForwardKL, "per_token", lambda self, t, s: orig(self, t, s) * float("nan"))
    trainer = Trainer(make_recipe("vanilla", "training.max_steps=1", "training.max_bad_steps=5"), tmp_path / "run")
    trainer.setup()
    before = {n: p.detach().clone() for n, p in trainer.run.model.named_parameters() if p.requires_grad}
    metrics = trainer.train_step(0)
    trainer.close()
    assert metrics["skipped"] == 1.0
    for n, p in trainer.run.model.named_parameters():
        if p.requires_grad:
            assert torch.equal(p.detach(), before[n]), n


def test_empty_completions_do_not_produce_nan(make_recipe, tmp_path, monkeypatch):
    """The student emits EOS at once: one scored token per row, finite loss."""

    def eos_only(self, model, prompt_ids, prompt_mask, params, *, eos_token_ids=(), pad_token_id=0):
        return torch.full((prompt_ids.shape[0], 1), eos_token_ids[0], dtype=torch.long)

    monkeypatch.setattr(HFGenerate, "generate", eos_only)
    train(
        make_recipe("unisd-star", "training.max_steps=1", "components.agreement.contexts={type: random, k: 2}"),
        tmp_path / "run",
    )
    row = _rows(tmp_path / "run")[0]
    assert row.get("skipped", 0) == 0 and math.isfinite(row["loss/total"]) and row["completion/length"] == 1.0


def test_all_truncated_masked_rows_do_not_produce_nan(make_recipe, tmp_path):
    """Every completion hits the length limit and is masked out: the loss is 0, not NaN."""
    train(
        make_recipe(
            "vanilla",
            "training.max_steps=1",
            "generation.max_new_tokens=2",
            "generation.mask_truncated=true",
            "generation.temperature=1.0",
        ),
        tmp_path / "run",
    )
    row = _rows(tmp_path / "run")[0]
    assert math.isfinite(row["loss/total"]) and row.get("skipped", 0) == 0
