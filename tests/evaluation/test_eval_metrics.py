"""Answer extraction and scoring rules on crafted model outputs."""

from __future__ import annotations

import pytest

from unisd_plugins.evaluation import scoring as M


# (text, options, fixed rule → (letter, rule), reference rule → (letter, rule)); "=" means the same
_MCQA_CASES = [
    ("Reasoning: plants need light.\nAnswer: B", 4, ("B", "answer_line"), "="),
    ("**Answer:** (C)", 4, ("C", "answer_line"), "="),
    ("Answer: E\nthe answer is B", 4, ("B", "answer_is"), "="),  # E is not valid with 4 options
    ("I think the answer is (D).", 4, ("D", "answer_is"), "="),
    ("The correct answer is: C", 4, ("C", "answer_is"), "="),
    ("Final ANSWER: A because ...", 4, ("A", "answer_colon"), "="),
    ("B. It conducts heat", 3, ("B", "letter_line"), "="),
    ("(C) fits best", 3, ("C", "letter_line"), "="),
    ("C", 3, ("C", "letter_line"), ("C", "last_letter")),
    ("  D)  ", 4, ("D", "letter_line"), "="),
    ("Reasoning: wet ground.\nB", 3, ("B", "letter_line"), ("B", "last_letter")),
    ("Options A and B are wrong, so C", 3, ("C", "last_letter"), "="),
    ("no letter at all", 4, (None, None), "="),
    ("the answer is a dog", 4, (None, None), "="),  # lowercase letters never count
    ("Answer: D", 3, (None, None), "="),  # out of range and nothing else
    ("", 4, (None, None), "="),
    # the article "A" (real CoS-E outputs of the 135M model)
    ("A beaver is known for their lumber, their supplies come from the woods.", 5, (None, None), ("A", "letter_line")),
    ("A human should use a whirlpool bath.", 5, (None, None), ("A", "letter_line")),
    ("A farmer sees a weasel in the woods, where is the farmer?", 5, (None, None), ("A", "letter_line")),
    ("It is A good idea to rest.", 5, (None, None), ("A", "last_letter")),
    ("Because\nA person needs sleep", 5, (None, None), ("A", "letter_line")),
    ("A dog barks. So D", 5, ("D", "last_letter"), ("A", "letter_line")),
    # an echoed option list is not a choice ...
    ("A. fall down\nB. play tag\nC. breathe", 5, (None, None), ("A", "letter_line")),
    ("A. michigan\nB. louisiana\nC. river delta", 3, (None, None), ("A", "letter_line")),
    ("A) red\nB) blue\nC) green\nD) white", 4, (None, None), ("A", "letter_line")),
    ("(A) cat\n(B) dog", 2, (None, None), ("A", "letter_line")),
    ("A. eye strain\nA. eye strain\nB. carpal tunnel syndrome\n", 5, (None, None), ("A", "letter_line")),
    # ... but a choice made after it still counts
    ("A. red\nB. blue\nSo B", 3, ("B", "last_letter"), ("A", "letter_line")),
    ("A. red\nB. blue\nC", 3, ("C", "letter_line"), ("A", "letter_line")),
    ("A. red\nB. blue\nAnswer: B", 3, ("B", "answer_line"), "="),
    ("A. relaxation\n\nThe correct answer is B. sadness.", 5, ("B", "answer_is"), "="),
    # a single option line is an answer in both modes
    ("A. building", 5, ("A", "letter_line"), "="),
    ("E. the garage, since cars live there", 5, ("E", "letter_line"), "="),
    # words and abbreviations are not letters
    ("Because DNA and RNA differ", 4, (None, None), "="),
    ("B-cells fight infection", 4, (None, None), ("B", "last_letter")),
    ("I would say B is right.", 4, (None, None), ("B", "last_letter")),
]


@pytest.mark.parametrize("text, n, fixed, reference", _MCQA_CASES)
def test_mcqa_extraction_both_rules(text: str, n: int, fixed, reference) -> None:
    assert M.extract_mcqa_letter(text, n) == fixed
    assert M.extract_mcqa_letter(text, n, "reference") == (fixed if reference == "=" else reference)


def test_mcqa_table_is_large_and_the_modes_differ_where_it_matters() -> None:
    assert len(_MCQA_CASES) >= 30
    assert sum(r != "=" for *_, r in _MCQA_CASES) >= 10
    with pytest.raises(ValueError, match="unknown MCQA rule"):
        M.extract_mcqa_letter("A", 4, "loose")


def test_mcqa_first_answer_line_wins() -> None:
    assert M.extract_mcqa_letter("Answer: A\nAnswer: B", 4) == ("A", "answer_line")


def test_mcqa_scores() -> None:
    assert M.mcqa_scores("Answer: B", "B", 4) == {"acc": 1.0, "extracted": 1.0}
    assert M.mcqa_scores("Answer: C", "B", 4) == {"acc": 0.0, "extracted": 1.0}
    assert M.mcqa_scores("hmm", "B", 4) == {"acc": 0.0, "extracted": 0.0}


def test_code_extraction_precedence() -> None:
    assert M.extract_code('{"code": "def f():\\n    return 1"}') == "def f():\n    return 1"
    assert M.extract_code('```json\n{"code": "x = 1"}\n```\n```python\ny = 2\n```') == "x = 1"
    assert M.extract_code("```\nplain = 1\n```\ntext\n```python\nreal = 2\n```") == "real = 2\n"
    assert M.extract_code("intro\n```py\na = 1\n```") == "a = 1\n"
    assert M.extract_code("```\nfirst = 1\n```\n```\nsecond = 2\n```") == "first = 1\n"
    assert M.extract_code("```python\nunterminated = 1\n") == "unterminated = 1\n"
    assert M.extract_code("def raw():\n    pass") == "def raw():\n    pass"


def test_program_composition() -> None:
    prog = M.mbpp_program("def sq(x):\n    return x * x", ["assert sq(3) == 9"], ["import math"], "setup = 1")
    # the candidate's code is the solution; the harness's setup and asserts are the checks
    assert prog.solution.index("import math") < prog.solution.index("def sq") and "assert" not in prog.solution
    assert prog.checks.index("setup = 1") < prog.checks.index("assert sq")
    src = prog.source
    assert src.index("import math") < src.index("def sq") < src.index("setup = 1") < src.index("assert sq")
    he = M.humaneval_program("    return 1\n", "def check(f):\n    assert f() == 1", "one", "def one():\n")
    assert he.solution.startswith("def one():\n    return 1") and he.checks.rstrip().endswith("check(one)")
    assert not M.humaneval_program("def one():\n    return 1", "", "one", "PROMPT").solution.startswith("PROMPT")


def test_code_pass_at_1_runs_in_sandbox() -> None:
    good = M.mbpp_program("def sq(x):\n    return x * x", ["assert sq(3) == 9", "assert sq(0) == 0"])
    bad = M.mbpp_program("def sq(x):\n    return x + x", ["assert sq(3) == 9"])
    loop = M.mbpp_program("def sq(x):\n    while True:\n        pass", ["assert sq(3) == 9"])
    assert M.code_pass_at_1([good, bad, loop], timeout_s=2) == [1.0, 0.0, 0.0]


REACT = """Thought: I need the holidays.
Action: PublicHolidays
Action Input: {"year": 2024, "countryCode": "US"}
Observation: [...]
Thought: now the long weekends
Action: `LongWeekend`
Action Input: ```json
{"year": "2024", "countryCode": "GB"}
```
Observation: ...
Final Answer: done
Action: Ignored
"""
GOLD = [
    {"Action": "PublicHolidays", "Action_Input": '{"year": 2024, "countryCode": "US"}'},
    {"Action": "LongWeekend", "Action_Input": '{"year": 2024, "countryCode": "US"}'},
]


def test_react_parsing() -> None:
    calls = M.parse_react_calls(REACT)
    assert [c.action for c in calls] == ["PublicHolidays", "LongWeekend"]
    assert calls[0].args == {"year": 2024, "countryCode": "US"} and calls[1].args == {
        "year": "2024",
        "countryCode": "GB",
    }


def test_tool_scores_partial_arguments() -> None:
    s = M.tool_scores(REACT, GOLD)
    assert (
        s["action_acc"] == 1.0 and s["arg_acc"] == pytest.approx(0.75) and s["full_acc"] == 0.0 and s["parsed"] == 1.0
    )


def test_tool_scores_exact_and_mismatch() -> None:
    exact = 'Action: PublicHolidays\nAction Input: {"year": "2024", "countryCode": "US"}'
    assert M.tool_scores(exact, GOLD[:1]) == {"action_acc": 1.0, "arg_acc": 1.0, "full_acc": 1.0, "parsed": 1.0}
    assert M.tool_scores(exact, GOLD)["arg_acc"] == 0.0  # call counts differ
    assert M.tool_scores("Action: Other\nAction Input: {}", GOLD[:1])["action_acc"] == 0.0
    assert M.tool_scores("Final Answer: nothing to do", [])["full_acc"] == 1.0


def test_tool_empty_gold_arguments() -> None:
    gold = [{"Action": "getRandom", "Action_Input": "{}"}]
    assert M.tool_scores("Action: getRandom\nAction Input: {}", gold)["full_acc"] == 1.0
    assert M.tool_scores('Action: getRandom\nAction Input: {"x": 1}', gold)["arg_acc"] == 0.0
    only_empty = [{"Action": "search", "Action_Input": '{"color": "wild", "gender": ""}'}]
    assert M.tool_scores('Action: search\nAction Input: {"color": "wild"}', only_empty)["full_acc"] == 1.0


def test_gold_calls_formats() -> None:
    assert [c.action for c in M.gold_calls('[{"Action": "a", "Action_Input": "{}"}]')] == ["a"]
    assert M.gold_calls('Action: b\nAction Input: {"k": 1}')[0].args == {"k": 1}
    args, ok = M.parse_action_input("not json")
    assert args == {} and not ok
    echo = "Action: CountryAvailableCountries\nAction Input: the input to the action, in JSON format"
    assert M.tool_scores(echo, [{"Action": "CountryAvailableCountries", "Action_Input": "{}"}])["arg_acc"] == 0.0
