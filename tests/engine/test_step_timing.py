"""Each step's metrics say how much of it was spent sampling (``time/generate_s``) and in the
teacher's scoring calls (``time/teacher_s``)."""

import json

import pytest

from unisd.runs.launch import train


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("recipe, samples, teacher", [("vanilla", True, True), ("sft", False, False)])
def test_steps_log_their_sampling_and_teacher_time(make_recipe, tmp_path, recipe, samples, teacher):
    train(make_recipe(recipe, "training.max_steps=2"), tmp_path / "run")
    rows = _rows(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert 0.0 <= r["time/generate_s"] <= r["time/step_s"]
        assert (r["time/generate_s"] > 0) is samples  # vanilla samples; SFT trains on the gold completion
        assert 0.0 <= r["time/teacher_s"] <= r["time/step_s"] - r["time/generate_s"]
        assert (r["time/teacher_s"] > 0) is teacher  # SFT has no teacher
