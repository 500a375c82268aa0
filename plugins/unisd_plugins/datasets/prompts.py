"""Pure-string prompt builders of the UniSD method (spec §1.2, §2a, §4 SFT, §5.1, §5.2).

No torch, no ``datasets``: evaluation tasks and context builders import this module freely.

Student prompts (§5.2) keep the reference's literal strings; trailing blank lines are dropped
(chat templates add their own separators). One teacher template serves positive and negative
(bad-teacher) prompts alike (§7.10): :func:`render_teacher_prompt`.
"""

from __future__ import annotations

import ast
import random
import re
import warnings
from typing import Any
from collections.abc import Mapping, Sequence

#: The self-distillation instruction that closes every teacher prompt (§1.2).
SD_INSTRUCTION = "Carefully study the reference solution, then solve the problem below with your own approach."
#: The marker line that introduces the reference answer in a teacher prompt.
EXAMPLE_MARKER = "This is an example for a response to the question:"
#: Extra sentence of the ToolAlpaca teacher prompt (positive and negative alike).
TOOL_SUFFIX = "Include your thought process (the 'Thought' field in your response)."

#: Task kinds; each record stores one in ``meta["task"]``.
TASKS = ("mcqa", "code", "tool", "math", "qa")

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


# -- MCQA ------------------------------------------------------------------------------------------
def _letters_phrase(letters: Sequence[str]) -> str:
    """``A`` / ``A or B`` / ``A, B, or C``."""
    if len(letters) == 1:
        return letters[0]
    if len(letters) == 2:
        return f"{letters[0]} or {letters[1]}"
    return ", ".join(letters[:-1]) + f", or {letters[-1]}"


def as_options(options: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    """Options as an ordered ``{letter: text}`` dict (a plain list is labelled A, B, C…)."""
    if isinstance(options, Mapping):
        return {k: options[k] for k in sorted(options)}
    return {LETTERS[i]: text for i, text in enumerate(options)}


def mcqa_student_prompt(question: str, options: Mapping[str, str] | Sequence[str], context: str | None = None) -> str:
    """The MCQA student prompt (ScienceQA, CoS-E, GPQA, MedMCQA), optionally with a ``Context:``."""
    opts = as_options(options)
    letters = list(opts)
    options_text = "\n".join(f"{k}. {str(v).strip()}" for k, v in opts.items())
    context_block = f"Context: {context}\n\n" if context else ""
    instruction = (
        "Reason briefly, then provide the final answer (only the option letter) in the last line. "
        f"Your final answer must be one of {_letters_phrase(letters)}. There is only one correct answer. "
        "Keep your reasoning concise and to the point. Do not output anything after the answer line.\n\n"
        "## Output format\n"
        "Reasoning: <at most 3 short sentences>\n"
        f"Answer: <{'/'.join(letters)}>"
    )
    return (
        "Answer the following multiple-choice question.\n\n"
        f"Question: {question}\n\n"
        f"{context_block}"
        f"{options_text}\n\n"
        f"{instruction}"
    )


def shuffle_options(choices: Sequence[str], correct_index: int, seed: int, index: int) -> tuple[dict[str, str], str]:
    """Permute ``choices`` with ``random.Random(seed + index)`` and relabel them A, B, C… (§5.1).

    Returns ``({letter: text}, gold_letter)``; the gold letter follows the permutation.
    """
    if not 0 <= correct_index < len(choices):
        raise ValueError(f"correct_index {correct_index} out of range for {len(choices)} choices")
    order = list(range(len(choices)))
    random.Random(seed + index).shuffle(order)
    options = {LETTERS[i]: choices[j] for i, j in enumerate(order)}
    return options, LETTERS[order.index(correct_index)]


# -- MBPP ------------------------------------------------------------------------------------------
_WRAPPERS = {
    "math",
    "set",
    "sorted",
    "len",
    "list",
    "tuple",
    "str",
    "int",
    "float",
    "type",
    "isinstance",
    "round",
    "max",
    "min",
    "abs",
    "sum",
    "all",
    "any",
    "bool",
    "dict",
    "frozenset",
}
_DEF_RE = re.compile(r"^[ \t]*def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)


def function_names_in_code(code: str) -> list[str]:
    """Names of every ``def`` in ``code``, in order."""
    return _DEF_RE.findall(code)


def _called_names(tests: Sequence[str]) -> list[str]:
    """Candidate function names the asserts call, direct (``f(``) before wrapped (``set(f(``)."""
    found: list[str] = []
    for test in tests:
        for pattern in (
            r"assert\s+(?:not\s+)?\(?\s*([A-Za-z_]\w*)\s*\(",
            r"assert\s+(?:not\s+)?\w+(?:\.\w+)?\s*\(\s*([A-Za-z_]\w*)\s*\(",
        ):
            m = re.search(pattern, test)
            if m and m.group(1) not in found:
                found.append(m.group(1))
    return found


def function_name_from_tests(tests: Sequence[str], defined: Sequence[str] = ()) -> str | None:
    """The function the asserts call (``assert f(…)``, ``assert set(f(…))``, ``assert math.isclose(f(…))``).

    A called name that ``defined`` contains wins (so a task's own ``sum`` is found); otherwise the
    first called name that is not a common builtin wrapper.
    """
    names = _called_names(tests)
    for name in names:
        if name in defined:
            return name
    return next((n for n in names if n not in _WRAPPERS), None)


def fix_function_name(code: str, tests: Sequence[str]) -> str:
    """Rename the gold code's function to the name the test asserts call, when they differ.

    Nothing changes when the asserted name is already defined anywhere in ``code`` (so helper
    functions defined first are never renamed); otherwise the first ``def`` is renamed.
    """
    names = function_names_in_code(code)
    wanted = function_name_from_tests(tests, names)
    if not wanted or not names or wanted in names:
        return code
    return re.sub(rf"\bdef\s+{re.escape(names[0])}\s*\(", f"def {wanted}(", code, count=1)


def function_signature(code: str, name: str | None = None) -> str:
    """``name(arg1, arg2)`` of the ``def`` called ``name`` (default: the first ``def``) in ``code``."""
    try:
        with warnings.catch_warnings():  # gold code may hold invalid escapes ("\d" in a str)
            warnings.simplefilter("ignore")
            tree = ast.parse(code.replace("\r\n", "\n"))
        defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        top = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        pick = next((n for n in defs if n.name == name), None) if name else None
        pick = pick or (top[0] if top else (defs[0] if defs else None))
        if pick is not None:
            a = pick.args
            args = [x.arg for x in a.posonlyargs + a.args]
            if a.vararg:
                args.append("*" + a.vararg.arg)
            args += [x.arg for x in a.kwonlyargs]
            if a.kwarg:
                args.append("**" + a.kwarg.arg)
            return f"{pick.name}({', '.join(args)})"
    except SyntaxError:
        pass
    pattern = rf"def\s+({re.escape(name)})\s*\(([^)]*)\)" if name else r"def\s+([A-Za-z_]\w*)\s*\(([^)]*)\)"
    m = re.search(pattern, code)
    if not m:
        raise ValueError("no function definition found in the gold code")
    args = [p.split("=")[0].split(":")[0].strip() for p in m.group(2).split(",") if p.strip()]
    return f"{m.group(1)}({', '.join(args)})"


def mbpp_student_prompt(text: str, code: str, tests: Sequence[str]) -> str:
    """The MBPP student prompt; the signature comes from the (name-fixed) gold code."""
    signature = function_signature(code, function_name_from_tests(tests, function_names_in_code(code)))
    test_cases = "\n".join(tests)
    return (
        f"{text}\n"
        f"The required function signature is: {signature}\n\n"
        "## Note\n"
        "- Write only the function implementation. Do not include any extra texts, explanations, test code, or examples.\n"
        "- Only return the code within a ```python ... ``` block.\n"
        "- Make sure the function name is correct as per the assertions.\n"
        "- Include necessary imports.\n\n"
        "## Answer Format\n"
        "```python\n"
        f"def {signature}:\n"
        "    ...\n"
        "```\n\n"
        "## Test Cases\n"
        f"{test_cases}"
    )


# -- HumanEval / ToolAlpaca / GSM8K ----------------------------------------------------------------
def humaneval_student_prompt(prompt: str) -> str:
    """The HumanEval prompt followed by the five-rule ``## Note``."""
    return (
        f"{prompt}\n\n"
        "## Note\n"
        "1. Return the COMPLETE function, including the original function signature and docstring.\n"
        "2. Include all necessary imports (e.g., math, collections, typing) inside the code block.\n"
        "3. Only return the Python code within a ```python ... ``` markdown block.\n"
        "4. Do not provide any explanations, comments (unless inside the code), or usage examples.\n"
        "5. Ensure the function name and parameters match the provided signature exactly."
    )


def toolalpaca_student_prompt(prompt: str) -> str:
    """ToolAlpaca uses the dataset's own ReAct prompt as is."""
    return prompt


def gsm8k_student_prompt(question: str) -> str:
    """A chain-of-thought prompt that asks for ``#### <number>`` on the last line."""
    return (
        "Solve the following math word problem. Reason step by step. On the last line, write '#### ' "
        "followed by the final numeric answer (no units, no extra text).\n\n"
        f"Question: {question.strip()}"
    )


# -- teacher prompts (§1.2), one template for positives and negatives (§7.10) ----------------------
def render_reference(reference: str, reasoning: str | None = None) -> str:
    """REF of §1.2: ``Reasoning: r⏎Answer: a⏎`` when ``r`` is non-empty, else ``a``."""
    if reasoning and reasoning.strip():
        return f"Reasoning: {reasoning}\nAnswer: {reference}\n"
    return reference


def render_teacher_prompt(
    student_prompt: str, reference: str, reasoning: str | None = None, *, variant: str = "generic"
) -> str:
    """The privileged teacher user turn: student prompt, worked reference, SD instruction.

    ``variant="generic"`` is the template of §1.2 (leading newline, trailing newline).
    ``variant="tool"`` is ToolAlpaca's: the reference is ReAct text (``reasoning``, if any, is
    prepended as ``Thought: …``) and the instruction asks for the thought process. The same call
    renders a negative (bad-teacher) prompt with the wrong content.
    """
    if variant == "tool":
        demo = f"Thought: {reasoning}\n{reference}" if reasoning and reasoning.strip() else reference
        return f"\n{student_prompt}\n\n{EXAMPLE_MARKER}\n{demo}\n\n{SD_INSTRUCTION} {TOOL_SUFFIX}"
    if variant != "generic":
        raise ValueError(f"unknown teacher prompt variant {variant!r} (use 'generic' or 'tool')")
    return f"\n{student_prompt}\n\n{EXAMPLE_MARKER}\n{render_reference(reference, reasoning)}\n\n{SD_INSTRUCTION}\n"


# -- SFT gold completions (§4) ---------------------------------------------------------------------
def sft_gold_mcqa(letter: str, explanation: str | None = None) -> str:
    """``Reasoning: {explanation}⏎Answer: X`` (just ``Answer: X`` without an explanation)."""
    if explanation and explanation.strip():
        return f"Reasoning: {explanation.strip()}\nAnswer: {letter}"
    return f"Answer: {letter}"


def sft_gold_code(code: str) -> str:
    """Gold code in a ```python fence."""
    return f"```python\n{code.strip()}\n```"


def sft_gold_tool(golden_response: str | Sequence[str]) -> str:
    """The golden ReAct response (a list of steps is joined by newlines)."""
    return golden_response if isinstance(golden_response, str) else "\n".join(golden_response)


def sft_gold_math(reasoning: str, number: str) -> str:
    """Chain of thought followed by ``#### n``."""
    return f"{reasoning.strip()}\n#### {number}"


# -- donor demo blocks (§2a) -----------------------------------------------------------------------
def mbpp_demo_block(student_prompt: str, tests: Sequence[str], code: str) -> str:
    """A donor MBPP sample: its full student prompt, its asserts and its fixed gold code."""
    return (
        f"Reference Task\n{student_prompt.strip()}\n\n"
        f"Reference Test Cases\n{chr(10).join(tests)}\n\n"
        f"Reference Solution:\n```python\n{code.strip()}\n```"
    )


def mcqa_demo_block(
    question: str, options: Mapping[str, str] | Sequence[str], letter: str, explanation: str | None = None
) -> str:
    """A donor MCQA sample: question, ``A) text`` options, ``Answer: X.`` and the explanation."""
    opts = as_options(options)
    options_text = "\n".join(f"{k}) {v}" for k, v in opts.items())
    answer = f"Answer: {letter}."
    if explanation and explanation.strip():
        answer += f"\nExplanation: {explanation.strip()}"
    return f"Reference Question:\n{question}\n\n{options_text}\n\nReference Answer:\n{answer}"


def tool_demo_block(instruction: str, golden_response: str | Sequence[str]) -> str:
    """A donor ToolAlpaca sample: its instruction and its golden response steps joined by spaces."""
    response = golden_response if isinstance(golden_response, str) else " ".join(golden_response)
    return f"#### Reference Question\n{instruction.strip()}\n\n#### Reference Response\n{response.strip()}"


def qa_demo_block(question: str, answer: str) -> str:
    """A generic donor sample (GSM8K, user records): question and worked answer."""
    return f"Reference Question:\n{question.strip()}\n\nReference Answer:\n{answer.strip()}"


# -- auxiliary contexts (§2a) ----------------------------------------------------------------------
_AUX_WORDS: dict[str, tuple[str, str, str]] = {
    # task: (what the donors are, what not to copy, what to output)
    "code": ("tasks", "their function names", "the final code"),
    "tool": ("tasks", "their tool names or actions", "the response"),
    "mcqa": ("questions", "their answers", "the answer"),
    "math": ("questions", "their answers", "the answer"),
    "qa": ("questions", "their answers", "the answer"),
}


def build_aux_context(demos: Sequence[str], student_prompt: str, task: str = "qa") -> str:
    """An auxiliary teacher context: donor demo blocks of OTHER items, then the student prompt.

    ``demos`` are donor ``demo`` blocks (never the current item's); ``task`` picks the wording.
    Without demos the plain student prompt is returned.
    """
    if not demos:
        return student_prompt
    items, copy_what, output_what = _AUX_WORDS.get(task, _AUX_WORDS["qa"])
    header = (
        "## Reference Samples (DO NOT SOLVE THESE)\n"
        f"The following are solved examples from OTHER {items}, provided only as reference.\n"
        "They are NOT the task you should solve now.\n"
        f"Do NOT copy {copy_what}. Do NOT mention these examples in your final answer.\n"
    )
    refs = "".join(f"\n### [REFERENCE ONLY #{i}]\n{demo.strip()}\n" for i, demo in enumerate(demos, 1))
    separator = (
        "\n-----\n"
        "## Task to Solve (ONLY ANSWER THIS TASK)\n"
        f"Now solve ONLY the following task. Output ONLY {output_what} for THIS task.\n\n"
    )
    return header + refs + separator + student_prompt


def aux_context_for_record(record: Mapping[str, Any], donors: Sequence[Mapping[str, Any]]) -> str:
    """:func:`build_aux_context` for a training record and donor records (never itself)."""
    own = record["id"]
    if any(d["id"] == own for d in donors):
        raise ValueError(f"record {own!r} cannot be its own donor: it would leak its reference answer")
    task = (record.get("meta") or {}).get("task", "qa")
    return build_aux_context([d["demo"] for d in donors], record["prompt"], task)


def build_induction_context(student_prompt: str, instruction: str) -> str:
    """The instruction-induction context: a general instruction, the student prompt, SD_INSTR."""
    return f"## General Instruction for Your Answer\n{instruction}\n\n{student_prompt}\n\n{SD_INSTRUCTION}"
