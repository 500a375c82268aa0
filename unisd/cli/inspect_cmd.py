"""``unisd inspect``: where a run's divergence mass sits, teacher vs student accuracy, held-out curve."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="diagnose a run: divergence by position and token class, teacher vs student accuracy",
                       description="Writes RUN/inspect/ (inspect.json, inspect.md, plots) for a run directory.")
    p.add_argument("run", metavar="RUN", help="a run directory (holds recipe.yaml)")
    p.add_argument("--records", type=int, default=64, help="records to sample and score (default 64)")
    p.add_argument("--split", default="train", help="dataset split of those records (default train)")
    p.add_argument("--opening", type=int, default=3, help="how many leading completion tokens count as the opening (default 3)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from unisd.engine.inspection import inspect_run, report_markdown

    report = inspect_run(Path(args.run), records=args.records, split=args.split, opening=args.opening, seed=args.seed)
    print(report_markdown(report))
    print(f"written: {Path(args.run) / 'inspect'}")
    return 0
