"""Functions the task YAML files point at (``!function unisd_plugins.evaluation.hooks.…``).

``*_dataset`` build the in-memory test split (lm-eval's ``custom_dataset``; ``data_dir`` arrives
through the TaskManager metadata), the rest render prompts and score one document.
"""

from __future__ import annotations

from typing import Any

from unisd_plugins.evaluation import scoring as metrics
from unisd.api import current_settings
from unisd_plugins.evaluation.sources import load_docs


def _dataset(name: str, data_dir: str | None = None, **_: Any):
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(load_docs(name, data_dir))})


def scienceqa_dataset(**kw: Any):
    return _dataset("scienceqa", **kw)


def gpqa_dataset(**kw: Any):
    return _dataset("gpqa", **kw)


def cose_dataset(**kw: Any):
    return _dataset("cose", **kw)


def mbpp_dataset(**kw: Any):
    return _dataset("mbpp", **kw)


def humaneval_dataset(**kw: Any):
    return _dataset("humaneval", **kw)


def toolalpaca_dataset(**kw: Any):
    return _dataset("toolalpaca", **kw)


# ------------------------------------------------------------------------------ prompts / targets


def doc_to_text(doc: dict) -> str:
    """The student prompt (spec §5.2); the chat template is applied by lm-eval."""
    return doc["prompt"]


def mcqa_target(doc: dict) -> str:
    return doc["gold"]


def mc_prompt(doc: dict) -> str:
    """Prompt of the log-likelihood variant: question, context, options; the model continues 'Answer: X'."""
    context = f"Context: {doc['context']}\n\n" if doc.get("context") else ""
    options = "\n".join(f"{letter}. {text}" for letter, text in zip(doc["letters"], doc["options"], strict=True))
    return (
        f"Answer the following multiple-choice question.\n\nQuestion: {doc['question']}\n\n{context}"
        f"{options}\n\nAnswer with the letter of the correct option."
    )


def options_prompt(doc: dict) -> str:
    """Prompt of the option-text variant (lm-eval's CommonsenseQA format): the options are not shown."""
    return f"Question: {doc['question']}\nAnswer:"


def option_texts(doc: dict) -> list[str]:
    return list(doc["options"])


def mc_choices(doc: dict) -> list[str]:
    return list(doc["letters"])


def mc_target(doc: dict) -> int:
    return int(doc["gold_index"])


def empty_target(doc: dict) -> str:
    return ""


def tool_target(doc: dict) -> str:
    return doc["golden"]


# ------------------------------------------------------------------------------ scoring


def mcqa_results(doc: dict, results: list[str]) -> dict[str, float]:
    return metrics.mcqa_scores(results[0], doc["gold"], len(doc["letters"]), current_settings().mcqa_rule)


def _run(program: str) -> float:
    # wall-clock limit of one program (spec: a 10 s alarm); evaluate_model(code_timeout_s=...) sets it
    return metrics.code_pass_at_1([program], timeout_s=current_settings().code_timeout_s, max_workers=1)[0]


def mbpp_results(doc: dict, results: list[str]) -> dict[str, float]:
    code = metrics.extract_code(results[0])
    return {
        "pass@1": _run(
            metrics.mbpp_program(
                code, doc["tests"], doc["test_imports"], doc["test_setup"], reference=doc.get("gold_code", "")
            )
        )
    }


def humaneval_results(doc: dict, results: list[str]) -> dict[str, float]:
    code = metrics.extract_code(results[0])
    return {"pass@1": _run(metrics.humaneval_program(code, doc["test"], doc["entry_point"], doc["original_prompt"]))}


def tool_results(doc: dict, results: list[str]) -> dict[str, float]:
    return metrics.tool_scores(results[0], doc["golden"])
