"""``unisd train``: on-policy self-distillation (or a baseline) from a recipe."""

from __future__ import annotations

import argparse


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
    from unisd.runs.launch import train_from_args

    return train_from_args(args)
