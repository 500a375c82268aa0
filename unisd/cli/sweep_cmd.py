"""``unisd sweep``: a grid of recipes × seeds × --set values, with a comparison table."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="train several recipes/seeds/overrides and collect a comparison table")
    p.add_argument("--recipes", "-r", required=True, help="comma-separated recipe names or files")
    p.add_argument("--seeds", default="42", help="comma-separated seeds")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="sweep a recipe field over values (repeatable; the product is run)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fixed overrides for every run",
    )
    p.add_argument("--model", help="override model.name_or_path")
    p.add_argument("--data", help="override the dataset")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--output-dir", "-o", default="runs/sweep")
    p.add_argument("--dry-run", action="store_true", help="print the runs without training")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from unisd.runs.sweep import Sweep, parse_seeds, run_sweep

    sweep = Sweep(
        recipes=[r.strip() for r in args.recipes.split(",") if r.strip()],
        seeds=parse_seeds(args.seeds),
        grid=args.grid,
        overrides=args.overrides,
        model=args.model,
        data=args.data,
        max_steps=args.max_steps,
    )
    return run_sweep(sweep, args.output_dir, dry_run=args.dry_run)
