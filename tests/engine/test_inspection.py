"""``unisd inspect``: divergence by position and token class, greedy teacher vs student, held-out curve."""

import json

import pytest

from unisd.runs.inspection import answer_positions, heldout_curve, inspect_run, position_bin, token_class


@pytest.mark.parametrize(
    "pos,text,eos,cls",
    [
        (0, " 12", False, "opening"),
        (5, " 12", False, "digits"),
        (5, " To", False, "words"),
        (5, "\n", False, "format"),
        (5, " =", False, "format"),
        (5, "", True, "eos"),
    ],
)
def test_token_classes(pos, text, eos, cls):
    assert token_class(pos, text, eos, opening=3) == cls


def test_answer_tokens_are_those_spelling_the_last_occurrence_of_the_answer():
    pieces = ["3", "4", " +", " 2", " =", " 3", "6", "\n", "Answer", ":", " 3", "6"]
    assert answer_positions(pieces, "36") == {10, 11}
    assert answer_positions(pieces, "99") == set()
    assert token_class(10, " 3", False, opening=3, in_answer=True) == "answer"


def test_position_bins():
    assert [position_bin(p) for p in (0, 3, 4, 5, 7, 100, 5000)] == ["0", "3", "4-5", "4-5", "6-7", "64-127", "2048+"]


def test_inspect_a_trained_run_writes_tables_plots_and_numbers(make_recipe, tmp_path):
    from unisd.runs.launch import train

    recipe = make_recipe(
        "vanilla",
        "training.max_steps=2",
        "evaluation.heldout=4",
        "evaluation.heldout_every=1",
        "evaluation.heldout_split=train",
    )
    run = tmp_path / "run"
    train(recipe, run)
    curve = heldout_curve(run)
    assert [p["step"] for p in curve] == [0, 1, 2]  # before, every step, after
    report = inspect_run(run, records=4, progress=False)
    assert set(report["students"]) == {"base", "trained"}
    for entry in report["students"].values():
        shares = sum(c["share"] for c in entry["by_class"].values())
        assert shares == pytest.approx(1.0)
        assert sum(c["tokens"] for c in entry["by_position"].values()) == sum(
            c["tokens"] for c in entry["by_class"].values()
        )
        assert entry["by_class"]["opening"]["tokens"] <= 3 * 4
        assert 0.0 <= entry["greedy_student"]["accuracy"] <= 1.0 and 0.0 <= entry["greedy_teacher"]["accuracy"] <= 1.0
    out = run / "inspect"
    for name in (
        "inspect.json",
        "inspect.md",
        "divergence_by_position.png",
        "divergence_by_class.png",
        "heldout_curve.png",
    ):
        assert (out / name).is_file(), name
    assert json.loads((out / "inspect.json").read_text())["records"] == 4
    assert "| opening |" in (out / "inspect.md").read_text()


def test_inspect_refuses_a_directory_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        inspect_run(tmp_path)


def test_heldout_every_without_heldout_records_is_refused():
    from unisd.recipe import RecipeError, load_recipe

    with pytest.raises(RecipeError, match="heldout_every needs heldout > 0"):
        load_recipe("vanilla", ["evaluation.heldout_every=5"])
