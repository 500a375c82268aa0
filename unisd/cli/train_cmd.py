"""``unisd train``: on-policy self-distillation (or a baseline) from a recipe."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model with a recipe",
        description="Train with a recipe. The recipe says everything; the flags override its common fields.",
    )
    p.add_argument(
        "--recipe",
        "-r",
        help="shipped recipe name or .yaml/.json file (default: the registered default "
        "recipe, built in: demo, the embedded real model and task)",
    )
    p.add_argument("--model", help="override model.name_or_path (hub id, local dir, or 'smollm2-135m-instruct')")
    p.add_argument(
        "--data",
        help="override the dataset: a registered adapter name, NAME:PATH for local files, or a .jsonl of records",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any recipe field, e.g. --set optim.lr=1e-5 (repeatable)",
    )
    p.add_argument("--max-steps", type=int, help="override training.max_steps")
    p.add_argument("--output-dir", "-o", help="run directory (default: runs/<recipe>-<timestamp>)")
    p.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        metavar="auto|PATH",
        help="resume from the latest complete checkpoint in --output-dir (auto) or from PATH",
    )
    p.add_argument("--seed", type=int, help="override training.seed")
    p.add_argument("--on-bad-record", choices=("error", "skip"), help="override data.on_bad_record")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the run in --output-dir (it is kept as <dir>.replaced-<time>)"
    )
    p.add_argument(
        "--allow-recipe-change",
        action="store_true",
        help="resume a checkpoint written under another recipe (refused by default, naming the fields)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return train_from_args(args)


def train_from_args(args: argparse.Namespace) -> int:
    import logging
    import sys
    from pathlib import Path

    from unisd.runs.launch import (
        OutputDirError,
        _processes,
        check_resume_path,
        build_recipe,
        default_output_dir,
        train,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    recipe = build_recipe(
        args.recipe,
        args.overrides,
        model=args.model,
        max_steps=args.max_steps,
        seed=args.seed,
        on_bad_record=args.on_bad_record,
        data=args.data,
    )
    if args.resume == "auto" and not args.output_dir:
        raise OutputDirError(
            "--resume auto continues the run in --output-dir; name it (e.g. -o runs/demo-20261201-101500)"
        )
    check_resume_path(args.resume)  # before anything is written next to a mistyped path
    out = Path(args.output_dir) if args.output_dir else default_output_dir(recipe)
    if args.resume and args.resume != "auto" and not args.output_dir:
        out = Path(args.resume).resolve().parents[1]
    summary = train(
        recipe,
        out,
        resume=args.resume,
        overwrite=args.overwrite,
        allow_recipe_change=getattr(args, "allow_recipe_change", False),
    )
    if _processes().is_main_process:
        print_summary(summary, out)
    return 0


def print_summary(summary: dict[str, Any], out: Path) -> None:
    """The run's summary as the end of ``unisd train`` prints it."""
    print(f"\nrun directory: {out}")
    print(
        f"recipe {summary['recipe']}: {summary.get('steps')} steps on {summary.get('records')} records in {summary.get('seconds')} s"
    )
    first, last = summary.get("first", {}), summary.get("last", {})
    for k in sorted(set(first) | set(last)):
        print(
            f"  {k:<24} first step {first.get(k, float('nan')):>10.4f}   last step {last.get(k, float('nan')):>10.4f}"
        )
    h = summary.get("heldout")
    if h:

        def fmt(x):
            return "n/a" if x is None else f"{100 * x:.1f}%"

        print(
            f"  held-out accuracy on {h['n']} {h['split']} records: before {fmt(h['accuracy_before'])}, "
            f"after {fmt(h['accuracy_after'])}"
        )
    if summary.get("mechanisms"):
        from unisd.runs.activity import activity_lines

        print("  mechanisms (mean over the logged steps):")
        for line in activity_lines(summary["mechanisms"]):
            print(line)
    if "model" in summary:
        for k, v in summary["model"].items():
            print(f"  {k}: {v}")
