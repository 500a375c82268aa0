"""``unisd inspect``: where a run's divergence mass sits, teacher vs student accuracy, held-out curve."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="diagnose a run: divergence by position and token class, teacher vs student accuracy, mechanism activity",
        description="Writes RUN/inspect/ (inspect.json, inspect.md, plots) for a run directory.",
    )
    p.add_argument("run", metavar="RUN", help="a run directory (holds recipe.yaml)")
    p.add_argument("--records", type=int, default=64, help="records to sample and score (default 64)")
    p.add_argument("--split", default="train", help="dataset split of those records (default train)")
    p.add_argument(
        "--opening", type=int, default=3, help="how many leading completion tokens count as the opening (default 3)"
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument(
        "--mechanisms",
        action="store_true",
        help="only the per-mechanism activity table, read from metrics.jsonl (no model is loaded: seconds)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from unisd.runs.inspection import inspect_run, mechanism_report, report_markdown

    if args.mechanisms:
        from unisd.runs.activity import activity_markdown, warnings

        out = Path(args.run) / "inspect"
        activity = mechanism_report(Path(args.run), out)
        print(activity_markdown(activity))
        for line in warnings(activity):
            print(f"warning: {line}")
        if activity:
            print(f"written: {out / 'mechanisms.png'}")
        return 0
    report = inspect_run(Path(args.run), records=args.records, split=args.split, opening=args.opening, seed=args.seed)
    print(report_markdown(report))
    print(f"written: {Path(args.run) / 'inspect'}")
    return 0
