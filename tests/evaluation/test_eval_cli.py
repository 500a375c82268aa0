"""``unisd eval`` / ``unisd compare`` end to end with the tiny model, and model-source resolution."""

from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path

import pytest

from unisd.cli.main import main
from unisd.evaluation.loading import resolve_model_source
from unisd.evaluation.tasks import catalog

_CAT = catalog()
TASKS = [n for n in _CAT.tasks if _CAT.origins[n] == "unisd"]  # the built-in tasks and groups
GROUPS = [n for n in _CAT.groups if _CAT.origins[n] == "unisd"]


@pytest.fixture(scope="module")
def eval_dir(tiny_model_dir: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval-out")
    old = os.environ.get("UNISD_EVAL_MAX_GEN_TOKS")
    os.environ["UNISD_EVAL_MAX_GEN_TOKS"] = "24"
    try:
        rc = main(
            [
                "eval",
                "--model",
                str(tiny_model_dir),
                "--tasks",
                "unisd-six,unisd-mc,unisd_cose_options",
                "--limit",
                "2",
                "--batch-size",
                "4",
                "--data-dir",
                str(shared_data),
                "--output-dir",
                str(out),
            ]
        )
    finally:
        os.environ.pop("UNISD_EVAL_MAX_GEN_TOKS") if old is None else os.environ.__setitem__(
            "UNISD_EVAL_MAX_GEN_TOKS", old
        )
    assert rc == 0
    return out


def test_eval_writes_results_for_every_task(eval_dir: Path) -> None:
    data = json.loads((eval_dir / "results.json").read_text())
    summary, skipped = data["unisd"]["summary"], data["unisd"]["skipped"]
    assert set(summary) | set(skipped) == set(TASKS)
    assert set(skipped) == {"unisd_scienceqa", "unisd_scienceqa_mc"}  # problems.json is not in shared data
    assert "problems.json" in skipped["unisd_scienceqa"]
    for task, row in summary.items():
        assert row["n"] == 2, task
    assert 0.0 <= summary["unisd_mbpp"]["pass@1"] <= 1.0 and "full_acc" in summary["unisd_toolalpaca"]
    assert "extracted" in summary["unisd_gpqa"] and "acc_norm" in summary["unisd_cose_mc"]
    assert set(data["unisd"]["breakdown"]["unisd_gpqa"]) <= {"Physics", "Chemistry", "Biology"}
    md = (eval_dir / "results.md").read_text()
    assert "| unisd_humaneval | pass@1 |" in md and "data unavailable" in md


def test_eval_output_has_no_gpqa_text(eval_dir: Path, shared_data: Path) -> None:
    import csv

    with open(shared_data / "gpqa" / "gpqa_main.csv", newline="", encoding="utf-8") as fh:
        rows = list(itertools.islice(csv.DictReader(fh), 3))
    for path in eval_dir.iterdir():
        text = path.read_text(errors="ignore")
        assert not any(r["Question"].strip()[:60] in text for r in rows), path


def test_compare(eval_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    other = tmp_path / "run-b" / "eval"
    other.mkdir(parents=True)
    shutil.copy(eval_dir / "results.json", other / "results.json")
    out = tmp_path / "cmp"
    assert main(["compare", str(eval_dir), str(tmp_path / "run-b"), "-o", str(out)]) == 0
    md = (out / "comparison.md").read_text()
    assert "run-b" in md and "| unisd_mbpp | pass@1 |" in md
    assert (out / "comparison.png").stat().st_size > 1000


def test_list_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--list-tasks"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in [*TASKS, *GROUPS])


def test_unknown_task_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--model", "x", "--tasks", "nope"]) == 2
    assert "unknown task" in capsys.readouterr().err


def test_model_source_resolution(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert resolve_model_source(str(tiny_model_dir)).path == str(tiny_model_dir.resolve())
    assert resolve_model_source("smollm2-135m-instruct").path == "smollm2-135m-instruct"
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "final" / "merged").symlink_to(tiny_model_dir, target_is_directory=True)
    (run / "recipe.yaml").write_text("model:\n  name_or_path: base-model\n")
    src = resolve_model_source(str(run))
    assert src.path == str(run / "final" / "merged") and src.base == "base-model" and src.run_dir == str(run)
    adapter_run = tmp_path / "run2"
    (adapter_run / "final" / "adapter").mkdir(parents=True)
    (adapter_run / "final" / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "b"}))
    src2 = resolve_model_source(str(adapter_run))
    assert src2.path == "b" and src2.adapter == str(adapter_run / "final" / "adapter")
    with pytest.raises(ValueError):
        resolve_model_source(str(tmp_path / "run2" / "final"))


def test_evaluate_model_in_process_keeps_gpqa_samples_off_disk(
    tiny_model_dir: Path, shared_data: Path, tmp_path: Path
) -> None:
    from unisd.evaluation.loading import load_for_eval
    from unisd.evaluation.runner import evaluate_model

    model, tok = load_for_eval(str(tiny_model_dir))
    model.train()
    report = evaluate_model(
        model,
        tok,
        "unisd_gpqa,toolalpaca",
        limit=1,
        data_dir=shared_data,
        output_dir=tmp_path,
        max_gen_toks=8,
        log_samples=True,
    )
    assert model.training  # the caller's mode is restored
    assert set(report["summary"]) == {"unisd_gpqa", "unisd_toolalpaca"}
    assert (tmp_path / "samples_unisd_toolalpaca.jsonl").is_file()
    assert not list(tmp_path.glob("samples_unisd_gpqa*"))


def test_eval_with_retention_against_a_base(tiny_model_dir: Path, shared_data: Path, tmp_path: Path) -> None:
    import json

    out = tmp_path / "ret"
    rc = main(
        [
            "eval",
            "--model",
            str(tiny_model_dir),
            "--tasks",
            "unisd_mbpp",
            "--limit",
            "1",
            "--max-gen-toks",
            "4",
            "--data-dir",
            str(shared_data),
            "-o",
            str(out),
            "--retention-base",
            str(tiny_model_dir),
            "--retention-limit",
            "2",
            "--retention-max-new-tokens",
            "4",
        ]
    )
    assert rc == 0
    report = json.loads((out / "retention.json").read_text())
    assert "unisd_mbpp" in report
    text = json.dumps(report["unisd_mbpp"])
    assert "jsd" in text.lower() and "ppl" in text.lower()


def test_eval_reports_the_sandbox_layers_or_refuses(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from unisd.evaluation import sandbox

    from unisd.evaluation.tasks import get_task

    assert get_task("unisd_mbpp").executes_code and get_task("unisd_humaneval").executes_code
    assert not get_task("unisd_cose").executes_code
    monkeypatch.setattr(
        sandbox,
        "isolation_report",
        lambda: {"status": "passed", "active": ["namespaces", "seccomp"], "layer_problems": ["landlock: unavailable"]},
    )
    for name in sandbox.ALLOW_ENV:
        monkeypatch.delenv(name, raising=False)
    # refused before the model is even loaded (the model path does not exist)
    assert main(["eval", "--model", str(tmp_path / "nope"), "--tasks", "unisd_mbpp"]) == 2
    err = capsys.readouterr().err
    assert (
        "refusing to execute model-written code" in err
        and "landlock: unavailable" in err
        and "UNISD_ALLOW_UNSAFE_CODE=1" in err
    )
    monkeypatch.setenv("UNISD_ALLOW_UNSAFE_CODE", "1")
    assert main(["eval", "--model", str(tmp_path / "nope"), "--tasks", "unisd_mbpp"]) == 2  # now it gets to the model
    err = capsys.readouterr().err
    assert "code sandbox for unisd_mbpp: namespaces, seccomp active" in err and "cannot load model" in err


def test_a_second_eval_into_the_same_dir_is_refused_or_moves_the_first_aside(
    tiny_model_dir: Path, shared_data: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "ev"
    args = [
        "eval",
        "--model",
        str(tiny_model_dir),
        "--tasks",
        "unisd_cose",
        "--limit",
        "1",
        "--max-gen-toks",
        "2",
        "--data-dir",
        str(shared_data),
        "-o",
        str(out),
    ]
    assert main(args) == 0
    first = (out / "results.json").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    assert "already holds the results" in capsys.readouterr().err and (out / "results.json").read_bytes() == first
    assert main([*args, "--overwrite"]) == 0
    kept = list(out.glob("previous-*/results.json"))
    assert len(kept) == 1 and kept[0].read_bytes() == first and (out / "results.json").is_file()
    (tmp_path / "file").write_text("mine")
    assert main([*args[:-1], str(tmp_path / "file")]) == 2 and (tmp_path / "file").read_text() == "mine"
