"""``unisd compare``: several evaluated runs side by side."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="put the evaluation results of several runs side by side (table + bar chart)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories or eval result directories")
    p.add_argument("--output-dir", "-o", default="comparison", help="where to write comparison.md and comparison.png")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from unisd.evaluation.compare import run_compare

    return run_compare(args)
