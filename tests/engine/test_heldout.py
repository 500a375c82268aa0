"""The held-out before/after check of a run, and the dataset answer checks it relies on."""

import json

import pytest

from unisd.runs.launch import train
from unisd_plugins.datasets.answers import is_correct, last_number


def test_run_reports_heldout_accuracy_before_and_after(make_recipe, tmp_path, shared_data):
    recipe = make_recipe(
        "vanilla",
        "training.max_steps=1",
        f"data.dataset={{type: gsm8k, path: '{shared_data / 'gsm8k'}'}}",
        "evaluation.heldout=3",
        "evaluation.heldout_max_new_tokens=4",
    )
    summary = train(recipe, tmp_path / "run")
    h = summary["heldout"]
    assert h["n"] == 3 and h["split"] == "test"
    assert 0.0 <= h["accuracy_before"] <= 1.0 and 0.0 <= h["accuracy_after"] <= 1.0
    before = json.loads((tmp_path / "run" / "heldout-before.json").read_text())
    assert len(before["answers"]) == 3 and all("correct" in a for a in before["answers"])


@pytest.mark.parametrize(
    "text,expected",
    [
        ("The answer is 1,234.", "1234"),
        ("#### 72", "72"),
        ("x = 3.0", "3"),
        ("none", None),
        ("1. It is 7.\n2. Then", "7"),
        ("1.5 and\n2) 4 more", "4"),
        ("180.708000", "180.708"),
        ("-2.50", "-2.5"),
        ("100", "100"),
        ("30.00", "30"),
    ],
)
def test_last_number(text, expected):
    assert last_number(text) == expected


def test_answer_checks_by_task():
    assert is_correct({"answer": "18", "meta": {"task": "math"}}, "She makes 9 * 2 = 18 dollars.")
    assert not is_correct({"answer": "18", "meta": {"task": "math"}}, "18 eggs, 16 left")
    mcqa = {"answer": "B", "meta": {"task": "mcqa", "num_choices": 3, "correct_letter": "B"}}
    assert is_correct(mcqa, "Reasoning: ...\nAnswer: B") and not is_correct(mcqa, "Answer: C")


def test_run_evaluates_lm_eval_tasks_in_process_after_training(make_recipe, tmp_path, shared_data):
    recipe = make_recipe(
        "vanilla",
        "training.max_steps=1",
        "evaluation.tasks=[unisd_gpqa_mc]",
        "evaluation.limit=2",
        f"evaluation.data_dir={shared_data}",
        "evaluation.max_gen_toks=4",
    )
    summary = train(recipe, tmp_path / "run")
    assert "unisd_gpqa_mc" in json.dumps(summary["evaluation"])
    assert (tmp_path / "run" / "eval" / "results.md").exists()
