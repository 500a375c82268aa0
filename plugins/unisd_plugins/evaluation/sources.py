"""Evaluation documents of the six UniSD benchmarks, from the hub or a local data directory.

Each loader returns canonical, flat documents (the same fields whatever the source) with the
student prompt already rendered by :mod:`unisd_plugins.datasets.prompts`. Local directories follow
the layout of the project's shared data folder (official upstream file names)::

    scienceqa/problems.json + scienceqa/pid_splits.json    (official lupantech/ScienceQA)
    gpqa/gpqa_main.csv
    mbpp/sanitized-mbpp.json                               (test = task_id 11..510)
    humaneval/HumanEval.jsonl.gz (or .jsonl)
    cose/v1.11/cose_dev_v1.11.jsonl + commonsenseqa*/{train,dev}_rand_split.jsonl (joined by id)
    toolalpaca/eval_real.json + toolalpaca/eval_simulated.json

Local ToolAlpaca prompts are built with the training adapter's ``react_prompt`` (the official
eval files ship no prompt), so train and eval prompts share one ReAct format.
"""

from __future__ import annotations

import csv
import functools
import gzip
import json
from pathlib import Path
from typing import Any
from collections.abc import Callable

from unisd.api import DataUnavailable
from unisd_plugins.datasets import prompts
from unisd_plugins.datasets.toolalpaca import api_tools, react_prompt

__all__ = ["DataUnavailable", "LOADERS", "gold_completion", "load_docs"]

SEED = 42

HUB = {
    "scienceqa": ("derek-thomas/ScienceQA", None, "test"),
    "gpqa": ("Idavidrein/gpqa", "gpqa_main", "train"),
    "mbpp": ("google-research-datasets/mbpp", "sanitized", "test"),
    "humaneval": ("openai/openai_humaneval", None, "test"),
    "cose": ("Salesforce/cos_e", "v1.11", "validation"),
    "toolalpaca": ("Ahren09/ToolAlpaca", None, "test"),
}


def _hub_rows(dataset: str) -> list[dict[str, Any]]:
    path, name, split = HUB[dataset]
    try:
        import datasets

        return list(datasets.load_dataset(path, name, split=split))
    except Exception as exc:  # noqa: BLE001 - offline, gated, renamed…: all mean "unavailable"
        raise DataUnavailable(
            f"{dataset}: cannot load {path}{'/' + name if name else ''} [{split}] from the hub "
            f"({type(exc).__name__}: {str(exc)[:200]}); pass --data-dir with local files"
        ) from exc


def _need(path: Path, dataset: str, hint: str = "") -> Path:
    if not path.is_file():
        raise DataUnavailable(f"{dataset}: data unavailable, {path} not found{'; ' + hint if hint else ''}")
    return path


def _jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# ------------------------------------------------------------------------------------------ MCQA


def _mcqa_doc(
    dataset: str,
    index: int,
    doc_id: str,
    question: str,
    choices: list[str],
    correct: int,
    context: str = "",
    domain: str = "",
    explanation: str = "",
    seed: int = SEED,
) -> dict[str, Any]:
    options, gold = prompts.shuffle_options(choices, correct, seed, index)
    return {
        "id": doc_id,
        "dataset": dataset,
        "question": question,
        "context": context or "",
        "options": list(options.values()),
        "letters": "".join(options),
        "gold": gold,
        "gold_index": "".join(options).index(gold),
        "domain": domain or "",
        "explanation": explanation or "",
        "prompt": prompts.mcqa_student_prompt(question, options, context or None),
    }


def scienceqa(data_dir: Path | None) -> list[dict[str, Any]]:
    """ScienceQA test, text-only (no image), lecture as ``Context:``; options shuffled."""
    if data_dir is None:
        rows = _hub_rows("scienceqa")
    else:
        base = data_dir / "scienceqa"
        hint = "the official layout needs scienceqa/problems.json (lupantech/ScienceQA data/scienceqa)"
        problems = json.loads(_need(base / "problems.json", "scienceqa", hint).read_text(encoding="utf-8"))
        splits = json.loads(_need(base / "pid_splits.json", "scienceqa", hint).read_text(encoding="utf-8"))
        rows = [{**problems[pid], "pid": pid} for pid in splits["test"] if pid in problems]
    rows = [r for r in rows if r.get("image") in (None, "")]
    return [
        _mcqa_doc(
            "scienceqa",
            i,
            str(r.get("pid", i)),
            r["question"],
            [str(c) for c in r["choices"]],
            int(r["answer"]),
            (r.get("lecture") or "").strip(),
            r.get("subject", ""),
            r.get("solution") or "",
        )
        for i, r in enumerate(rows)
    ]


def gpqa(data_dir: Path | None) -> list[dict[str, Any]]:
    """GPQA main (448), the correct answer and three distractors shuffled with Random(42 + i)."""
    if data_dir is None:
        rows = _hub_rows("gpqa")
    else:
        with open(_need(data_dir / "gpqa" / "gpqa_main.csv", "gpqa"), newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    docs = []
    for i, r in enumerate(rows):
        choices = [r["Correct Answer"], r["Incorrect Answer 1"], r["Incorrect Answer 2"], r["Incorrect Answer 3"]]
        docs.append(
            _mcqa_doc(
                "gpqa",
                i,
                str(r.get("Record ID") or i),
                r["Question"].strip(),
                [c.strip() for c in choices],
                0,
                "",
                r.get("High-level domain", ""),
                (r.get("Explanation") or "").strip(),
            )
        )
    return docs


def _cqa_questions(data_dir: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for folder in ("commonsenseqa_v1.11", "commonsenseqa", "commonsenseqa_v1.0"):
        for name in ("train_rand_split.jsonl", "dev_rand_split.jsonl"):
            path = data_dir / folder / name
            if path.is_file():
                for row in _jsonl(path):
                    found.setdefault(row["id"], row)
    return found


def cose(data_dir: Path | None) -> list[dict[str, Any]]:
    """CoS-E v1.11 validation. Locally: cose dev v1.11 ids joined with CommonsenseQA questions."""
    rows: list[dict[str, Any]] = []
    if data_dir is None:
        for r in _hub_rows("cose"):
            rows.append(
                {
                    "id": r["id"],
                    "question": r["question"],
                    "choices": list(r["choices"]),
                    "correct": list(r["choices"]).index(r["answer"]),
                    "explanation": r.get("abstractive_explanation") or "",
                }
            )
    else:
        dev = _jsonl(_need(data_dir / "cose" / "v1.11" / "cose_dev_v1.11.jsonl", "cose"))
        questions = _cqa_questions(data_dir)
        if not questions:
            raise DataUnavailable(f"cose: no CommonsenseQA {{train,dev}}_rand_split.jsonl under {data_dir}")
        for r in dev:
            q = questions.get(r["id"])
            if q is None:
                continue
            labels = [c["label"] for c in q["question"]["choices"]]
            rows.append(
                {
                    "id": r["id"],
                    "question": q["question"]["stem"],
                    "choices": [c["text"] for c in q["question"]["choices"]],
                    "correct": labels.index(q["answerKey"]),
                    "explanation": ((r.get("explanation") or {}).get("open-ended") or ""),
                }
            )
        if not rows:
            raise DataUnavailable("cose: no CoS-E v1.11 dev id has a CommonsenseQA question locally")
    return [
        _mcqa_doc("cose", i, str(r["id"]), r["question"], r["choices"], r["correct"], explanation=r["explanation"])
        for i, r in enumerate(rows)
    ]


# ------------------------------------------------------------------------------------------ code


def mbpp(data_dir: Path | None) -> list[dict[str, Any]]:
    """MBPP sanitized test (257 tasks, ids 11..510); the gold code's name follows the asserts."""
    if data_dir is None:
        rows = _hub_rows("mbpp")
    else:
        data = json.loads(_need(data_dir / "mbpp" / "sanitized-mbpp.json", "mbpp").read_text(encoding="utf-8"))
        rows = [r for r in data if 11 <= int(r["task_id"]) <= 510]
    docs = []
    for r in rows:
        tests = list(r["test_list"])
        code = prompts.fix_function_name(r["code"], tests)
        text = r.get("prompt") or r.get("text") or ""
        docs.append(
            {
                "id": str(r["task_id"]),
                "dataset": "mbpp",
                "prompt": prompts.mbpp_student_prompt(text, code, tests),
                "tests": tests,
                "test_imports": list(r.get("test_imports") or []),
                "test_setup": r.get("test_setup_code") or "",
                "gold_code": code,
            }
        )
    return docs


def humaneval(data_dir: Path | None) -> list[dict[str, Any]]:
    """HumanEval (164) with the five-rule note."""
    if data_dir is None:
        rows = _hub_rows("humaneval")
    else:
        base = data_dir / "humaneval"
        path = base / "HumanEval.jsonl.gz" if (base / "HumanEval.jsonl.gz").is_file() else base / "HumanEval.jsonl"
        rows = _jsonl(_need(path, "humaneval"))
    return [
        {
            "id": r["task_id"],
            "dataset": "humaneval",
            "prompt": prompts.humaneval_student_prompt(r["prompt"]),
            "original_prompt": r["prompt"],
            "test": r["test"],
            "entry_point": r["entry_point"],
            "gold_code": r["prompt"] + r["canonical_solution"],
        }
        for r in rows
    ]


# ------------------------------------------------------------------------------------------ ToolAlpaca


def _tool_local(data_dir: Path) -> list[dict[str, Any]]:
    base = data_dir / "toolalpaca"
    docs = []
    for source in ("real", "simulated"):
        apis = json.loads(_need(base / f"eval_{source}.json", "toolalpaca").read_text(encoding="utf-8"))
        for api in apis:
            tools = api_tools(api)
            for j, (instruction, golden) in enumerate(zip(api["Instructions"], api["Golden_Answers"], strict=False)):
                docs.append(
                    {
                        "id": f"{source}/{api['Name']}/{j}",
                        "dataset": "toolalpaca",
                        "source": source,
                        "api": api["Name"],
                        "instruction": instruction,
                        "golden": json.dumps(golden),
                        "prompt": prompts.toolalpaca_student_prompt(react_prompt(tools, instruction)),
                    }
                )
    return docs


def _tool_hub() -> list[dict[str, Any]]:
    docs = []
    for i, r in enumerate(_hub_rows("toolalpaca")):
        golden = r.get("golden_answer", r.get("Golden_Answers", r.get("golden_response")))
        prompt = r.get("prompt") or ""
        if isinstance(prompt, list):  # chat-format prompt
            prompt = next((m.get("content", "") for m in prompt if m.get("role") == "user"), "")
        prompt = prompts.toolalpaca_student_prompt(str(prompt))
        docs.append(
            {
                "id": str(r.get("id", i)),
                "dataset": "toolalpaca",
                "source": "hub",
                "api": str(r.get("api_name", "")),
                "instruction": str(r.get("instruction", "")),
                "golden": golden if isinstance(golden, str) else json.dumps(golden),
                "prompt": prompt,
            }
        )
    return docs


def toolalpaca(data_dir: Path | None) -> list[dict[str, Any]]:
    """ToolAlpaca test; locally the official eval_real + eval_simulated files (214 instructions)."""
    return _tool_hub() if data_dir is None else _tool_local(data_dir)


# ------------------------------------------------------------------------------------------ gold


def gold_completion(doc: dict[str, Any]) -> str:
    """The gold (SFT-style) completion of a document, for gold-completion fit."""
    if "letters" in doc:
        return prompts.sft_gold_mcqa(doc["gold"], doc.get("explanation") or None)
    if "gold_code" in doc:
        return prompts.sft_gold_code(doc["gold_code"])
    from unisd_plugins.evaluation.scoring import gold_calls

    steps = [
        f"Action: {c.action}\nAction Input: {json.dumps(c.args, ensure_ascii=False)}" for c in gold_calls(doc["golden"])
    ]
    return prompts.sft_gold_tool(steps)


# ------------------------------------------------------------------------------------------ registry

LOADERS: dict[str, Callable[[Path | None], list[dict[str, Any]]]] = {
    "scienceqa": scienceqa,
    "gpqa": gpqa,
    "mbpp": mbpp,
    "humaneval": humaneval,
    "cose": cose,
    "toolalpaca": toolalpaca,
}


@functools.lru_cache(maxsize=16)
def _cached(dataset: str, data_dir: str | None) -> tuple[dict[str, Any], ...]:
    return tuple(LOADERS[dataset](Path(data_dir).expanduser().resolve() if data_dir else None))


def load_docs(dataset: str, data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Canonical documents of ``dataset`` (cached per process); raises :class:`DataUnavailable`."""
    if dataset not in LOADERS:
        raise KeyError(f"unknown benchmark {dataset!r} (known: {', '.join(LOADERS)})")
    return [dict(d) for d in _cached(dataset, str(data_dir) if data_dir else None)]


def _docs_of(dataset: str) -> Callable[[str | Path | None], list[dict[str, Any]]]:
    def docs(data_dir: str | Path | None = None) -> list[dict[str, Any]]:
        return load_docs(dataset, data_dir)

    docs.__name__ = docs.__qualname__ = f"{dataset}_docs"
    docs.__doc__ = f"Documents of {dataset} (the ``docs`` loader of its TaskSpecs)."
    return docs


# the ``docs`` loaders the TaskSpecs of unisd_plugins.evaluation.specs point at
scienceqa_docs = _docs_of("scienceqa")
gpqa_docs = _docs_of("gpqa")
mbpp_docs = _docs_of("mbpp")
humaneval_docs = _docs_of("humaneval")
cose_docs = _docs_of("cose")
toolalpaca_docs = _docs_of("toolalpaca")
