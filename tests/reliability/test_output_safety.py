"""Paths around the loop that must never lose a user's files (issue 14, first slice)."""

from __future__ import annotations

import json

import pytest

from unisd.cli.main import main
from unisd.engine.checkpoint import CheckpointError
from unisd.engine.launch import OutputDirError, train


def _files(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_a_mistyped_resume_path_writes_nothing_and_lists_the_checkpoints(make_recipe, tmp_path, capsys):
    run = tmp_path / "runs" / "x"
    train(make_recipe("vanilla", "training.max_steps=2"), run)
    keep = tmp_path / "recipe.yaml"  # the user's own file two levels above the typo
    keep.write_text("mine")
    before = _files(tmp_path)
    typo = run / "checkpoints" / "step-0000010"
    assert main(["train", "--recipe", "vanilla", "--resume", str(typo)]) == 2
    err = capsys.readouterr().err
    assert "no such checkpoint directory" in err and "step-00000002" in err
    assert keep.read_text() == "mine" and _files(tmp_path) == before


def test_resume_auto_needs_an_output_dir(capsys):
    assert main(["train", "--resume", "auto"]) == 2
    assert "--resume auto continues the run in --output-dir" in capsys.readouterr().err


def test_overwrite_with_bad_data_keeps_the_old_run(make_recipe, tmp_path):
    run = tmp_path / "run"
    train(make_recipe("vanilla", "training.max_steps=1"), run)
    before = {f: (run / f).read_bytes() for f in _files(run)}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n')  # no gold
    with pytest.raises(Exception):
        train(make_recipe("vanilla", "training.max_steps=1", f"data.dataset={{type: jsonl, path: '{bad}'}}"), run, overwrite=True)
    assert {f: (run / f).read_bytes() for f in _files(run)} == before  # the old run is back, untouched
    assert not list(tmp_path.glob("run.replaced-*"))


def test_overwrite_moves_the_old_run_aside(make_recipe, tmp_path):
    run = tmp_path / "run"
    train(make_recipe("vanilla", "training.max_steps=1"), run)
    old_metrics = (run / "metrics.jsonl").read_text()
    train(make_recipe("vanilla", "training.max_steps=2"), run, overwrite=True)
    aside = list(tmp_path.glob("run.replaced-*"))
    assert len(aside) == 1 and (aside[0] / "metrics.jsonl").read_text() == old_metrics
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and not (run / "heldout-before.json").exists()


def test_overwrite_and_resume_together_are_refused(make_recipe, tmp_path):
    with pytest.raises(OutputDirError, match="contradict"):
        train(make_recipe("vanilla"), tmp_path / "run", overwrite=True, resume="auto")


def test_a_checkpoint_of_another_recipe_is_refused_naming_the_fields(make_recipe, tmp_path):
    a = tmp_path / "a"
    train(make_recipe("vanilla", "training.max_steps=2"), a)
    ckpt = sorted((a / "checkpoints").iterdir())[-1]
    other = make_recipe("vanilla", "training.max_steps=3", "optim.lr=0.5", "divergence.type=reverse_kl")
    with pytest.raises(CheckpointError, match=r"optim\.lr: 0\.01 → 0\.5.*--allow-recipe-change") as exc:
        train(other, tmp_path / "b", resume=str(ckpt))
    assert "divergence.type" in str(exc.value)
    train(other, tmp_path / "c", resume=str(ckpt), allow_recipe_change=True)  # the explicit override


def test_a_checkpoint_with_other_shapes_names_the_parameter(make_recipe, tmp_path):
    a = tmp_path / "a"
    train(make_recipe("vanilla", "training.max_steps=2"), a)
    ckpt = sorted((a / "checkpoints").iterdir())[-1]
    with pytest.raises(CheckpointError, match="has shape .* in the checkpoint but"):
        train(make_recipe("vanilla", "training.max_steps=3", "lora.r=2", "lora.alpha=4"), tmp_path / "b",
              resume=str(ckpt), allow_recipe_change=True)


def test_an_output_dir_that_is_a_file_is_a_clear_error(make_recipe, tmp_path):
    f = tmp_path / "out"
    f.write_text("not a dir")
    with pytest.raises(OutputDirError, match="is a file"):
        train(make_recipe("vanilla"), f)
    assert f.read_text() == "not a dir"


@pytest.mark.parametrize("override", ["optim.lr=.inf", "optim.lr=.nan", "divergence.weight=-.inf", "generation.temperature=.nan"])
def test_non_finite_hyperparameters_are_refused(override):
    from unisd.recipe import RecipeError, load_recipe

    with pytest.raises(RecipeError, match=override.split("=")[0].split(".")[-1]):
        load_recipe("vanilla", [override])


def test_an_exploding_learning_rate_stops_before_sampling_or_saving(make_recipe, tmp_path):
    from unisd.engine.trainer import TrainingStopped

    run = tmp_path / "run"
    with pytest.raises(TrainingStopped, match=r"step 1 left trainable weight .*optim\.lr=1e\+30"):
        train(make_recipe("vanilla", "training.max_steps=3", "optim.lr=1e30", "optim.max_grad_norm=null"), run)
    assert not (run / "checkpoints").exists() or not any((run / "checkpoints").iterdir())


def test_a_full_disk_during_a_checkpoint_leaves_nothing_behind_and_resume_works(make_recipe, tmp_path, monkeypatch):
    import errno

    import torch

    from unisd.engine import checkpoint as ckpt

    run = tmp_path / "run"
    real_save, calls = torch.save, {"n": 0}

    def full_disk(obj, fh, *a, **k):
        calls["n"] += 1
        if calls["n"] > 3:  # the second checkpoint hits a full disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, fh, *a, **k)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError, match=r"could not be written to .*No space left on device.*partial write was removed"):
        train(make_recipe("vanilla", "training.max_steps=3"), run)
    assert not list((run / "checkpoints").glob(".tmp-*"))
    monkeypatch.setattr(torch, "save", real_save)
    summary = train(make_recipe("vanilla", "training.max_steps=3"), run, resume="auto")
    assert summary["steps"] == 3
    # too little free space is said before writing, with the bytes needed
    monkeypatch.setattr(ckpt.shutil, "disk_usage", lambda p: type("U", (), {"free": 10})())
    with pytest.raises(CheckpointError, match=r"has 0\.0 MiB free, the checkpoint needs at least"):
        ckpt.save_checkpoint(tmp_path / "c", 1, {"w": torch.zeros(1 << 20)}, {"step": 1}, keep_last=1)


def test_metrics_rows_never_repeat_after_a_restart_without_checkpoint(make_recipe, tmp_path):
    import shutil

    run = tmp_path / "run"
    train(make_recipe("vanilla", "training.max_steps=2"), run)
    shutil.rmtree(run / "checkpoints")  # as if killed before its first checkpoint
    train(make_recipe("vanilla", "training.max_steps=2"), run, resume="auto")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]


def test_rejects_are_rewritten_on_resume_and_counted(make_recipe, records_file, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text(records_file.read_text() + '{"id": "bad", "prompt": "x"}\nnot json\n')
    overrides = ["training.max_steps=2", f"data.dataset={{type: jsonl, path: '{data}'}}", "data.on_bad_record=skip"]
    run = tmp_path / "run"
    summary = train(make_recipe("vanilla", *overrides), run)
    assert summary["rejected_records"] == 2 and len((run / "rejects.jsonl").read_text().splitlines()) == 2
    train(make_recipe("vanilla", *overrides), run, resume="auto")
    assert len((run / "rejects.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_an_empty_data_file_is_a_clear_error(make_recipe, tmp_path, content, capsys):
    data = tmp_path / "empty.jsonl"
    data.write_text(content)
    from unisd.errors import UserError

    with pytest.raises(UserError, match="produced no records"):
        train(make_recipe("vanilla", f"data.dataset={{type: jsonl, path: '{data}'}}"), tmp_path / "run")


def test_a_missing_data_file_or_an_empty_model_dir_is_one_line_and_leaves_no_dir(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["train", "--data", str(tmp_path / "nope.jsonl"), "-o", str(out)]) == 2
    assert "records file not found" in capsys.readouterr().err and not out.exists()
    (tmp_path / "model").mkdir()
    assert main(["train", "--model", str(tmp_path / "model"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "has no config.json" in err and "Traceback" not in err and not out.exists()


def test_every_prompt_too_long_is_one_clear_error(make_recipe, tmp_path):
    from unisd.errors import UserError

    with pytest.raises(UserError, match=r"every record exceeds data\.max_prompt_length=4 tokens .*raise data\.max_prompt_length"):
        train(make_recipe("vanilla", "data.max_prompt_length=4"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
