"""Dataset adapters load the real benchmark files offline (../shared/data) into valid records."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import unisd_plugins.datasets as dataset_plugin  # noqa: E402
from unisd.components.kinds import DatasetAdapter  # noqa: E402
from unisd.data.records import validate_records, write_jsonl_records  # noqa: E402
from unisd.registries import Registries  # noqa: E402
from unisd_plugins.datasets import prompts as P  # noqa: E402
from unisd_plugins.datasets.base import DatasetSourceError  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def need(rel: str) -> Path:
    path = DATA / rel
    if not path.exists():
        pytest.skip(f"benchmark data {rel} not found under {DATA} (shared data folder missing)")
    return path


@pytest.fixture(scope="module")
def registry() -> Registries:
    regs = Registries()
    dataset_plugin.unisd_register(regs.with_origin("unisd-builtins"))
    return regs


def load(registry: Registries, name: str, **kw: Any) -> list[dict[str, Any]]:
    cls = registry.datasets.get(name)
    return cls(cls.Config(type=name, **kw)).load()


def check_records(records: list[dict[str, Any]]) -> None:
    """Valid, unique ids, teacher prompt = student prompt + reference + SD instruction."""
    assert validate_records(records, source="test").rejected == 0
    assert len({r["id"] for r in records}) == len(records)
    for r in records[:50]:
        assert r["teacher_prompt"].startswith(
            "\n" + r["prompt"] + "\n\nThis is an example for a response to the question:\n"
        )
        assert P.SD_INSTRUCTION in r["teacher_prompt"]
        assert r["meta"]["task"] in P.TASKS and r["demo"] and r["retrieval_text"]


def test_registration_is_lazy_and_typed(registry: Registries) -> None:
    assert registry.datasets.names() == ["cose", "gsm8k", "jsonl", "mbpp", "reasoning_gym", "scienceqa", "toolalpaca"]
    for name in registry.datasets.names():
        cls = registry.datasets.get(name)
        assert issubclass(cls, DatasetAdapter) and cls.Config.model_fields["type"].annotation is str


def test_mbpp(registry: Registries) -> None:
    need("mbpp/mbpp.jsonl")
    train = load(registry, "mbpp", path=str(DATA / "mbpp"))
    assert len(train) == 374 and {r["meta"]["task_id"] for r in train} == set(range(601, 975))
    check_records(train)
    r = train[0]
    assert r["id"] == "mbpp/601" and r["answer"] in r["teacher_prompt"]
    assert r["teacher_prompt"].endswith(f"{r['answer']}\n\n{P.SD_INSTRUCTION}\n")
    assert r["gold"] == f"```python\n{r['answer'].strip()}\n```" and "\r" not in r["answer"]
    assert r["meta"]["entry_point"] == "max_chain_length" and r["meta"]["tests"][0].startswith(
        "assert max_chain_length("
    )
    assert "The required function signature is: max_chain_length(arr, n)" in r["prompt"]
    assert r["demo"].startswith("Reference Task\n" + r["prompt"].strip()[:40])
    assert len(load(registry, "mbpp", path=str(DATA / "mbpp"), split="test")) == 257  # sanitized
    assert len(load(registry, "mbpp", path=str(DATA / "mbpp"), split="validation", variant="full")) == 90
    assert load(registry, "mbpp", path=str(DATA / "mbpp"), limit=5) == train[:5]


def test_cose_raw_salesforce_layout(registry: Registries) -> None:
    need("cose/v1.11/cose_train_v1.11.jsonl")
    need("commonsenseqa_v1.0/train_rand_split.jsonl")
    train = load(registry, "cose", path=str(DATA / "cose" / "v1.11"), cqa_path=str(DATA / "commonsenseqa_v1.0"))
    assert len(train) == 7191  # ids in both CoS-E v1.11 train and CQA v1.0 train
    check_records(train)
    assert all(r["meta"]["num_choices"] == 3 for r in train)
    r = train[0]
    assert r["meta"]["choices"][r["answer"]] == r["meta"]["correct_answer"]
    assert f"Reasoning: {r['meta']['explanation']}\nAnswer: {r['answer']}\n" in r["teacher_prompt"]
    assert r["gold"] == f"Reasoning: {r['meta']['explanation']}\nAnswer: {r['answer']}"
    assert r["retrieval_text"] == r["meta"]["question"]
    # cqa folder found automatically next to the CoS-E files; deterministic
    val = load(registry, "cose", path=str(DATA / "cose" / "v1.11"), split="validation", limit=20)
    assert len(val) == 20 and val == load(
        registry, "cose", path=str(DATA / "cose" / "v1.11"), split="validation", limit=20
    )


def test_cose_hub_export_layout(registry: Registries, tmp_path: Path) -> None:
    rows = [
        {
            "id": f"q{i}",
            "question": f"Where is thing {i}?",
            "choices": ["home", "park", "shop", "zoo", "bank"],
            "answer": "zoo",
            "abstractive_explanation": "Animals live there.",
            "extractive_explanation": "zoo",
        }
        for i in range(6)
    ]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    recs = load(registry, "cose", path=str(tmp_path))
    assert len(recs) == 6 and all(r["meta"]["choices"][r["answer"]] == "zoo" for r in recs)
    assert len({tuple(r["meta"]["choices"].values()) for r in recs}) > 1  # per-item shuffles differ
    assert [r["answer"] for r in recs] == [
        r["answer"] for r in load(registry, "cose", path=str(tmp_path / "train.jsonl"))
    ]
    assert "one of A, B, C, D, or E" in recs[0]["prompt"]


def _problem(question: str, answer: int, image: str | None = None) -> dict[str, Any]:
    return {
        "question": question,
        "choices": ["solid", "liquid", "gas"],
        "answer": answer,
        "hint": "",
        "image": image,
        "task": "closed choice",
        "grade": "grade3",
        "subject": "natural science",
        "topic": "physics",
        "category": "States of matter",
        "skill": "Identify",
        "lecture": "Matter has states." if answer else "",
        "solution": "Ice is a solid." if answer != 2 else "",
        "split": "train",
    }


def test_scienceqa_official_layout(registry: Registries, tmp_path: Path) -> None:
    splits = need("scienceqa/pid_splits.json")
    train_pids = json.loads(splits.read_text())["train"][:4]
    problems = {
        train_pids[0]: _problem("Is ice a solid?", 0),
        train_pids[1]: _problem("Which is water?", 1),
        train_pids[2]: _problem("Has a picture", 0, image="image.png"),
        train_pids[3]: _problem("Which is steam?", 2),
        "not-in-train": _problem("Val question", 0),
    }
    (tmp_path / "problems.json").write_text(json.dumps(problems), encoding="utf-8")
    recs = load(registry, "scienceqa", path=str(tmp_path), pid_splits=str(splits))
    assert [r["id"] for r in recs] == [f"scienceqa/{train_pids[i]}" for i in (0, 1, 3)]  # text-only
    check_records(recs)
    water = recs[1]
    assert (
        "Context: Matter has states.\n\n" in water["prompt"] and water["meta"]["choices"][water["answer"]] == "liquid"
    )
    assert "Context:" not in recs[0]["prompt"]
    assert (
        recs[2]["teacher_prompt"].count("Reasoning:") == 1
        and f"question:\n{recs[2]['answer']}\n\n" in recs[2]["teacher_prompt"]
    )
    no_lecture = load(
        registry, "scienceqa", path=str(tmp_path / "problems.json"), pid_splits=str(splits), include_lecture=False
    )
    assert all("Context:" not in r["prompt"] for r in no_lecture)
    assert len(load(registry, "scienceqa", path=str(tmp_path), pid_splits=str(splits), text_only=False)) == 4


def test_toolalpaca_official_layout(registry: Registries) -> None:
    need("toolalpaca/eval_simulated.json")
    test = load(registry, "toolalpaca", path=str(DATA / "toolalpaca"), split="test")
    assert len(test) == 214
    real = load(registry, "toolalpaca", path=str(DATA / "toolalpaca" / "eval_real.json"))
    assert len(real) == 114
    for recs in (test, real):
        assert validate_records(recs).rejected == 0
    r = real[0]
    assert r["prompt"].endswith("Begin!\n\nQuestion: " + r["meta"]["instruction"])
    assert "Use the following format:" in r["prompt"] and "PublicHolidayIsTodayPublicHoliday" in r["prompt"]
    assert r["gold"] == 'Action: PublicHolidayIsTodayPublicHoliday\nAction Input: {"countryCode": "CN"}'
    assert r["teacher_prompt"] == P.render_teacher_prompt(r["prompt"], r["gold"], variant="tool")
    assert r["teacher_prompt"].endswith("(the 'Thought' field in your response).")
    assert (
        r["retrieval_text"] == r["meta"]["instruction"]
        and r["meta"]["golden_answer"][0]["Action"] == "PublicHolidayIsTodayPublicHoliday"
    )
    assert r["demo"].startswith("#### Reference Question\n" + r["meta"]["instruction"])


def test_toolalpaca_train_instances_layout(registry: Registries, tmp_path: Path) -> None:
    api = {
        "Name": "Cats",
        "Description": "cat facts",
        "Functions": {"getFact": "Get a fact.\nParameters: {}", "components": ""},
        "Instances": [
            {
                "input": "Tell me a cat fact.\nHint: none",
                "output": "Cats sleep a lot.",
                "intermediate_steps": [
                    [["getFact", "{}", " I should fetch a fact.\nAction: getFact\nAction Input: {}"], '{"fact": "..."}']
                ],
            },
            {"input": "No steps", "output": "x", "intermediate_steps": []},
        ],
    }
    (tmp_path / "train_data.json").write_text(json.dumps([api]), encoding="utf-8")
    recs = load(registry, "toolalpaca", path=str(tmp_path))
    assert len(recs) == 1 and recs[0]["meta"]["instruction"] == "Tell me a cat fact."
    assert recs[0]["gold"] == "Thought: I should fetch a fact.\nAction: getFact\nAction Input: {}"


def test_gsm8k(registry: Registries) -> None:
    need("gsm8k/train.jsonl")
    train = load(registry, "gsm8k", path=str(DATA / "gsm8k"))
    assert len(train) == 7473
    check_records(train)
    r = train[0]
    assert r["answer"] == "72" and r["gold"].endswith("\n#### 72") and "<<" not in r["gold"]
    assert (
        "Answer: #### 72\n" in r["teacher_prompt"] and "Reasoning: Natalia sold 48/2 = 24 clips" in r["teacher_prompt"]
    )
    assert len(load(registry, "gsm8k", path=str(DATA / "gsm8k" / "test.jsonl"), split="test")) == 1319


def test_jsonl_adapter(registry: Registries, tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    write_jsonl_records(
        [{"id": f"r{i}", "prompt": "p", "teacher_prompt": "t", "gold": "g", "answer": "a"} for i in range(3)], path
    )
    assert [r["id"] for r in load(registry, "jsonl", path=str(path), limit=2)] == ["r0", "r1"]
    with path.open("a") as fh:
        fh.write("{broken\n")
    cls = registry.datasets.get("jsonl")
    adapter = cls(cls.Config(type="jsonl", path=str(path)))
    with pytest.raises(Exception, match=r"line 4: malformed JSON"):
        adapter.load()
    adapter.on_bad_record, adapter.rejects_path = "skip", tmp_path / "rejects.jsonl"
    assert len(adapter.load()) == 3 and (tmp_path / "rejects.jsonl").read_text().count("\n") == 1


def test_offline_hub_gives_clear_error(registry: Registries, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants as hub_constants

    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(key, "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "ds-cache", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"), raising=False)
    with pytest.raises(DatasetSourceError, match=r"offline.*data\.dataset\.path"):
        load(registry, "mbpp")


def test_missing_local_path_is_clear(registry: Registries, tmp_path: Path) -> None:
    with pytest.raises(DatasetSourceError, match="does not exist"):
        load(registry, "gsm8k", path=str(tmp_path / "nope"))


def test_reasoning_gym_records_scoring_and_negatives(registry: Registries) -> None:
    pytest.importorskip("reasoning_gym")
    opts = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2}
    train = load(registry, "reasoning_gym", task="chain_sum", size=30, options=opts)
    test = load(registry, "reasoning_gym", task="chain_sum", size=30, options=opts, split="test")
    assert len(train) == 30 and 0 < len(test) <= 30
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}  # no leakage into the held-out split
    rec = test[0]
    # the reference is worked out from the task's expression, then the answer line
    expression = rec["meta"]["entry"]["metadata"]["expression"]
    assert (
        rec["gold"] == f"{expression} = {rec['answer']}\nAnswer: {rec['answer']}"
        and rec["gold"] in rec["teacher_prompt"]
    )
    assert rec["answer"] not in rec["prompt"].split("=")[-1]
    adapter = registry.datasets.get("reasoning_gym")(
        registry.datasets.get("reasoning_gym").Config(type="reasoning_gym", split="test", options=opts)
    )
    assert adapter.is_correct(rec, f"The final answer is {rec['answer']}.")
    assert not adapter.is_correct(rec, "The final answer is 100000.")
    a = rec["answer"]
    assert adapter.is_correct(rec, f"{expression} = {a}\n\nThis is the final answer to the problem.")  # no Answer: line
    assert adapter.is_correct(rec, f"1. The answer is {a}.\n2. The")  # list numbering is not an answer
    assert not adapter.is_correct(rec, f"Answer: {a}7\nso {a}")  # the Answer: line decides when there is one
    # the ready bad-teacher prompt uses the same template with a wrong answer
    from unisd_plugins.datasets.prompts import render_teacher_prompt

    wrong = rec["negative_prompt"].rsplit("Answer: ", 1)[1].split("\n")[0]
    assert wrong != rec["answer"]
    assert rec["negative_prompt"] == render_teacher_prompt(rec["prompt"], f"{expression} = {wrong}\nAnswer: {wrong}")


def test_reasoning_gym_options_from_yaml_become_enum_members(registry: Registries) -> None:
    """Recipe options are plain YAML values; enum-typed config fields get converted (and a typo
    names the option and the allowed values)."""
    pytest.importorskip("reasoning_gym")
    opts = {"task_types": ["siblings"], "task_type_weights": [1.0]}
    records = load(registry, "reasoning_gym", task="aiw", size=12, options=opts)
    assert len(records) == 12 and all("sisters" in r["prompt"] or "brothers" in r["prompt"] for r in records)
    assert records[0]["gold"] == f"Answer: {records[0]['answer']}"  # no expression to work out: the bare answer line
    with pytest.raises(
        DatasetSourceError, match=r"option 'task_types' of task 'aiw': 'sibling' is not one of 'siblings'"
    ):
        load(
            registry,
            "reasoning_gym",
            task="aiw",
            size=2,
            options={"task_types": ["sibling"], "task_type_weights": [1.0]},
        )


def test_reasoning_gym_validation_split_is_carved_from_train_and_disjoint(registry: Registries) -> None:
    pytest.importorskip("reasoning_gym")
    opts = {"min_terms": 2, "max_terms": 2, "min_digits": 2, "max_digits": 2}
    kw = {"task": "chain_sum", "size": 40, "validation_size": 20, "options": opts}
    train = load(registry, "reasoning_gym", **kw)
    val = load(registry, "reasoning_gym", split="validation", **kw)
    test = load(registry, "reasoning_gym", split="test", **kw)
    assert len(train) == 40 and 0 < len(val) <= 20
    # validation continues the train generator (indices size…size+validation_size − 1) ...
    assert all(40 <= int(r["id"].rsplit("-", 1)[1]) < 60 for r in val)
    # ... and no question occurs in two splits
    prompts = [{r["prompt"] for r in s} for s in (train, val, test)]
    assert not prompts[0] & prompts[1] and not prompts[0] & prompts[2] and not prompts[1] & prompts[2]
    # the train records are the same as without a validation split
    assert [r["id"] for r in load(registry, "reasoning_gym", task="chain_sum", size=40, options=opts)] == [
        r["id"] for r in train
    ]
    assert train[0]["reference"] == train[0]["gold"] and "negative_reference" in train[0]


def test_reasoning_gym_answers_its_scorer_cannot_read_are_wrong_not_a_crash(registry: Registries) -> None:
    pytest.importorskip("reasoning_gym")
    cls = registry.datasets.get("reasoning_gym")
    adapter = cls(
        cls.Config(
            type="reasoning_gym",
            task="prime_factorization",
            size=8,
            split="test",
            options={"min_value": 2, "max_value": 100},
        )
    )
    rec = list(adapter.load())[0]
    assert not adapter.is_correct(rec, "Answer: 12 = 2")  # the task's scorer raises ValueError on this
    assert adapter.is_correct(rec, f"Answer: {rec['answer']}")
