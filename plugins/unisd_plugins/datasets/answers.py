"""Answer checks for training records, dispatched on ``meta.task`` (used by the held-out summary).

MCQA: the extracted option letter; math: the last number; code: the record's tests in the
sandbox; tool: ToolAlpaca full accuracy; qa: normalised exact match.
"""

from __future__ import annotations

import re
from typing import Any

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_LIST_MARKER = re.compile(r"^[ \t]*\d+[.)][ \t]+(?=\S)", re.MULTILINE)


def last_number(text: str) -> str | None:
    """The last number in ``text`` (commas dropped, a decimal's trailing zeros removed: ``180.7080``
    and ``180.708`` are one number, ``36.0`` is ``36``), after ``####`` if present; list numbering
    (``3. The answer is``) does not count as a number."""
    text = text.split("####")[-1] if "####" in text else text
    found = _NUMBER.findall(_LIST_MARKER.sub("", text))
    if not found:
        return None
    n = found[-1].replace(",", "")
    return n.rstrip("0").rstrip(".") if "." in n else n


def is_correct(record: dict[str, Any], completion: str) -> bool | None:
    meta = record.get("meta") or {}
    task = meta.get("task", "qa")
    if task == "math":
        return last_number(completion) == last_number(str(record["answer"]))
    if task == "mcqa":
        from unisd_plugins.evaluation.scoring import extract_mcqa_letter
        from unisd.api import current_settings

        letter, _ = extract_mcqa_letter(completion, int(meta.get("num_choices", 4)), current_settings().mcqa_rule)
        return letter == meta.get("correct_letter", record["answer"])
    if task == "code":
        from unisd_plugins.evaluation.scoring import code_pass_at_1, extract_code, mbpp_program

        program = mbpp_program(
            extract_code(completion),
            meta.get("tests", []),
            meta.get("test_imports", []),
            meta.get("test_setup", ""),
            reference=extract_code(str(record.get("gold", ""))),
        )
        return bool(code_pass_at_1([program])[0])
    if task == "tool":
        from unisd_plugins.evaluation.scoring import tool_scores

        return tool_scores(completion, meta.get("golden_answer"))["full_acc"] == 1.0

    def norm(s: str) -> str:
        return " ".join(re.sub(r"[^\w\s]", " ", s.lower()).split())

    return norm(str(record["answer"])) in norm(completion) if record.get("answer") else None
