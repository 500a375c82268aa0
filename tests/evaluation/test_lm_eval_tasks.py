"""``unisd eval`` with lm-eval's own tasks: a directory of plain lm-eval YAML (no Python) through
``--include-path``, and stock task names resolved by lm-eval's ``TaskManager``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unisd.cli.main import main
from unisd.evaluation.tasks import UnknownTaskError, select_tasks

QUESTIONS = [(1, 2), (3, 4), (2, 2), (5, 1), (4, 4), (6, 3)]


@pytest.fixture(scope="module")
def yaml_tasks(tmp_path_factory) -> Path:
    """A task as a user writes it for lm-eval: a YAML file and a JSONL file, nothing else."""
    root = tmp_path_factory.mktemp("lm-eval-yaml")
    data = root / "arith.jsonl"
    data.write_text(
        "".join(json.dumps({"question": f"What is {a} plus {b}?", "answer": str(a + b)}) + "\n" for a, b in QUESTIONS)
    )
    tasks = root / "tasks"
    tasks.mkdir()
    (tasks / "tiny_arith.yaml").write_text(f"""task: tiny_arith
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
""")
    (tasks / "tiny_choice.yaml").write_text(f"""task: tiny_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: ["2", "3", "4", "6", "7", "8", "9"]
doc_to_target: "{{{{['2', '3', '4', '6', '7', '8', '9'].index(answer)}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
""")
    return tasks


@pytest.mark.parametrize("chat", [False, True], ids=["lm-eval defaults", "--apply-chat-template"])
def test_unisd_eval_gives_lm_evals_numbers_on_its_tasks(yaml_tasks, tiny_model_dir, tmp_path, chat):
    """The same YAML tasks (a generated answer and a log-likelihood choice) through lm-eval's own
    Python API and through ``unisd eval`` with the same flags: the same metrics."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    names = ["tiny_arith", "tiny_choice"]
    theirs = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={tiny_model_dir},dtype=float32",
        tasks=names,
        task_manager=TaskManager(include_path=str(yaml_tasks)),
        batch_size=4,
        device="cpu",
        apply_chat_template=chat,
        gen_kwargs="max_gen_toks=8",
    )["results"]
    out = tmp_path / "out"
    argv = [
        "eval",
        "--model",
        str(tiny_model_dir),
        "--tasks",
        ",".join(names),
        "--include_path",
        str(yaml_tasks),
        "--batch_size",
        "4",
        "--gen_kwargs",
        "max_gen_toks=8",
        "--output_path",
        str(out),
    ]
    assert main(argv + (["--apply_chat_template"] if chat else [])) == 0
    report = json.loads((out / "results.json").read_text())
    for task, metric in (("tiny_arith", "exact_match,none"), ("tiny_choice", "acc,none")):
        assert report["results"][task][metric] == theirs[task][metric], task
        assert report["unisd"]["settings"][task]["apply_chat_template"] is chat
        assert report["unisd"]["settings"][task]["conventions"] == "lm-eval"
    (stamped,) = out.glob("results_*.json")  # lm-eval's file name too
    assert json.loads(stamped.read_text())["results"] == report["results"]


def test_compare_reads_an_lm_eval_output_directory(tmp_path, capsys):
    run = tmp_path / "lm-eval-out" / "my__model"
    run.mkdir(parents=True)
    for stamp, acc in (("2026-12-01T10-00-00.000001", 0.25), ("2026-12-02T10-00-00.000001", 0.5)):
        (run / f"results_{stamp}.json").write_text(
            json.dumps({"results": {"tiny_choice": {"acc,none": acc}}, "n-samples": {"tiny_choice": {"effective": 6}}})
        )
    assert main(["compare", str(tmp_path / "lm-eval-out"), "-o", str(tmp_path / "cmp")]) == 0
    assert "50.0" in (tmp_path / "cmp" / "comparison.md").read_text()  # the newest of lm_eval's files


def test_an_alias_never_shadows_lm_evals_task_of_that_name():
    sel = select_tasks("mbpp,unisd_mbpp")
    assert sel.registered == ["unisd_mbpp"] and sel.lm_eval == ["mbpp"]


def test_a_plain_lm_eval_yaml_task_runs_with_no_python(yaml_tasks, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(
        [
            "eval",
            "--model",
            str(tiny_model_dir),
            "--tasks",
            "tiny_arith",
            "--include-path",
            str(yaml_tasks),
            "--limit",
            "4",
            "--max-gen-toks",
            "8",
            "--output-dir",
            str(out),
        ]
    )
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert results["unisd"]["summary"]["tiny_arith"]["n"] == 4
    assert "exact_match" in results["unisd"]["summary"]["tiny_arith"]
    assert "| tiny_arith | exact_match |" in (out / "results.md").read_text()
    assert "lm-eval tasks (its own data, prompts and metrics): tiny_arith" in capsys.readouterr().err


def test_registered_names_come_first_and_the_rest_go_to_lm_eval(yaml_tasks):
    sel = select_tasks("unisd-mbpp,tiny_arith", [yaml_tasks])
    assert sel.registered == ["unisd_mbpp"] and sel.lm_eval == ["tiny_arith"]
    assert not sel.stock  # found under --include-path: lm-eval's own index is not needed
    assert sel.include_path == [str(yaml_tasks.resolve())]


def test_stock_lm_eval_tasks_resolve_through_its_task_manager():
    sel = select_tasks("unisd-six,arc_easy,gsm8k")
    assert sel.lm_eval == ["arc_easy", "gsm8k"] and sel.stock and len(sel.registered) == 6
    with pytest.raises(UnknownTaskError, match=r"lm-eval has no such task either \(closest: arc_easy"):
        select_tasks("arc_esy")


def test_a_missing_include_path_is_named(tmp_path):
    with pytest.raises(ValueError, match="--include-path .*nowhere: no such directory"):
        select_tasks("tiny_arith", [tmp_path / "nowhere"])
