"""Contrastive negatives (spec §2c): requests per task and bad-teacher prompts in the teacher template."""

from __future__ import annotations

import json
from typing import Any

import pytest

from unisd_plugins.datasets import negatives as N
from unisd_plugins.datasets import prompts as P
from unisd_plugins.datasets.base import mcqa_record
from unisd_plugins.datasets.gsm8k import GSM8KAdapter, GSM8KConfig
from unisd_plugins.datasets.mbpp import mbpp_record
from unisd_plugins.datasets.toolalpaca import react_prompt, tool_record


def _mcqa(n_choices: int = 4) -> dict[str, Any]:
    choices = ["alpha", "beta", "gamma", "delta"][:n_choices]
    return mcqa_record(
        rid="q/1",
        question="Pick one?",
        choices=choices,
        correct_index=1,
        explanation="Beta is right.",
        index=0,
        seed=42,
    )


def test_mcqa_round_robin_wrong_letters_and_render() -> None:
    rec = _mcqa()
    wrong = N.wrong_letters(rec)
    assert len(wrong) == 4 and rec["answer"] not in wrong and wrong[3] == wrong[0] and len(set(wrong[:3])) == 3
    requests = GSM8KAdapter(GSM8KConfig()).negative_requests(rec)  # base-class method dispatches on meta.task
    assert len(requests) == 4
    for letter, req in zip(wrong, requests, strict=True):
        assert f"the answer is {letter} ({rec['meta']['choices'][letter]})" in req and '"answer": "' + letter in req
    # the assigned wrong letter is used, whatever the generator wrote
    gen = json.dumps({"reasoning": "Gamma sounds plausible.", "answer": rec["answer"]})
    bad = N.render_negative(rec, gen, 1)
    assert bad == P.render_teacher_prompt(rec["prompt"], wrong[1], "Gamma sounds plausible.")
    # same template as the positive teacher: only the reference differs
    good = rec["teacher_prompt"]
    head = "\n" + rec["prompt"] + "\n\nThis is an example for a response to the question:\n"
    assert good.startswith(head) and bad.startswith(head)
    assert good.endswith(f"\n\n{P.SD_INSTRUCTION}\n") and bad.endswith(f"\n\n{P.SD_INSTRUCTION}\n")
    free = N.render_negative(rec, "It must be the other one.\nAnswer: Z", 0)
    assert f"Reasoning: It must be the other one.\nAnswer: {wrong[0]}\n" in free and "Answer: Z" not in free


def test_two_option_mcqa_repeats_the_only_wrong_letter() -> None:
    rec = _mcqa(2)
    assert len(set(N.wrong_letters(rec))) == 1 and len(N.negative_requests(rec)) == 4


def test_mbpp_one_request_per_bug_type() -> None:
    rec = mbpp_record(
        {
            "task_id": 700,
            "text": "Add numbers.",
            "code": "def add(a, b):\r\n    return a + b",
            "test_list": ["assert add(1, 2) == 3"],
            "test_setup_code": "",
        }
    )
    reqs = N.negative_requests(rec)
    assert [bug in req for bug, req in zip(N.CODE_BUG_TYPES, reqs, strict=True)] == [True] * 4
    assert all("add(a, b)" in r and "assert add(1, 2) == 3" in r for r in reqs)
    assert all(r.count("You are simulating a programmer") == 1 for r in reqs)  # no stray duplicated line (§7.11)
    bad_code = "def add(a, b):\n    return a - b"
    for gen in (
        json.dumps({"reasoning": "r", "answer": f"```python\n{bad_code}\n```"}),
        f"Here:\n```python\n{bad_code}\n```",
    ):
        assert N.render_negative(rec, gen, 2) == P.render_teacher_prompt(rec["prompt"], bad_code)


def test_tool_one_request_per_corruption() -> None:
    prompt = react_prompt({"getFact": "Get a fact."}, "Tell me a fact.")
    rec = tool_record(
        {
            "id": "t/1",
            "prompt": prompt,
            "instruction": "Tell me a fact.",
            "golden_answer": [{"Action": "getFact", "Action_Input": "{}"}],
            "golden_response": [""],
        }
    )
    reqs = N.negative_requests(rec)
    assert [kind in req for kind, req in zip(N.TOOL_CORRUPTIONS, reqs, strict=True)] == [True] * 4
    assert "(not getFact)" in reqs[0]
    gen = json.dumps({"reasoning": "I will list facts.", "answer": "Action: listFacts\nAction Input: {}"})
    bad = N.render_negative(rec, gen, 0)
    assert bad == P.render_teacher_prompt(
        rec["prompt"], "Action: listFacts\nAction Input: {}", "I will list facts.", variant="tool"
    )
    assert bad.endswith(P.TOOL_SUFFIX) and rec["teacher_prompt"].endswith(P.TOOL_SUFFIX)


def test_gsm8k_wrong_numbers() -> None:
    rec = {"id": "g/1", "prompt": "Q", "answer": "72", "meta": {"task": "math", "question": "How many?"}}
    wrong = N.wrong_numbers(rec)
    assert len(set(wrong)) == 4 and "72" not in wrong
    reqs = N.negative_requests(rec)
    assert all(f"WRONG final answer {w}" in r for w, r in zip(wrong, reqs, strict=True))
    assert N.render_negative(rec, "48 + 25 = 73\n#### 73", 0) == P.render_teacher_prompt(
        "Q", f"#### {wrong[0]}", "48 + 25 = 73"
    )


def test_unknown_task_is_explicit() -> None:
    with pytest.raises(NotImplementedError, match="meta.task"):
        N.negative_requests({"id": "x", "meta": {}})
    with pytest.raises(ValueError, match="negatives need meta"):
        N.negative_requests({"id": "x", "meta": {"task": "mcqa"}})
