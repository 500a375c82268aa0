"""``unisd eval``: load a model (dir, hub id, alias, adapter or run directory) and evaluate it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from unisd.sandbox import SandboxUnavailable
from unisd.evaluation.tasks import describe_tasks, select_tasks
from unisd.files import hold_directory


def _default_output(model: str) -> Path:
    path = Path(model).expanduser()
    if path.is_dir() and ((path / "recipe.yaml").is_file() or (path / "final").is_dir()):
        return path / "eval"  # a run directory keeps its evaluation inside
    return Path("eval-results") / Path(model.rstrip("/")).name


#: what an evaluation writes into its output directory.
RESULT_FILES = ("results.json", "results_*.json", "results.md", "retention.json", "samples_*.jsonl")


def earlier_results(out: Path) -> list[Path]:
    """The files of an earlier evaluation in ``out`` (a file in place of the directory is refused)."""
    from unisd.errors import UserError

    if out.exists() and not out.is_dir():
        raise UserError(f"--output-dir {out} is a file, not a directory")
    return sorted({p for pattern in RESULT_FILES for p in out.glob(pattern) if p.is_file()}) if out.is_dir() else []


def move_aside(out: Path, files: list[Path]) -> Path:
    """Move an earlier evaluation's ``files`` into ``out/previous-<time>/`` (``--overwrite`` never deletes)."""
    from unisd.files import free_name

    aside = free_name(out / "previous")
    aside.mkdir()
    for p in files:
        p.rename(aside / p.name)
    print(f"--overwrite: the earlier results are kept in {aside}", file=sys.stderr)
    return aside


def _report_sandbox(tasks: list[str]) -> None:
    """For tasks that run model-written code: which sandbox layers are active (or refuse)."""
    from unisd.sandbox import require_isolation
    from unisd.evaluation.tasks import get_task

    code_tasks = [t for t in tasks if get_task(t).executes_code]
    if not code_tasks:
        return
    report = require_isolation()
    missing = f"; missing (opted in): {'; '.join(report['layer_problems'])}" if report["layer_problems"] else ""
    print(
        f"code sandbox for {', '.join(code_tasks)}: {', '.join(report['active']) or 'no kernel layer'} active, "
        f"python guard on{missing}",
        file=sys.stderr,
    )


def run_eval(args: argparse.Namespace) -> int:
    """Entry point of ``unisd eval`` (parser in :mod:`unisd.cli.eval_cmd`)."""
    if getattr(args, "list_tasks", False):
        print(describe_tasks())
        return 0
    if getattr(args, "model_args", None):  # lm-eval's spelling: --model hf --model_args pretrained=PATH
        pairs = dict(kv.split("=", 1) for kv in args.model_args.split(",") if "=" in kv)
        if "pretrained" not in pairs or set(pairs) - {"pretrained"}:
            print(
                f"error: --model_args {args.model_args!r}: give pretrained=PATH only (other lm-eval model arguments "
                "are not taken)",
                file=sys.stderr,
            )
            return 2
        args.model = pairs["pretrained"]
    if not getattr(args, "model", None):
        print(
            "error: --model is required (a model directory, hub id, run directory or 'smollm2-135m-instruct')",
            file=sys.stderr,
        )
        return 2
    try:
        selection = select_tasks(args.tasks, getattr(args, "include_path", None) or ())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tasks = selection.registered
    if selection.lm_eval:
        print(f"lm-eval tasks (its own data, prompts and metrics): {', '.join(selection.lm_eval)}", file=sys.stderr)

    try:
        _report_sandbox(tasks)
    except SandboxUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    output_dir = Path(args.output_dir) if args.output_dir else _default_output(args.model)
    with hold_directory(output_dir, "evaluation"):
        return _evaluate_into(args, selection, tasks, output_dir)


def _evaluate_into(args: argparse.Namespace, selection, tasks, output_dir: Path) -> int:
    """The rest of ``unisd eval``, with ``output_dir`` held."""
    from unisd.evaluation.loading import load_for_eval, resolve_model_source
    from unisd.evaluation.runner import evaluate_model
    from unisd.models.errors import ModelLoadError

    earlier = earlier_results(output_dir)
    if earlier and not getattr(args, "overwrite", False):
        print(
            f"error: {output_dir} already holds the results of an evaluation ({', '.join(p.name for p in earlier)}); "
            "use --overwrite to replace them (they are moved to previous-<time>/) or another --output-dir",
            file=sys.stderr,
        )
        return 2
    try:
        source = resolve_model_source(args.model)
        model, tokenizer = load_for_eval(source)
    except (ValueError, ModelLoadError, OSError) as exc:
        print(f"error: cannot load model {args.model!r}: {exc}", file=sys.stderr)
        return 2
    if earlier:
        move_aside(output_dir, earlier)  # only once the model loaded: a bad model moves nothing
    max_gen = getattr(args, "max_gen_toks", None) or os.environ.get("UNISD_EVAL_MAX_GEN_TOKS")
    try:
        report = evaluate_model(
            model,
            tokenizer,
            selection,
            limit=args.limit,
            data_dir=args.data_dir,
            output_dir=output_dir,
            batch_size=args.batch_size,
            seed=args.seed,
            max_gen_toks=int(max_gen) if max_gen else None,
            log_samples=bool(getattr(args, "log_samples", False)),
            model_name=source.describe(),
            mcqa_rule=getattr(args, "mcqa_rule", "fixed"),
            apply_chat_template=getattr(args, "apply_chat_template", None),
            num_fewshot=getattr(args, "num_fewshot", None),
            gen_kwargs=getattr(args, "gen_kwargs", None),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print((output_dir / "results.md").read_text(encoding="utf-8"))
    print(f"wrote {output_dir / 'results.json'} and {output_dir / 'results.md'}")
    if getattr(args, "retention_base", None):
        _retention(args, model, tokenizer, tasks, output_dir)
    if not report["summary"]:
        print("error: no task could be evaluated (see 'data unavailable' above)", file=sys.stderr)
        return 2
    return 0


def _retention(args: argparse.Namespace, model, tokenizer, tasks, output_dir: Path) -> None:
    """Retention and fit metrics against ``--retention-base``, written to retention.json."""
    import json

    from unisd.evaluation.loading import load_for_eval, resolve_model_source
    from unisd.evaluation.retention import retention_for_tasks

    base, _ = load_for_eval(resolve_model_source(args.retention_base))
    report = retention_for_tasks(
        model,
        base,
        tokenizer,
        tasks,
        data_dir=args.data_dir,
        limit=args.retention_limit,
        max_new_tokens=args.retention_max_new_tokens,
    )
    path = output_dir / "retention.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {path}")
