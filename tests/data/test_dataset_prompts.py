"""Prompt builders of spec §1.2, §2a, §4, §5.1, §5.2 (pure strings)."""

from __future__ import annotations

import pytest

from unisd_plugins.datasets import prompts as P


def test_shuffle_is_deterministic_and_gold_follows() -> None:
    choices = ["red", "green", "blue", "black"]
    perms = set()
    for index in range(12):
        opts, letter = P.shuffle_options(choices, 2, seed=42, index=index)
        assert (opts, letter) == P.shuffle_options(choices, 2, seed=42, index=index)
        assert list(opts) == ["A", "B", "C", "D"] and sorted(opts.values()) == sorted(choices)
        assert opts[letter] == "blue"
        perms.add(tuple(opts.values()))
    assert len(perms) > 1  # Random(seed + index) differs across items
    with pytest.raises(ValueError):
        P.shuffle_options(choices, 4, 42, 0)


def test_mcqa_student_prompt_literals() -> None:
    text = P.mcqa_student_prompt("Why?", {"B": "two", "A": "one", "C": "three"}, context="A lecture.")
    assert text.startswith(
        "Answer the following multiple-choice question.\n\nQuestion: Why?\n\nContext: A lecture.\n\nA. one\nB. two\nC. three\n\n"
    )
    assert "Your final answer must be one of A, B, or C. There is only one correct answer." in text
    assert text.endswith("## Output format\nReasoning: <at most 3 short sentences>\nAnswer: <A/B/C>")
    assert "Context:" not in P.mcqa_student_prompt("Why?", ["x", "y"])
    assert "one of A or B." in P.mcqa_student_prompt("Why?", ["x", "y"])


def test_teacher_prompt_generic_and_tool_templates() -> None:
    sd = "Carefully study the reference solution, then solve the problem below with your own approach."
    assert sd == P.SD_INSTRUCTION
    with_r = P.render_teacher_prompt("STUDENT", "B", "Because.")
    assert (
        with_r
        == f"\nSTUDENT\n\nThis is an example for a response to the question:\nReasoning: Because.\nAnswer: B\n\n\n{sd}\n"
    )
    assert (
        P.render_teacher_prompt("STUDENT", "def f(): pass")
        == f"\nSTUDENT\n\nThis is an example for a response to the question:\ndef f(): pass\n\n{sd}\n"
    )
    assert P.render_teacher_prompt("S", "B", "  ") == P.render_teacher_prompt("S", "B")  # empty r => bare answer
    tool = P.render_teacher_prompt("PROMPT", "Action: a\nAction Input: {}", variant="tool")
    assert tool == (
        f"\nPROMPT\n\nThis is an example for a response to the question:\nAction: a\nAction Input: {{}}\n\n"
        f"{sd} Include your thought process (the 'Thought' field in your response)."
    )
    assert "Thought: why\nAction: a" in P.render_teacher_prompt("PROMPT", "Action: a", "why", variant="tool")
    with pytest.raises(ValueError):
        P.render_teacher_prompt("S", "a", variant="nope")


def test_mbpp_function_name_fix() -> None:
    assert P.fix_function_name("def foo(a):\n    return a", ["assert bar(1) == 1"]) == "def bar(a):\n    return a"
    helper_first = "def helper(x):\n    return x\ndef bar(a):\n    return helper(a)"
    assert P.fix_function_name(helper_first, ["assert bar(1) == 1"]) == helper_first
    assert P.fix_function_name("def foo(a):\n    return a", ["assert set(bar(1)) == {1}"]).startswith("def bar(")
    assert P.fix_function_name("def foo(a):\n    return a", ["assert math.isclose(bar(1), 1)"]).startswith("def bar(")
    own_sum = "def sum(a, b):\n    return a"
    assert P.function_name_from_tests(["assert sum(10,15) == 6"], P.function_names_in_code(own_sum)) == "sum"
    assert P.fix_function_name(own_sum, ["assert sum(10,15) == 6"]) == own_sum


def test_mbpp_and_humaneval_student_prompts() -> None:
    text = P.mbpp_student_prompt("Add two numbers.", "def foo(a, b=1):\n    return a + b", ["assert add(1, 2) == 3"])
    assert text.startswith("Add two numbers.\nThe required function signature is: foo(a, b)\n\n## Note\n")
    for piece in (
        "Only return the code within a ```python ... ``` block.",
        "Make sure the function name is correct as per the assertions.",
        "## Answer Format\n```python\ndef foo(a, b):\n    ...\n```",
        "## Test Cases\nassert add(1, 2) == 3",
    ):
        assert piece in text
    he = P.humaneval_student_prompt('def f(x):\n    """Doc."""\n')
    assert he.startswith('def f(x):\n    """Doc."""\n\n\n## Note\n1. Return the COMPLETE function')
    assert all(f"\n{i}. " in he for i in range(1, 6))
    assert P.toolalpaca_student_prompt("as is") == "as is"


def test_sft_gold_formats() -> None:
    assert P.sft_gold_mcqa("C", "It is so.") == "Reasoning: It is so.\nAnswer: C"
    assert P.sft_gold_mcqa("C", "") == "Answer: C"
    assert P.sft_gold_code("def f():\n    pass\n") == "```python\ndef f():\n    pass\n```"
    assert P.sft_gold_tool(["Thought: t\nAction: a", "Action: b"]) == "Thought: t\nAction: a\nAction: b"
    assert P.sft_gold_math("2+2=4", "4") == "2+2=4\n#### 4"


def test_aux_context_wrapper_and_no_self_leak() -> None:
    own = {
        "id": "q1",
        "prompt": "STUDENT PROMPT",
        "answer": "SECRET-ANSWER",
        "meta": {"task": "code"},
        "demo": P.mbpp_demo_block("p1", ["assert f() == 1"], "SECRET-ANSWER"),
    }
    donors = [
        {"id": f"q{i}", "demo": P.mbpp_demo_block(f"task {i}", [f"assert g{i}() == 1"], f"def g{i}(): return 1")}
        for i in (2, 3)
    ]
    ctx = P.aux_context_for_record(own, donors)
    assert ctx.startswith(
        "## Reference Samples (DO NOT SOLVE THESE)\nThe following are solved examples from OTHER tasks"
    )
    assert "### [REFERENCE ONLY #1]\nReference Task\ntask 2" in ctx and "### [REFERENCE ONLY #2]" in ctx
    assert "Reference Solution:\n```python\ndef g2(): return 1\n```" in ctx
    assert (
        "\n-----\n## Task to Solve (ONLY ANSWER THIS TASK)\nNow solve ONLY the following task. "
        "Output ONLY the final code for THIS task.\n\nSTUDENT PROMPT"
    ) in ctx
    assert ctx.endswith("STUDENT PROMPT") and "SECRET-ANSWER" not in ctx
    with pytest.raises(ValueError, match="own donor"):
        P.aux_context_for_record(own, [own])
    assert P.build_aux_context([], "S") == "S"
    mcqa = P.build_aux_context([P.mcqa_demo_block("Q", ["x", "y"], "B", "why")], "S", "mcqa")
    assert "OTHER questions" in mcqa and "A) x\nB) y\n\nReference Answer:\nAnswer: B.\nExplanation: why" in mcqa
    assert "Output ONLY the answer for THIS task." in mcqa
    tool = P.tool_demo_block("Do it", ["Action: a", "Action Input: {}"])
    assert tool == "#### Reference Question\nDo it\n\n#### Reference Response\nAction: a Action Input: {}"


def test_induction_context() -> None:
    assert (
        P.build_induction_context("S", "Be careful.")
        == f"## General Instruction for Your Answer\nBe careful.\n\nS\n\n{P.SD_INSTRUCTION}"
    )
