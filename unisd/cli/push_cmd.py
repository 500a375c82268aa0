"""``unisd push``: upload a run's final model (merged, or the LoRA adapter) to the Hugging Face Hub."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="upload a run's final model and its model card to the Hugging Face Hub")
    p.add_argument("run", help="a run directory (its final/merged, or final/adapter with --adapter)")
    p.add_argument("--repo", required=True, help="the Hub repository id, e.g. me/smollm2-unisd")
    p.add_argument("--adapter", action="store_true", help="push the LoRA adapter instead of the merged model")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--token", help="a Hub token (default: the logged-in one, or HF_TOKEN)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from unisd.runs.export import push_to_hub

    url = push_to_hub(Path(args.run), args.repo, adapter=args.adapter, private=args.private, token=args.token)
    print(f"pushed: {url}")
    return 0
