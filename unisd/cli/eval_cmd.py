"""``unisd eval``: lm-eval-harness evaluation of a model, run directory or checkpoint."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model on the UniSD benchmarks through lm-eval-harness")
    p.add_argument("--model", "-m", help="model directory, hub id, run directory (LoRA merged) or 'smollm2-135m-instruct'")
    p.add_argument("--tasks", "-t", default="unisd-six",
                   help="comma-separated task names or groups (default: unisd-six); a name no plugin registers is "
                        "looked up among lm-eval's own tasks and the --include-path directories")
    p.add_argument("--include-path", action="append", metavar="DIR",
                   help="a directory of plain lm-eval YAML tasks (repeatable), as lm-eval's --include_path")
    p.add_argument("--limit", type=int, help="at most N examples per task")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--output-dir", "-o", help="where to write lm-eval JSON and the Markdown table")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results of an earlier evaluation in --output-dir (they are moved to "
                        "<dir>/previous-<time>/, never deleted)")
    p.add_argument("--data-dir", help="read benchmark files from this local directory instead of the hub")
    p.add_argument("--list-tasks", action="store_true", help="list the registered tasks and groups (with their plugin) and exit")
    p.add_argument("--max-gen-toks", type=int, help="generation budget per answer (default: 1024, the paper's)")
    p.add_argument("--mcqa-rule", choices=["fixed", "reference"], default="fixed",
                   help="MCQA letter extraction: 'fixed' (default) never reads the article 'A' or an echoed option list "
                   "as the answer; 'reference' is the spec's rule, for reproducing the authors' numbers")
    p.add_argument("--log-samples", action="store_true", help="also write every prompt and answer (never for GPQA)")
    r = p.add_argument_group("retention (spec §5.3)")
    r.add_argument("--retention-base", metavar="MODEL", help="also measure gold-completion fit, PPLret and JSD against this base model")
    r.add_argument("--retention-limit", type=int, default=50, help="prompts per benchmark for the retention metrics (default 50)")
    r.add_argument("--retention-max-new-tokens", type=int, default=256, help="completion budget of the retention metrics (default 256)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from unisd.evaluation.cli import run_eval

    return run_eval(args)
