"""Which reasoning-gym tasks can a model self-distil on? Base accuracy, the teacher's advantage, length.

For each task in ``TASKS`` (a skill, a reasoning-gym task and options sized for a small model) it
measures, on the task's **validation** split (carved from the train generator: never the test items
an experiment reports on):

- the base model's greedy accuracy with the student prompt, scored by the task's own check;
- the greedy accuracy of the answer-aware teacher: the same weights shown the reference before the
  question (the demo's ``data.teacher_template``); ``advantage`` = teacher − student;
- the student's answer length in tokens (mean), the share of answers cut at the budget, and the
  reference's length (what an SFT target or a teacher's copy would be).

A task qualifies for self-distillation experiments when the student is neither at the floor nor at
the ceiling (``--lo``/``--hi``, default 15–70%) and the teacher's advantage is at least ``--adv``
points (default 15). It prints one Markdown table and writes every number to ``--out`` (JSON).
Run from the repository root::

    python benchmarks/task_scan.py --items 96              # every task (about 20-30 min on 2 cores)
    python benchmarks/task_scan.py --items 16 --tasks spell_backward,gcd   # a quick look
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

#: The demo's teacher prompt (docs/results.md: chosen on chain_sum's validation split).
TEACHER_TEMPLATE = "Example of a correct response to the question below:\n{reference}\n\n{prompt}"

#: (skill, task, options): small instances, so that a 135M model is not at the floor.
TASKS: list[tuple[str, str, dict]] = [
    ("addition", "chain_sum", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2}),
    (
        "arithmetic",
        "basic_arithmetic",
        {
            "min_terms": 2,
            "max_terms": 2,
            "min_digits": 1,
            "max_digits": 2,
            "operators": ["+", "-", "*"],
            "allow_parentheses": False,
            "allow_negation": False,
        },
    ),
    ("arithmetic", "products", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2}),
    (
        "arithmetic",
        "decimal_chain_sum",
        {
            "min_terms": 2,
            "max_terms": 2,
            "min_digits": 1,
            "max_digits": 1,
            "min_decimal_places": 1,
            "max_decimal_places": 1,
        },
    ),
    ("arithmetic", "gcd", {"min_value": 1, "max_value": 100}),
    ("arithmetic", "lcm", {"min_value": 2, "max_value": 50}),
    ("arithmetic", "prime_factorization", {"min_value": 2, "max_value": 1000}),
    (
        "arithmetic",
        "fraction_simplification",
        {"min_value": 1, "max_value": 20, "min_factor": 2, "max_factor": 9, "styles": ["plain"]},
    ),
    (
        "arithmetic",
        "simple_equations",
        {
            "min_terms": 2,
            "max_terms": 2,
            "min_value": 1,
            "max_value": 10,
            "operators": ["+", "-"],
            "operators_weights": [0.5, 0.5],
        },
    ),
    ("arithmetic", "base_conversion", {"min_base": 2, "max_base": 10, "min_value": 1, "max_value": 64}),
    ("comparison", "number_format", {"min_num_candidates": 2, "max_num_candidates": 2, "min_n": 10, "max_n": 1000}),
    ("counting", "letter_counting", {"min_words": 2, "max_words": 4}),
    ("counting", "count_bits", {"min_n": 1, "max_n": 1023}),
    ("counting", "leg_counting", {"min_animals": 1, "max_animals": 2, "min_instances": 1, "max_instances": 3}),
    ("strings", "spell_backward", {"min_word_len": 3, "max_word_len": 5}),
    ("strings", "word_sequence_reversal", {"min_words": 2, "max_words": 3}),
    (
        "strings",
        "letter_jumble",
        {
            "min_words": 2,
            "max_words": 3,
            "min_word_len": 3,
            "max_word_len": 6,
            "min_corruption_level": 0.1,
            "max_corruption_level": 0.3,
        },
    ),
    (
        "sorting",
        "number_sorting",
        {"min_numbers": 2, "max_numbers": 3, "min_decimals": 0, "max_decimals": 0, "min_value": 0, "max_value": 99},
    ),
    (
        "sorting",
        "number_filtering",
        {"min_numbers": 3, "max_numbers": 4, "min_decimals": 0, "max_decimals": 0, "min_value": 0, "max_value": 99},
    ),
    ("sorting", "word_sorting", {"min_words": 2, "max_words": 3, "min_word_length": 3, "max_word_length": 6}),
    ("logic", "syllogism", {}),
    ("logic", "family_relationships", {"min_family_size": 3, "max_family_size": 4}),
    ("logic", "isomorphic_strings", {"min_string_length": 2, "max_string_length": 4}),
    ("logic", "ransom_note", {"max_note_length": 3, "max_magazine_length": 8}),
    ("calendar", "calendar_arithmetic", {"tasks": ["weekday_of_date"]}),
    ("calendar", "time_intervals", {}),
]


def scan_task(
    model, tok, skill: str, task: str, options: dict, *, items: int, max_new_tokens: int, batch_size: int
) -> dict:
    from unisd.data.templates import apply_teacher_template
    from unisd.runs.heldout import heldout_accuracy
    from unisd.plugins import get_host

    cls = get_host().registries.datasets.get("reasoning_gym")
    adapter = cls(
        cls.Config(
            type="reasoning_gym", task=task, options=options, split="validation", size=512, validation_size=items
        )
    )
    records = list(adapter.load())[:items]
    apply_teacher_template(records, TEACHER_TEMPLATE)
    t0 = time.perf_counter()
    student = heldout_accuracy(model, tok, adapter, records, max_new_tokens, batch_size=batch_size)
    teacher = heldout_accuracy(
        model,
        tok,
        adapter,
        [{**r, "prompt": r["teacher_prompt"]} for r in records],
        max_new_tokens,
        batch_size=batch_size,
    )
    lengths = [len(tok(a["answer"], add_special_tokens=False)["input_ids"]) for a in student["answers"]]
    gold = [len(tok(r["gold"], add_special_tokens=False)["input_ids"]) for r in records]
    return {
        "skill": skill,
        "task": task,
        "options": options,
        "n": student["n"],
        "student": student["accuracy"],
        "teacher": teacher["accuracy"],
        "advantage": None
        if student["accuracy"] is None or teacher["accuracy"] is None
        else teacher["accuracy"] - student["accuracy"],
        "answer_tokens": sum(lengths) / len(lengths),
        "cut": sum(n >= max_new_tokens for n in lengths) / len(lengths),
        "gold_tokens": sum(gold) / len(gold),
        "seconds": time.perf_counter() - t0,
        "examples": [
            {"prompt": r["prompt"], "gold": r["gold"], "student": s["answer"], "teacher": t["answer"]}
            for r, s, t in list(zip(records, student["answers"], teacher["answers"], strict=True))[:3]
        ],
    }


def qualifies(row: dict, lo: float, hi: float, adv: float) -> bool:
    return row["student"] is not None and lo <= row["student"] <= hi and (row["advantage"] or 0) >= adv


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def table(rows: list[dict], lo: float, hi: float, adv: float) -> str:
    lines = [
        "| skill | task | n | student | teacher | advantage | answer tokens | cut | reference tokens | qualifies |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['skill']} | {r['task']} | – | error: {r['error'][:60]} | | | | | | no |")
            continue
        adv_pts = "–" if r["advantage"] is None else f"{100 * r['advantage']:+.1f}"
        lines.append(
            f"| {r['skill']} | {r['task']} | {r['n']} | {_pct(r['student'])} | {_pct(r['teacher'])} | {adv_pts} | "
            f"{r['answer_tokens']:.1f} | "
            f"{100 * r['cut']:.0f}% | {r['gold_tokens']:.1f} | {'**yes**' if qualifies(r, lo, hi, adv) else 'no'} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--items", type=int, default=96, help="validation items per task")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--tasks", default="", help="comma-separated task names (default: every task in TASKS)")
    p.add_argument("--lo", type=float, default=0.15)
    p.add_argument("--hi", type=float, default=0.70)
    p.add_argument("--adv", type=float, default=0.15)
    p.add_argument("--out", default="task_scan.json")
    args = p.parse_args()

    from tqdm.auto import tqdm

    from unisd.evaluation.loading import load_for_eval

    wanted = [t for t in args.tasks.split(",") if t]
    unknown = sorted(set(wanted) - {t for _, t, _ in TASKS})
    if unknown:
        raise SystemExit(f"task_scan: no task {', '.join(unknown)} in TASKS")
    chosen = [spec for spec in TASKS if not wanted or spec[1] in wanted]
    model, tok = load_for_eval(args.model)
    rows = []
    for skill, task, options in tqdm(chosen, desc="task scan", unit="task"):
        try:
            rows.append(
                scan_task(
                    model,
                    tok,
                    skill,
                    task,
                    options,
                    items=args.items,
                    max_new_tokens=args.max_new_tokens,
                    batch_size=args.batch_size,
                )
            )
        except Exception as exc:  # a task whose options this reasoning-gym version refuses: reported, not fatal
            rows.append({"skill": skill, "task": task, "options": options, "error": f"{type(exc).__name__}: {exc}"})
        Path(args.out).write_text(
            json.dumps(
                {
                    "model": args.model,
                    "items": args.items,
                    "max_new_tokens": args.max_new_tokens,
                    "teacher_template": TEACHER_TEMPLATE,
                    "rows": rows,
                },
                indent=2,
            )
        )
    print(table(rows, args.lo, args.hi, args.adv))


if __name__ == "__main__":
    main()
