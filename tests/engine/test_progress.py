"""Long phases show progress like the training bar: the held-out checks and the retention scores."""

from __future__ import annotations

import pytest
import tqdm.auto

from unisd.runs.launch import train


@pytest.fixture
def bars(monkeypatch) -> list[dict]:
    """The keyword arguments of every tqdm bar made (the bars themselves drawn nowhere)."""
    made: list[dict] = []
    real = tqdm.auto.tqdm

    class Recorder(real):
        def __init__(self, *a, **k):
            made.append(k)
            super().__init__(*a, **{**k, "disable": True})

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    return made


def test_the_held_out_checks_show_a_progress_bar(make_recipe, tmp_path, bars):
    train(
        make_recipe("vanilla", "training.max_steps=1", "evaluation.heldout=3", "logging.progress_bar=true"),
        tmp_path / "run",
    )
    shown = [(b.get("desc"), b.get("total"), b.get("disable")) for b in bars if b.get("unit") == "answer"]
    assert ("held-out check before", 3, None) in shown and (
        "held-out check after",
        3,
        None,
    ) in shown  # None: on a terminal
    bars.clear()
    train(
        make_recipe("vanilla", "training.max_steps=1", "evaluation.heldout=3"), tmp_path / "quiet"
    )  # progress_bar=false
    assert all(b.get("disable") is True for b in bars if b.get("unit") == "answer")


def test_the_retention_scores_show_a_progress_bar(tiny_model_dir, bars):
    from unisd.evaluation.loading import load_for_eval
    from unisd.evaluation.retention import score_completions

    model, tok = load_for_eval(str(tiny_model_dir))
    score_completions(model, tok, ["a", "b", "c"], ["x", "y", "z"])
    assert [(b["desc"], b["total"], b["disable"]) for b in bars if b.get("unit") == "example"] == [
        ("retention scores", 3, None)
    ]
