"""The lm-eval tasks build offline from local data (shared data + a tiny ScienceQA fixture)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from unisd_plugins.evaluation import scoring as M
from unisd.components.evaluators import DataUnavailable
from unisd.evaluation.tasks import catalog, include_paths, resolve_tasks
from unisd_plugins.evaluation.sources import gold_completion, load_docs
from unisd_plugins.evaluation.specs import TASK_DIR

# the built-in tasks and groups, as the evaluation plugin registers them
_CAT = catalog()
TASKS = {n: s.benchmark for n, s in _CAT.tasks.items() if _CAT.origins[n] == "unisd"}
GROUPS = {n: g.tasks for n, g in _CAT.groups.items() if _CAT.origins[n] == "unisd"}
PRIMARY_METRIC = {n: _CAT.tasks[n].primary_metric for n in TASKS}

PROBLEMS = {  # official lupantech/ScienceQA layout, invented content
    "1": {
        "question": "Which is a mammal?",
        "choices": ["shark", "whale", "trout"],
        "answer": 1,
        "hint": "",
        "image": None,
        "task": "closed choice",
        "grade": "grade3",
        "subject": "natural science",
        "topic": "biology",
        "category": "c",
        "skill": "s",
        "lecture": "Mammals feed milk to their young.",
        "solution": "A whale is a mammal.",
        "split": "test",
    },
    "2": {
        "question": "Which word is a noun?",
        "choices": ["run", "table"],
        "answer": 1,
        "hint": "",
        "image": None,
        "task": "closed choice",
        "grade": "grade2",
        "subject": "language science",
        "topic": "grammar",
        "category": "c",
        "skill": "s",
        "lecture": "",
        "solution": "",
        "split": "test",
    },
    "3": {
        "question": "Look at the picture.",
        "choices": ["a", "b"],
        "answer": 0,
        "hint": "",
        "image": "image.png",
        "task": "closed choice",
        "grade": "grade1",
        "subject": "natural science",
        "topic": "t",
        "category": "c",
        "skill": "s",
        "lecture": "",
        "solution": "",
        "split": "test",
    },
}


@pytest.fixture(scope="module")
def data_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared data folder plus a tiny official-layout ScienceQA (the real problems.json is missing)."""
    root = tmp_path_factory.mktemp("eval-data")
    for child in shared_data.iterdir():
        if child.name != "scienceqa":
            (root / child.name).symlink_to(child)
    (root / "scienceqa").mkdir()
    (root / "scienceqa" / "problems.json").write_text(json.dumps(PROBLEMS))
    (root / "scienceqa" / "pid_splits.json").write_text(json.dumps({"train": [], "val": [], "test": ["1", "2", "3"]}))
    return root


def test_resolve_tasks() -> None:
    assert resolve_tasks("unisd-six") == list(GROUPS["unisd-six"])
    assert resolve_tasks("mbpp, gpqa_mc,unisd_mbpp") == ["unisd_mbpp", "unisd_gpqa_mc"]
    with pytest.raises(ValueError, match="unknown task"):
        resolve_tasks("nope")


def test_yaml_files_match_registry() -> None:
    import yaml

    names = set()
    for path in TASK_DIR.glob("unisd_*.yaml"):
        text = path.read_text()
        data = yaml.safe_load(text.replace("!function", ""))
        names.add(data["group"] if "group" in data else data["task"])
    assert names == set(TASKS) | set(GROUPS)
    assert set(PRIMARY_METRIC) == set(TASKS)


@pytest.mark.parametrize("name, count", [("gpqa", 448), ("mbpp", 257), ("humaneval", 164), ("toolalpaca", 214)])
def test_local_counts(shared_data: Path, name: str, count: int) -> None:
    docs = load_docs(name, shared_data)
    assert len(docs) == count and all(d["prompt"] for d in docs)


def test_cose_local_join(shared_data: Path) -> None:
    docs = load_docs("cose", shared_data)
    assert 0 < len(docs) <= 1221
    assert all(len(d["options"]) == 3 and d["letters"] == "ABC" and d["gold"] in "ABC" for d in docs)
    assert "Answer the following multiple-choice question." in docs[0]["prompt"]


def test_scienceqa_missing_problems_is_reported(shared_data: Path) -> None:
    with pytest.raises(DataUnavailable, match="problems.json"):
        load_docs("scienceqa", shared_data)


def test_scienceqa_official_layout(data_dir: Path) -> None:
    docs = load_docs("scienceqa", data_dir)
    assert [d["id"] for d in docs] == ["1", "2"]  # the image question is dropped
    assert "Context: Mammals feed milk to their young." in docs[0]["prompt"]
    assert "Context:" not in docs[1]["prompt"]
    assert docs[0]["options"][docs[0]["gold_index"]] == "whale" and docs[0]["domain"] == "natural science"


def test_gpqa_shuffle_is_deterministic_and_balanced(shared_data: Path) -> None:
    a, b = load_docs("gpqa", shared_data), load_docs("gpqa", shared_data)
    assert [d["gold"] for d in a] == [d["gold"] for d in b]
    counts = Counter(d["gold"] for d in a)
    assert set(counts) == set("ABCD") and max(counts.values()) < 0.4 * len(a)


def test_gold_solutions_pass_and_wrong_ones_fail(shared_data: Path) -> None:
    mbpp = load_docs("mbpp", shared_data)[:4]
    he = load_docs("humaneval", shared_data)[:4]
    progs = [
        M.mbpp_program(
            M.extract_code(gold_completion(d)), d["tests"], d["test_imports"], d["test_setup"], d["gold_code"]
        )
        for d in mbpp
    ]
    progs += [
        M.humaneval_program(M.extract_code(gold_completion(d)), d["test"], d["entry_point"], d["original_prompt"])
        for d in he
    ]
    progs.append(
        M.humaneval_program("def x():\n    pass", he[0]["test"], he[0]["entry_point"], he[0]["original_prompt"])
    )
    assert M.code_pass_at_1(progs, timeout_s=10) == [1.0] * 8 + [0.0]


def test_tool_gold_completion_scores_full(shared_data: Path) -> None:
    for doc in load_docs("toolalpaca", shared_data)[:20]:
        assert M.tool_scores(gold_completion(doc), doc["golden"])["full_acc"] == 1.0


def test_every_task_builds_in_lm_eval(data_dir: Path) -> None:
    from lm_eval.tasks import TaskManager

    assert include_paths(TASKS) == [str(TASK_DIR)]
    manager = TaskManager(
        include_defaults=False, include_path=include_paths(TASKS), metadata={"data_dir": str(data_dir)}
    )
    loaded = manager.load(list(TASKS))
    assert set(loaded["tasks"]) == set(TASKS)
    for name, task in loaded["tasks"].items():
        docs = list(task.test_docs())
        assert docs, name
        doc = docs[0]
        assert isinstance(task.doc_to_text(doc), str)
        if task.config.output_type == "multiple_choice":
            # the gold letter, or (scoring the options' texts) the gold option's text
            assert task.doc_to_choice(doc)[task.doc_to_target(doc)] in (doc["gold"], doc["options"][doc["gold_index"]])
        else:
            assert task.config.generation_kwargs["do_sample"] is False
            metrics = task.process_results(doc, ["Answer: A"])
            assert PRIMARY_METRIC[name] in metrics


def test_hub_unreachable_is_reported_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def offline(*_a, **_k):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    from unisd_plugins.evaluation import sources

    with pytest.raises(DataUnavailable, match="--data-dir"):
        sources.LOADERS["humaneval"](None)


@pytest.mark.slow
def test_all_gold_solutions_pass_in_the_sandbox(shared_data: Path) -> None:
    """Backs docs/evaluation.md: every MBPP (sanitized test) and HumanEval gold solution passes."""
    mbpp, he = load_docs("mbpp", shared_data), load_docs("humaneval", shared_data)
    assert (len(mbpp), len(he)) == (257, 164)
    progs = [
        M.mbpp_program(
            M.extract_code(gold_completion(d)), d["tests"], d["test_imports"], d["test_setup"], d["gold_code"]
        )
        for d in mbpp
    ]
    progs += [
        M.humaneval_program(M.extract_code(gold_completion(d)), d["test"], d["entry_point"], d["original_prompt"])
        for d in he
    ]
    assert M.code_pass_at_1(progs, timeout_s=10) == [1.0] * len(progs)
