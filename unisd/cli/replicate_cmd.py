"""``unisd replicate``: train and compare every method of an experiment file on its tasks."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replicate",
        help="the paper's comparison in miniature: every method × task × seed, one table",
        description="Train the experiment's methods on its tasks with the same seeds and budget; write "
        "table.md, results.json and plots. Finished runs are reused; a killed replication resumes.",
    )
    p.add_argument("experiment", help="a shipped experiment name (e.g. mini-table) or an experiment .yaml file")
    p.add_argument("--output-dir", "-o", help="experiment directory (default: runs/replicate-<name>[-quick])")
    p.add_argument("--quick", action="store_true", help="the experiment's CI-sized variant (its quick: section)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="train N runs at once in separate processes, splitting the CPU threads between them "
        "(default 1; on a 2-core CPU, 2 gets through ~1.4x more runs per hour)",
    )
    p.add_argument("--tasks", help="comma-separated task names: run only these columns of the experiment")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="recipe override for every run, after the experiment's own (e.g. --set model.name_or_path=...)",
    )
    p.add_argument("--dry-run", action="store_true", help="validate everything and list the runs without training")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging
    import sys
    from pathlib import Path

    from unisd.runs.replicate import load_experiment, plan, run_replication
    from unisd.errors import UserError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    whole = load_experiment(args.experiment, quick=args.quick)
    if args.set:
        whole = whole.model_copy(update={"set": [*whole.set, *args.set]})
    exp = whole.only_tasks([t.strip() for t in args.tasks.split(",") if t.strip()]) if args.tasks else whole
    out = (
        Path(args.output_dir)
        if args.output_dir
        else Path("runs") / f"replicate-{exp.name}{'-quick' if args.quick else ''}"
    )
    if args.dry_run:
        for r in plan(exp):
            print(f"{r['dir']}: recipe {r['recipe'].name}, seed {r['seed']}, {r['recipe'].training.max_steps} steps")
        return 0
    run_replication(exp, out, workers=args.workers, whole=whole if args.tasks else None)
    print((out / "table.md").read_text())
    print(f"written: {out}")
    return 0
