"""Answer extraction and scoring (spec §5.3): MCQA letters, code pass@1, ToolAlpaca calls.

Everything here is pure string processing except :func:`code_pass_at_1`, which executes programs
through :mod:`unisd.sandbox` (never in-process). The benchmarks of the ``evaluation``
plugin score with these; the core knows none of them.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Mapping, Sequence

LETTERS = "ABCDE"

# -------------------------------------------------------------------------------------- MCQA

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # 1. the first line that starts with "Answer:" (markdown bold and a parenthesis tolerated)
    ("answer_line", re.compile(r"^(?i:[*_\s]*answer[*_\s]*:[*_\s]*)\(?\s*([A-Z])\b")),
    # 2. "the answer is X"
    ("answer_is", re.compile(r"(?i:the\s+(?:correct\s+|final\s+)?answer\s+is\s*:?\s*)\(?\s*([A-Z])\b")),
    # 3. "ANSWER: X" anywhere in the text
    ("answer_colon", re.compile(r"(?i:answer\s*:\s*)\(?\s*([A-Z])\b")),
)
# 4. a line that is a letter ("C", "(C)") or starts with one followed by "." or ")" ("B. It conducts heat")
_LETTER_LINE = re.compile(r"^\s*(?:\(([A-Z])\)|([A-Z])[.)]?(?=\s*$)|([A-Z])[.)])")
# 5. a standalone capital, but not the article "A" ("A beaver is ...": the letter, a space, a lowercase
#    word) nor part of a hyphenated word ("B-cells")
_STANDALONE = re.compile(r"(?<![A-Za-z0-9-])([A-Z])(?![A-Za-z0-9])(?!-\w)(?!\s+[a-z])")
_OPTION_LINE = re.compile(r"^\s*\(?[A-Z][.)]\s+\S")  # "A. fall down": one line of an option list
# the spec's rules 4 and 5 as the reference implements them (mcqa_rule="reference")
_REFERENCE_LETTER_LINE = re.compile(r"^\s*\(?([A-Z])(?:[.)]|\s)")
_REFERENCE_STANDALONE = re.compile(r"(?<![A-Za-z0-9])([A-Z])(?![A-Za-z0-9])")
MCQA_RULES = ("fixed", "reference")


def valid_letters(num_choices: int) -> str:
    """The first ``num_choices`` letters of A–E."""
    return LETTERS[: max(1, min(num_choices, len(LETTERS)))]


def _first_group(m: re.Match[str] | None) -> str | None:
    return next((g for g in m.groups() if g), None) if m else None


def extract_mcqa_letter(text: str, num_choices: int, rule: str = "fixed") -> tuple[str | None, str | None]:
    """Extract the chosen option letter; returns ``(letter, rule)`` or ``(None, None)``.

    Rules, in order: the first line starting ``Answer:`` → "the answer is X" → ``ANSWER: X`` →
    the first line that is a letter or starts with one followed by ``.`` or ``)`` → the last standalone
    valid letter. Only the first ``num_choices`` letters of A–E are valid.

    ``rule="fixed"`` (default) departs from the spec's rule 4 (any line starting "letter + space")
    in two ways: the English article "A" ("A beaver is ...") is never an answer, and the lines of
    an echoed option list (two or more lines "A. ...", "B. ...") are dropped before rules 4 and 5,
    so repeating the options is not choosing one. ``rule="reference"`` is the spec's rule as the
    authors' code applies it, for reproducing their numbers.
    """
    if rule not in MCQA_RULES:
        raise ValueError(f"unknown MCQA rule {rule!r}; use one of {', '.join(MCQA_RULES)}")
    valid = valid_letters(num_choices)
    lines = text.splitlines()
    first_answer_line = next((ln for ln in lines if re.match(r"^[*_\s]*answer[*_\s]*:", ln, re.IGNORECASE)), None)
    if first_answer_line is not None:
        m = _RULES[0][1].match(first_answer_line)
        if m and m.group(1) in valid:
            return m.group(1), "answer_line"
    for name, pattern in _RULES[1:]:
        for m in pattern.finditer(text):
            if m.group(1) in valid:
                return m.group(1), name
    letter_line, standalone = (
        (_REFERENCE_LETTER_LINE, _REFERENCE_STANDALONE) if rule == "reference" else (_LETTER_LINE, _STANDALONE)
    )
    if rule == "fixed" and sum(bool(_OPTION_LINE.match(ln)) for ln in lines) >= 2:
        lines = [ln for ln in lines if not _OPTION_LINE.match(ln)]
    for ln in lines:
        letter = _first_group(letter_line.match(ln))
        if letter and letter in valid:
            return letter, "letter_line"
    found = [m.group(1) for m in standalone.finditer("\n".join(lines)) if m.group(1) in valid]
    if found:
        return found[-1], "last_letter"
    return None, None


def mcqa_scores(text: str, gold: str, num_choices: int, rule: str = "fixed") -> dict[str, float]:
    """``acc`` (extracted == gold) and ``extracted`` (an answer letter was found)."""
    letter, _rule = extract_mcqa_letter(text, num_choices, rule)
    return {"acc": float(letter == gold.strip().upper()), "extracted": float(letter is not None)}


# -------------------------------------------------------------------------------------- code

_FENCE = re.compile(r"```([^\n`]*)\n(.*?)(?:```|\Z)", re.DOTALL)


def _json_code(text: str) -> str | None:
    candidates = [text.strip()]
    candidates += [m.group(2) for m in _FENCE.finditer(text) if m.group(1).strip().lower() == "json"]
    for cand in candidates:
        if not cand.startswith("{"):
            continue
        try:
            obj = json.loads(cand)
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(obj, dict) and isinstance(obj.get("code"), str):
            return obj["code"]
    return None


def extract_code(text: str) -> str:
    """Code from a generation: JSON ``code`` field → first ```python block → first fence → raw."""
    code = _json_code(text)
    if code is not None:
        return code
    blocks = list(_FENCE.finditer(text))
    for m in blocks:
        if m.group(1).strip().lower() in ("python", "py", "python3"):
            return m.group(2)
    if blocks:
        return blocks[0].group(2)
    return text


def defined_names(code: str) -> tuple[str, ...]:
    """The functions and classes a (reference) solution defines at its top level."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return ()
    return tuple(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))


def mbpp_program(
    code: str, tests: Sequence[str], test_imports: Sequence[str] = (), test_setup: str = "", reference: str = ""
):
    """MBPP: the test imports and the candidate code are the solution; the setup code and the
    asserts are the checks, run by the judge after the imports (a
    :class:`~unisd.sandbox.CheckedProgram`). ``reference``: the gold solution, whose
    functions are taken from the candidate even where a built-in has the name (a task's ``sum``);
    without it only names no built-in has are."""
    from unisd.api import CheckedProgram

    imports = "\n".join(test_imports)
    solution = "\n\n".join(p for p in (imports, code) if p and p.strip()) + "\n"
    checks = "\n\n".join(p for p in (test_setup, "\n".join(tests)) if p and p.strip()) + "\n"
    return CheckedProgram(solution, checks, trusted=imports, calls=defined_names(reference) if reference else ())


def humaneval_program(code: str, test: str, entry_point: str, prompt: str = ""):
    """HumanEval: the candidate code is the solution; the ``test`` block and ``check(entry_point)``
    are the checks. The judge runs the prompt first, so that helpers the checks use (``poly``,
    ``encode_cyclic``) are the task's, not the candidate's; ``entry_point`` always comes from the
    candidate.

    When the candidate does not define ``entry_point`` (a body-only answer) the original
    prompt is prepended, which is the only way such an answer can pass.
    """
    from unisd.api import CheckedProgram

    if prompt and not re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE):
        code = prompt + code
    return CheckedProgram(f"{code}\n", f"{test}\n\ncheck({entry_point})\n", trusted=prompt, calls=(entry_point,))


def code_pass_at_1(programs: Sequence[Any], timeout_s: float = 10.0, max_workers: int = 2) -> list[float]:
    """1.0 / 0.0 per program, executed in the sandbox; a pass needs the runner's proof that the
    checks ran to their end. Refuses (:class:`~unisd.sandbox.SandboxUnavailable`) when
    the kernel layers are missing, unless ``UNISD_ALLOW_UNSAFE_CODE=1`` or ``HF_ALLOW_CODE_EVAL=1``."""
    from unisd.api import SandboxLimits, require_isolation, run_many, unsafe_code_allowed

    if not programs:
        return []
    require_isolation()
    limits = SandboxLimits(timeout_s=timeout_s, strict=not unsafe_code_allowed())
    results = run_many(programs, limits, max_workers=max_workers)
    return [float(r.passed) for r in results]


# -------------------------------------------------------------------------------------- ToolAlpaca

_REACT_KEYS = re.compile(
    r"^\s*(Thought|Action Input|Action_Input|Action|Observation|Final Answer|Question)\s*:",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass
class ToolCall:
    """One parsed ``Action`` / ``Action Input`` step."""

    action: str
    args: dict[str, Any] = field(default_factory=dict)
    args_parsed: bool = True


def _clean_action(raw: str) -> str:
    return raw.strip().strip("`'\"[]() ").strip()


def parse_action_input(raw: str | Mapping[str, Any] | None) -> tuple[dict[str, Any], bool]:
    """Action input as a dict; ``(args, ok)`` where ``ok`` is False if it was not valid JSON."""
    if raw is None:
        return {}, True
    if isinstance(raw, Mapping):
        return dict(raw), True
    text = str(raw).strip()
    if text.startswith("```"):
        text = re.sub(r"^```\w*\n?|```$", "", text).strip()
    if not text or text.lower() in ("none", "{}", "null"):
        return {}, True
    start = text.find("{")
    if start >= 0:
        try:
            obj, _end = json.JSONDecoder().raw_decode(text[start:])
            if isinstance(obj, dict):
                return obj, True
        except (json.JSONDecodeError, ValueError):
            pass
    return {}, False


def parse_react_calls(text: str) -> list[ToolCall]:
    """All ``Action:`` / ``Action Input:`` pairs of a ReAct generation, up to ``Final Answer``.

    The generation is evaluated as text (spec §7.13): hallucinated ``Observation:`` blocks are
    skipped, and every action before the final answer counts as one call step.
    """
    segments: list[tuple[str, str]] = []
    matches = list(_REACT_KEYS.finditer(text))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        key = m.group(1).lower().replace("_", " ")
        segments.append((key, text[m.end() : end].strip()))
    calls: list[ToolCall] = []
    for key, value in segments:
        if key == "final answer":
            break
        if key == "action":
            calls.append(ToolCall(_clean_action(value.splitlines()[0] if value else "")))
        elif key == "action input" and calls and calls[-1].args == {} and calls[-1].args_parsed:
            calls[-1].args, calls[-1].args_parsed = parse_action_input(value)
    return calls


def gold_calls(golden: Any) -> list[ToolCall]:
    """Golden answer steps (``[{"Action", "Action_Input"}]``, a JSON string of it, or ReAct text)."""
    if isinstance(golden, str):
        try:
            golden = json.loads(golden)
        except (json.JSONDecodeError, ValueError):
            return parse_react_calls(golden)
    if isinstance(golden, Mapping):
        golden = [golden]
    calls = []
    for step in golden or []:
        if isinstance(step, str):
            calls.extend(parse_react_calls(step))
            continue
        action = step.get("Action", step.get("action", ""))
        raw = step.get("Action_Input", step.get("action_input", step.get("Action Input")))
        args, ok = parse_action_input(raw)
        calls.append(ToolCall(_clean_action(str(action)), args, ok))
    return calls


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict, tuple)) and len(value) == 0)


def _same(pred: Any, gold: Any) -> bool:
    if isinstance(pred, (dict, list)) or isinstance(gold, (dict, list)):
        return json.dumps(pred, sort_keys=True) == json.dumps(gold, sort_keys=True)
    return str(pred).strip() == str(gold).strip()


def step_argument_score(pred: Mapping[str, Any], gold: Mapping[str, Any]) -> float:
    """Fraction of the gold keys with non-empty values whose predicted value matches as a string.

    With no non-empty gold argument the step scores 1 iff the prediction has none either.
    """
    keys = [k for k, v in gold.items() if not _empty(v)]
    if not keys:
        return float(all(_empty(v) for v in pred.values()))
    return sum(k in pred and _same(pred[k], gold[k]) for k in keys) / len(keys)


def tool_scores(generation: str, golden: Any) -> dict[str, float]:
    """ToolAlpaca ``action_acc``, ``arg_acc``, ``full_acc`` and ``parsed`` (spec §5.3).

    A step whose ``Action Input`` is not valid JSON scores 0 for its arguments.
    """
    pred, gold = parse_react_calls(generation), gold_calls(golden)
    same_count = len(pred) == len(gold)
    action_ok = same_count and all(p.action == g.action for p, g in zip(pred, gold, strict=False))
    if not same_count:
        arg = 0.0
    elif not gold:
        arg = 1.0
    else:
        arg = sum(
            step_argument_score(p.args, g.args) if p.args_parsed else 0.0 for p, g in zip(pred, gold, strict=False)
        ) / len(gold)
    return {
        "action_acc": float(action_ok),
        "arg_acc": float(arg),
        "full_acc": float(action_ok and arg == 1.0),
        "parsed": float(bool(pred) and all(p.args_parsed for p in pred)),
    }
