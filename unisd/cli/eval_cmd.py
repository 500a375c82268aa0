"""``unisd eval``: lm-eval-harness evaluation of a model, run directory or checkpoint."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model on the UniSD benchmarks through lm-eval-harness")
    p.add_argument(
        "--model",
        "-m",
        help="model directory, hub id, run directory (LoRA merged) or 'smollm2-135m-instruct' "
        "(or lm-eval's 'hf' with --model_args pretrained=...)",
    )
    p.add_argument(
        "--model-args", "--model_args", help="lm-eval's model arguments: pretrained=PATH (the model to load)"
    )
    p.add_argument(
        "--tasks",
        "-t",
        help="comma-separated task names or groups (default: the registered default group, built in: "
        "unisd-six); a name no plugin registers is "
        "looked up among lm-eval's own tasks and the --include-path directories",
    )
    p.add_argument(
        "--include-path",
        "--include_path",
        action="append",
        metavar="DIR",
        help="a directory of plain lm-eval YAML tasks (repeatable), as lm-eval's --include_path",
    )
    p.add_argument("--limit", type=_limit, help="at most N examples per task, or a fraction of each task below 1.0")
    p.add_argument("--batch-size", "--batch_size", type=_batch_size, default=8, help="a number, or 'auto' (lm-eval's)")
    p.add_argument("--seed", type=int, help="every seed (default: 42 for UniSD's tasks, lm-eval's own for its tasks)")
    p.add_argument(
        "--apply-chat-template",
        "--apply_chat_template",
        action="store_true",
        default=None,
        help="lm-eval's tasks through the model's chat template (UniSD's tasks always use it)",
    )
    p.add_argument(
        "--num-fewshot", "--num_fewshot", type=int, help="few-shot examples per prompt (default: each task's)"
    )
    p.add_argument(
        "--gen-kwargs",
        "--gen_kwargs",
        help="generation arguments, lm-eval's k=v,k=v (e.g. temperature=0,max_gen_toks=64)",
    )
    p.add_argument(
        "--output-dir",
        "--output-path",
        "--output_path",
        "-o",
        help="where to write lm-eval JSON and the Markdown table",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of an earlier evaluation in --output-dir (they are moved to "
        "<dir>/previous-<time>/, never deleted)",
    )
    p.add_argument("--data-dir", "--data_dir", help="read benchmark files from this local directory instead of the hub")
    p.add_argument(
        "--list-tasks",
        "--list_tasks",
        action="store_true",
        help="list the registered tasks and groups (with their plugin) and exit",
    )
    p.add_argument(
        "--max-gen-toks", "--max_gen_toks", type=int, help="generation budget per answer (default: 1024, the paper's)"
    )
    p.add_argument(
        "--mcqa-rule",
        choices=["fixed", "reference"],
        default="fixed",
        help="MCQA letter extraction: 'fixed' (default) never reads the article 'A' or an echoed option list "
        "as the answer; 'reference' is the spec's rule, for reproducing the authors' numbers",
    )
    p.add_argument(
        "--log-samples",
        "--log_samples",
        action="store_true",
        help="also write every prompt and answer (never for GPQA)",
    )
    r = p.add_argument_group("retention (spec §5.3)")
    r.add_argument(
        "--retention-base",
        metavar="MODEL",
        help="also measure gold-completion fit, PPLret and JSD against this base model",
    )
    r.add_argument(
        "--retention-limit", type=int, default=50, help="prompts per benchmark for the retention metrics (default 50)"
    )
    r.add_argument(
        "--retention-max-new-tokens",
        type=int,
        default=256,
        help="completion budget of the retention metrics (default 256)",
    )
    p.set_defaults(func=run)


def _limit(text: str) -> int | float:
    """lm-eval's --limit: a count, or a fraction of each task below 1.0."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be positive")
    return value if value < 1 else int(value)


def _batch_size(text: str) -> int | str:
    if text == "auto" or text.startswith("auto:"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a number, or 'auto'") from None


def run(args: argparse.Namespace) -> int:
    from unisd.cli.eval_run import run_eval

    return run_eval(args)
