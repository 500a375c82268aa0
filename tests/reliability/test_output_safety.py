"""Paths around the loop that must never lose a user's files (issue 14, first slice)."""

from __future__ import annotations

import json

import pytest

from unisd.data.records import BadRecordError

from unisd.cli.main import main
from unisd.engine.checkpoint import CheckpointError
from unisd.runs.launch import OutputDirError, train


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
    with pytest.raises(BadRecordError, match="bad.jsonl, line 1: field"):
        train(
            make_recipe("vanilla", "training.max_steps=1", f"data.dataset={{type: jsonl, path: '{bad}'}}"),
            run,
            overwrite=True,
        )
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
        train(
            make_recipe("vanilla", "training.max_steps=3", "lora.r=2", "lora.alpha=4"),
            tmp_path / "b",
            resume=str(ckpt),
            allow_recipe_change=True,
        )


def test_an_output_dir_that_is_a_file_is_a_clear_error(make_recipe, tmp_path):
    f = tmp_path / "out"
    f.write_text("not a dir")
    with pytest.raises(OutputDirError, match="is a file"):
        train(make_recipe("vanilla"), f)
    assert f.read_text() == "not a dir"


def test_a_read_only_output_dir_is_a_clear_error(make_recipe, tmp_path, monkeypatch):
    import os
    from pathlib import Path

    if os.geteuid() == 0:  # root writes into read-only directories: let the write probe meet EACCES instead
        real = Path.write_text

        def denied(self, *a, **k):
            if self.name == ".unisd-write-test":
                raise PermissionError(13, "Permission denied", str(self))
            return real(self, *a, **k)

        monkeypatch.setattr(Path, "write_text", denied)
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "mine.txt").write_text("keep")
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputDirError, match="cannot be written"):
            train(make_recipe("vanilla"), ro)
        assert _files(ro) == ["mine.txt"] and (ro / "mine.txt").read_text() == "keep"
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize(
    "override", ["optim.lr=.inf", "optim.lr=.nan", "divergence.weight=-.inf", "generation.temperature=.nan"]
)
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
    with pytest.raises(
        CheckpointError, match=r"could not be written to .*No space left on device.*partial write was removed"
    ):
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

    with pytest.raises(
        UserError, match=r"every record exceeds data\.max_prompt_length=4 tokens .*raise data\.max_prompt_length"
    ):
        train(make_recipe("vanilla", "data.max_prompt_length=4"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _cli_train(tiny_model_dir, records_file, out, *extra):
    sets = [
        "generation.max_new_tokens=8",
        "training.batch_size=2",
        "training.grad_accum=1",
        "lora.r=4",
        "lora.alpha=8",
        "logging.progress_bar=false",
        "logging.tensorboard=false",
        "evaluation.heldout=0",
    ]
    return main(
        [
            "train",
            "-r",
            "vanilla",
            "--model",
            str(tiny_model_dir),
            "--data",
            str(records_file),
            "-o",
            str(out),
            "--max-steps",
            "1",
            *[a for s in sets for a in ("--set", s)],
            *extra,
        ]
    )


@pytest.mark.parametrize("damage", ["truncated", "empty", "overwritten"])
def test_damaged_model_weights_are_one_line_naming_the_file(tiny_model_dir, records_file, tmp_path, damage, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "overwritten": b"\0" * 64}[damage])
    assert _cli_train(model, records_file, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "weights of" in err and "model.safetensors" in err and "damaged" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_sigterm_during_setup_is_reported_and_puts_the_old_run_back(
    tiny_model_dir, records_file, tmp_path, monkeypatch, capsys
):
    import os
    import signal
    import time

    from unisd.engine.trainer import Trainer

    run = tmp_path / "run"
    assert _cli_train(tiny_model_dir, records_file, run) == 0
    before = {f: (run / f).read_bytes() for f in _files(run)}
    real_setup = Trainer.setup

    def setup_then_terminated(self):
        real_setup(self)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here
        raise AssertionError("SIGTERM was not turned into an exception")

    monkeypatch.setattr(Trainer, "setup", setup_then_terminated)
    previous = signal.getsignal(signal.SIGTERM)
    assert _cli_train(tiny_model_dir, records_file, run, "--overwrite") == 143
    assert "terminated by SIGTERM" in capsys.readouterr().err
    assert {f: (run / f).read_bytes() for f in _files(run)} == before and not list(tmp_path.glob("run.replaced-*"))
    assert signal.getsignal(signal.SIGTERM) is previous  # the CLI restores the handler it replaced


def test_a_record_that_is_not_text_is_one_line_naming_file_line_and_field(tiny_model_dir, tmp_path, capsys):
    good = {"id": "a", "prompt": "What is 2+2?", "teacher_prompt": "t", "gold": "4", "answer": "4"}
    data = tmp_path / "recs.jsonl"
    data.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "b", "prompt": "2+\ud8002?"}) + "\n")
    assert _cli_train(tiny_model_dir, data, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"{data}, line 2: field 'prompt': character 3 is U+D800, a lone surrogate: not text" in err
    assert "likely a bug" not in err and "Traceback" not in err and not (tmp_path / "out").exists()


def test_data_naming_a_directory_is_one_line_naming_it(tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "my-data"
    folder.mkdir()
    assert _cli_train(tiny_model_dir, folder, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"--data {folder} is a directory" in err and f"gsm8k:{folder}" in err and "unknown type" not in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_a_finished_run_trains_longer_with_a_higher_max_steps(tiny_model_dir, records_file, tmp_path, capsys):
    out = tmp_path / "run"
    sets = ["checkpoint.every_steps=1", "training.epochs=3"]
    assert _cli_train(tiny_model_dir, records_file, out, *[a for s in sets for a in ("--set", s)]) == 0  # 1 step
    lr = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["lr"]
    longer = ["--max-steps", "3", "--resume", "auto", *[a for s in sets for a in ("--set", s)]]
    assert _cli_train(tiny_model_dir, records_file, out, *longer) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[0]["lr"] == lr
    assert json.loads((out / "summary.json").read_text())["steps"] == 3
    # a change that matters is still refused, and the message says how to force it
    capsys.readouterr()
    assert _cli_train(tiny_model_dir, records_file, out, *longer, "--set", "optim.lr=0.5") == 2
    err = capsys.readouterr().err
    assert "optim.lr: 2e-05 → 0.5" in err and "--allow-recipe-change" in err
