"""Contrastive negatives (spec §2c): generation requests and bad-teacher prompts.

``negative_requests(record)`` returns the prompts that ask the model for plausible-but-wrong
demonstrations; ``render_negative(record, text, i)`` turns the i-th generation into the bad-teacher
prompt with :func:`prompts.render_teacher_prompt`, the very template of the positive teacher
(§7.10). Generations may be the ``{"reasoning": …, "answer": …}`` JSON the requests ask for, or
free text. For MCQA and GSM8K the wrong target is the *assigned* one, not what the model wrote.
"""

from __future__ import annotations

import json
import re
from typing import Any
from collections.abc import Callable, Mapping

from unisd_plugins.datasets import prompts

NUM_NEGATIVES = 4
CODE_BUG_TYPES = ("off-by-one error", "wrong operator", "missing edge case", "wrong return value")
TOOL_CORRUPTIONS: dict[str, str] = {
    "wrong action name": "Call a plausible but INCORRECT function (not {action}) that sounds related but does the wrong thing.",
    "wrong argument values": "Call {action} but with WRONG argument values (wrong, swapped or missing fields).",
    "wrong interpretation": "Misread the user's request and call {action} for a subtly different purpose than asked.",
    "extra tool call": "Add an unnecessary extra tool call besides the main one, as if over-interpreting the request.",
}
RETURN_FORMAT = 'Return format (JSON only):\n{{\n    "reasoning": "{reasoning}",\n    "answer": "{answer}"\n}}'


def _meta(record: Mapping[str, Any], *keys: str) -> list[Any]:
    meta = record.get("meta") or {}
    missing = [k for k in keys if k not in meta]
    if missing:
        raise ValueError(f"record {record.get('id')!r}: negatives need meta field(s) {', '.join(missing)}")
    return [meta[k] for k in keys]


def _task(record: Mapping[str, Any]) -> str:
    return str((record.get("meta") or {}).get("task", ""))


# -- parsing generations ----------------------------------------------------------------------------
def parse_generation(text: str) -> tuple[str, str]:
    """``(reasoning, answer)`` from a ``{"reasoning", "answer"}`` JSON generation; else ``("", text)``."""
    body = text.strip()
    fence = re.match(r"^```(?:json)?\s*\n(.*?)\n```\s*$", body, re.DOTALL)
    if fence:
        body = fence.group(1).strip()
    start, end = body.find("{"), body.rfind("}")
    if start != -1 and end > start:
        try:
            obj = json.loads(body[start : end + 1])
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and ("answer" in obj or "reasoning" in obj):
            return str(obj.get("reasoning") or "").strip(), str(obj.get("answer") or "").strip()
    return "", text.strip()


def extract_code(text: str) -> str:
    """The first fenced code block of ``text``, or the text itself."""
    m = re.search(r"```(?:python|py)?[^\n]*\n(.*?)```", text, re.DOTALL)
    return (m.group(1) if m else text).strip()


def _strip_final_lines(text: str, pattern: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if not re.match(pattern, ln.strip(), re.IGNORECASE)]
    return "\n".join(lines).strip()


# -- MCQA --------------------------------------------------------------------------------------------
def wrong_letters(record: Mapping[str, Any], num: int = NUM_NEGATIVES) -> list[str]:
    """Wrong letters assigned round-robin over the incorrect options."""
    choices, correct = _meta(record, "choices", "correct_letter")
    wrong = [k for k in sorted(choices) if k != correct]
    if not wrong:
        raise ValueError(f"record {record.get('id')!r} has no incorrect option")
    return [wrong[i % len(wrong)] for i in range(num)]


def mcqa_request(record: Mapping[str, Any], letter: str) -> str:
    question, choices = _meta(record, "question", "choices")
    options = "\n".join(f"{k}. {str(v).strip()}" for k, v in sorted(choices.items()))
    return (
        "You are simulating a confident student who made a mistake on this question.\n"
        f"Argue convincingly that the answer is {letter} ({str(choices[letter]).strip()}).\n\n"
        f"Question: {question}\n{options}\n\n"
        "Rules:\n"
        f"- You MUST conclude that the answer is {letter}.\n"
        "- Your reasoning must sound plausible and knowledgeable, with domain-appropriate terms.\n"
        "- Do NOT hedge or hint that another answer could be better.\n"
        "- Keep the reasoning to 2-4 sentences.\n\n"
        + RETURN_FORMAT.format(reasoning="BRIEF EXPLANATION", answer=letter)
    )


def mcqa_render(record: Mapping[str, Any], text: str, index: int) -> str:
    letter = wrong_letters(record, index + 1)[index]
    reasoning, answer = parse_generation(text)
    if not reasoning and answer == text.strip():  # free text: drop the model's own answer line
        reasoning = _strip_final_lines(text, r"^answer\s*:")
    return prompts.render_teacher_prompt(record["prompt"], letter, reasoning or None)


# -- code (MBPP) ---------------------------------------------------------------------------------------
def code_request(record: Mapping[str, Any], bug_type: str) -> str:
    text, tests, entry = _meta(record, "text", "tests", "entry_point")
    signature = (record.get("meta") or {}).get("signature") or f"{entry}(...)"
    return (
        "You are simulating a programmer who makes a subtle mistake.\n"
        f"Write a Python solution for this task that LOOKS correct but has a {bug_type}.\n\n"
        f"Task: {text}\n"
        f"Function signature: {signature}\n"
        "Test cases (your code should fail at least one):\n"
        f"{chr(10).join(tests)}\n\n"
        "Rules:\n"
        "- Use the correct function name and signature.\n"
        "- The bug must be subtle (not a syntax error or an obvious typo).\n"
        "- Include necessary imports.\n"
        '- Put ONLY the function code in "answer".\n\n'
        + RETURN_FORMAT.format(reasoning="ONE SENTENCE ABOUT THE APPROACH", answer=f"def {signature}: ...")
    )


def code_render(record: Mapping[str, Any], text: str, index: int) -> str:
    _, answer = parse_generation(text)
    return prompts.render_teacher_prompt(record["prompt"], extract_code(answer))


# -- tool use (ToolAlpaca) -------------------------------------------------------------------------------
def _gold_action(record: Mapping[str, Any]) -> str:
    calls = (record.get("meta") or {}).get("golden_answer") or []
    if calls and isinstance(calls[0], Mapping) and calls[0].get("Action"):
        return str(calls[0]["Action"])
    m = re.search(r"Action\s*:\s*(.+)", record.get("gold", ""))
    return m.group(1).strip() if m else "the correct function"


def tool_request(record: Mapping[str, Any], corruption: str) -> str:
    (instruction,) = _meta(record, "instruction")
    how = TOOL_CORRUPTIONS[corruption].format(action=_gold_action(record))
    return (
        "You are simulating an AI assistant that makes a mistake when using tools.\n"
        f"Given the user's request and the API documentation, write a tool-use response that contains a {corruption}.\n\n"
        f"User instruction: {instruction}\n\n"
        f"API documentation and format:\n{record['prompt']}\n\n"
        f"Mistake to make: {how}\n\n"
        "Rules:\n"
        '- Put your thought in "reasoning" and the ReAct lines ("Action: …" then "Action Input: {…}") in "answer".\n'
        "- The mistake must be subtle and plausible; Action Input must be valid JSON.\n"
        "- Do NOT mention that you are making a mistake.\n\n"
        + RETURN_FORMAT.format(reasoning="YOUR THOUGHT", answer="Action: ...\\nAction Input: {...}")
    )


def tool_render(record: Mapping[str, Any], text: str, index: int) -> str:
    reasoning, answer = parse_generation(text)
    return prompts.render_teacher_prompt(record["prompt"], answer, reasoning or None, variant="tool")


# -- math (GSM8K) -----------------------------------------------------------------------------------------
def wrong_numbers(record: Mapping[str, Any], num: int = NUM_NEGATIVES) -> list[str]:
    """Deterministic wrong final answers near the gold number (n+1, n−1, 2n, n+10, …)."""
    gold = str(record["answer"]).replace(",", "").strip()
    try:
        value = float(gold)
    except ValueError as exc:
        raise ValueError(f"record {record.get('id')!r}: GSM8K answer {gold!r} is not a number") from exc
    out: list[str] = []
    step = 0
    while len(out) < num:
        step += 1
        for cand in (value + step, value - step, value * (step + 1), value + 10 * step):
            text = str(int(cand)) if float(cand).is_integer() else f"{cand:g}"
            if cand != value and text not in out and len(out) < num:
                out.append(text)
    return out


def math_request(record: Mapping[str, Any], number: str) -> str:
    (question,) = _meta(record, "question")
    return (
        "You are simulating a confident student who made a mistake on this math problem.\n"
        f"Write a plausible step-by-step solution that arrives at the WRONG final answer {number}.\n\n"
        f"Problem: {question}\n\n"
        "Rules:\n"
        f"- Your solution MUST end with the final answer {number}.\n"
        "- The mistake must be subtle (a plausible slip), not absurd.\n"
        "- Do NOT hint that the answer might be wrong.\n\n"
        + RETURN_FORMAT.format(reasoning="STEP-BY-STEP SOLUTION", answer=number)
    )


def math_render(record: Mapping[str, Any], text: str, index: int) -> str:
    number = wrong_numbers(record, index + 1)[index]
    reasoning, answer = parse_generation(text)
    if not reasoning and answer == text.strip():
        reasoning = _strip_final_lines(text, r"^####")
    return prompts.render_teacher_prompt(record["prompt"], f"#### {number}", reasoning or None)


# -- dispatch ------------------------------------------------------------------------------------------------
def negative_requests(record: Mapping[str, Any], num: int = NUM_NEGATIVES) -> list[str]:
    """``num`` generation prompts for ``record`` (MCQA: wrong letters round-robin; MBPP: one per
    bug type; ToolAlpaca: one per corruption; GSM8K: wrong numbers)."""
    task = _task(record)
    if task == "mcqa":
        return [mcqa_request(record, letter) for letter in wrong_letters(record, num)]
    if task == "code":
        return [code_request(record, CODE_BUG_TYPES[i % len(CODE_BUG_TYPES)]) for i in range(num)]
    if task == "tool":
        kinds = list(TOOL_CORRUPTIONS)
        return [tool_request(record, kinds[i % len(kinds)]) for i in range(num)]
    if task == "math":
        return [math_request(record, n) for n in wrong_numbers(record, num)]
    raise NotImplementedError(
        f"record {record.get('id')!r}: no contrastive negatives for task {task!r} "
        "(meta.task must be one of mcqa, code, tool, math)"
    )


_RENDER: dict[str, Callable[[Mapping[str, Any], str, int], str]] = {
    "mcqa": mcqa_render,
    "code": code_render,
    "tool": tool_render,
    "math": math_render,
}


def render_negative(record: Mapping[str, Any], generated_text: str, index: int) -> str:
    """The bad-teacher prompt for the ``index``-th negative of ``record``."""
    task = _task(record)
    if task not in _RENDER:
        raise NotImplementedError(f"record {record.get('id')!r}: no contrastive negatives for task {task!r}")
    if index < 0:
        raise ValueError("index must be >= 0")
    return _RENDER[task](record, generated_text, index)
