"""From a recipe (a name or file, overrides and shortcuts) to a finished run directory.

Run directory layout::

    recipe.yaml          the resolved recipe (every default explicit)
    metrics.jsonl        one line per optimizer step
    tensorboard/         TensorBoard scalars
    checkpoints/step-N/  resumable checkpoints (atomic, checksummed)
    final/adapter/       the LoRA adapter (LoRA runs)
    final/merged/        a merged model for AutoModelForCausalLM.from_pretrained
    summary.json         first/last losses and, when configured, held-out accuracy before/after
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import nullcontext
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from unisd.errors import UserError
from unisd.engine.trackers import check_trackers
from unisd.files import free_name, hold_directory
from unisd.recipe import dump_recipe, load_recipe

log = logging.getLogger("unisd.train")


def default_recipe() -> str:
    """The recipe a plugin registered with ``default=True`` (what ``unisd train`` runs without ``--recipe``)."""
    from unisd.plugins import get_host

    name = get_host().registries.recipes.default
    if name is None:
        raise UserError("no plugin registers a default recipe: name one with --recipe")
    return name


def build_recipe(
    recipe: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    model: str | None = None,
    max_steps: int | None = None,
    seed: int | None = None,
    on_bad_record: str | None = None,
    data: str | None = None,
):
    """A validated recipe: ``recipe`` (a registered name or a file; the default recipe when None) with
    ``KEY=VALUE`` overrides, then the command line's shortcuts (``--model``, ``--max-steps``,
    ``--seed``, ``--on-bad-record``, ``--data``), which win over the overrides."""
    overrides = list(overrides)
    if model:
        overrides.append(f"model.name_or_path={model}")
    if max_steps is not None:  # 0 is refused by validation, not read as "no limit"
        overrides.append(f"training.max_steps={max_steps}")
    if seed is not None:
        overrides.append(f"training.seed={seed}")
    if on_bad_record:
        overrides.append(f"data.on_bad_record={on_bad_record}")
    resolved = load_recipe(str(recipe) if recipe else default_recipe(), overrides)
    return _with_data(resolved, data) if data else resolved


def _with_data(recipe, spec: str):
    """``--data NAME``, ``--data NAME:PATH`` or ``--data records.jsonl``."""
    from unisd.recipe import validate

    data = recipe.model_dump(mode="json")
    if Path(spec).is_dir():
        raise UserError(
            f"--data {spec} is a directory; give a records file (JSON Lines), a dataset name, or "
            f"NAME:PATH for a dataset read from a directory (e.g. --data gsm8k:{spec})"
        )
    if (spec.endswith(".jsonl") and ":" not in spec.split("/")[0]) or Path(spec).is_file():
        ds = {"type": "jsonl", "path": spec}
    else:
        name, _, path = spec.partition(":")
        ds = {"type": name} if name != recipe.data.dataset.type else recipe.data.dataset.model_dump(mode="json")
        if path:
            ds["path"] = path
    data["data"]["dataset"] = ds
    return validate(data, f"{recipe.name} with --data {spec}")


class OutputDirError(UserError):
    """The output directory holds another run."""


def stored_recipe_changes(
    run_dir: Path, recipe_text: str, *, ignore: tuple[str, ...] = ()
) -> list[tuple[str, Any, Any]]:
    """``(field, stored value, given value)`` where ``run_dir``'s ``recipe.yaml`` differs from
    ``recipe_text`` (none when there is no recipe.yaml); ``ignore``: field names or prefixes
    (``"logging."``) left out of the comparison."""
    from unisd.recipe.loading import flat_fields, safe_yaml

    stored = Path(run_dir) / "recipe.yaml"
    if not stored.is_file():
        return []
    old = stored.read_text(encoding="utf-8")
    if old == recipe_text:
        return []
    a, b = (flat_fields(safe_yaml(t, str(stored)) or {}) for t in (old, recipe_text))
    return [
        (k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k) and not k.startswith(ignore)
    ]


def stored_recipe_differs(run_dir: Path, recipe_text: str, *, ignore: tuple[str, ...] = ()) -> bool:
    """Whether ``run_dir`` holds a ``recipe.yaml`` other than ``recipe_text`` (a run of other settings)."""
    return bool(stored_recipe_changes(run_dir, recipe_text, ignore=ignore))


def prepare_output_dir(
    out: Path, recipe_text: str, *, resume: str | None, overwrite: bool, allow_recipe_change: bool = False
):
    """Refuse to mix two runs in one directory unless resuming the same recipe or told to.

    A directory "holds a run" once it has metrics or checkpoints; a recipe.yaml alone (a run that
    failed during setup) is simply replaced. ``overwrite`` never deletes: the old run is renamed to
    ``<dir>.replaced-<time>`` (one atomic rename). Returns ``undo()``, which puts the old run back
    (called when the new run fails during set-up, so a bad record file or model loses nothing).
    """
    if overwrite and resume:
        raise OutputDirError(
            "--overwrite and --resume contradict each other: --resume continues the run in the output "
            "directory, --overwrite replaces it; give one"
        )
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"--output-dir {out} is a file, not a directory")
    existing = out / "recipe.yaml"
    started = (out / "metrics.jsonl").exists() or (out / "checkpoints").exists()
    if started and not overwrite:
        if not resume:
            raise OutputDirError(
                f"{out} already holds a run; use --resume auto to continue it, --overwrite to "
                "replace it, or another --output-dir"
            )
        from unisd.engine.trainer import RESUME_FREE

        # grad_accum may change with the number of processes (the checkpoint checks that the micro-batches
        # per step over all processes stay the same), and what does not change the state may change
        changes = stored_recipe_changes(out, recipe_text, ignore=("training.grad_accum", *RESUME_FREE))
        if changes and not allow_recipe_change:
            shown = "; ".join(f"{k}: {a!r} → {b!r}" for k, a, b in changes[:8]) + (" …" if len(changes) > 8 else "")
            raise OutputDirError(
                f"--resume: the recipe differs from the one the run in {out} started with ({shown}; "
                f"see {existing}); resume with the same recipe and overrides, or pass "
                "--allow-recipe-change to continue it under the new one"
            )
    aside, created = None, not out.exists()
    if overwrite and out.exists() and any(out.iterdir()):
        aside = free_name(out, ".replaced")
        out.rename(aside)
        log.info("--overwrite: the previous run in %s is kept as %s", out, aside)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".unisd-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        if aside is not None:
            aside.rename(out)
        raise OutputDirError(f"--output-dir {out} cannot be written: {exc.strerror or exc}") from None
    previous_recipe = existing.read_text(encoding="utf-8") if existing.is_file() else None
    existing.write_text(recipe_text, encoding="utf-8")

    def undo() -> None:
        if aside is not None:
            import shutil

            shutil.rmtree(out, ignore_errors=True)
            aside.rename(out)
            log.info("set-up failed: the previous run is back in %s", out)
        elif not started:
            if previous_recipe is None:
                existing.unlink(missing_ok=True)
            else:
                existing.write_text(previous_recipe, encoding="utf-8")
            if created and out.is_dir() and not any(out.iterdir()):
                out.rmdir()  # leave no empty directory behind a run that never started

    return undo


def check_resume_path(resume: str | None) -> None:
    """An explicit ``--resume PATH`` must be a complete checkpoint; say what exists instead."""
    if not resume or resume == "auto":
        return
    from unisd.engine.checkpoint import CheckpointError, list_checkpoints, verify

    path = Path(resume)
    if not path.is_dir():
        near = [p.name for p in list_checkpoints(path.parent)] if path.parent.is_dir() else []
        hint = f"; checkpoints in {path.parent}: {', '.join(near[-5:])}" if near else ""
        raise CheckpointError(f"--resume {resume}: no such checkpoint directory{hint}")
    verify(path)


def train(
    recipe,
    output_dir: Path,
    *,
    resume: str | None = None,
    overwrite: bool = False,
    model=None,
    tokenizer=None,
    heldout_before: dict[str, Any] | None = None,
    allow_recipe_change: bool = False,
) -> dict[str, Any]:
    """Train ``recipe`` into ``output_dir``; returns the summary (also written to summary.json).

    ``heldout_before``: the base model's held-out result on the same records and budget, computed once
    elsewhere (``unisd replicate`` shares it between the runs of a task) instead of here.
    ``allow_recipe_change``: resume a checkpoint written under another recipe (else refused, naming
    the fields that differ).
    """
    from unisd.engine.trainer import Trainer

    output_dir = Path(output_dir)
    if recipe.evaluation.tasks:  # a misspelt task fails now, before the directory is touched, not after training
        from unisd.evaluation.tasks import check_recipe_tasks

        check_recipe_tasks(recipe)
    processes = _processes()  # under torchrun: the main process alone prepares (and holds) the directory
    with hold_directory(output_dir) if processes.is_main_process else nullcontext():
        undo = _nothing
        if processes.is_main_process:
            check_resume_path(resume)
            check_trackers(recipe.logging.report_to)  # before the directory is touched
            undo = prepare_output_dir(
                output_dir,
                dump_recipe(recipe),
                resume=resume,
                overwrite=overwrite,
                allow_recipe_change=allow_recipe_change,
            )
        processes.wait_for_everyone()
        trainer = Trainer(
            recipe, output_dir, resume=resume, model=model, tokenizer=tokenizer, allow_recipe_change=allow_recipe_change
        )
        try:
            try:
                trainer.setup()  # data, model, components: everything is validated before a run is replaced for good
            except BaseException:
                undo()
                raise
            if heldout_before is not None and not (output_dir / "heldout-before.json").exists():
                (output_dir / "heldout-before.json").write_text(json.dumps(heldout_before, indent=2))
            return _train(trainer, recipe, output_dir)
        finally:
            trainer.close()


def _nothing() -> None:
    pass


def _processes():
    """accelerate's process state, set up as the trainer's ``Accelerator`` will (the launcher's
    environment, ``ACCELERATE_USE_CPU`` included)."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def _train(trainer, recipe, output_dir: Path) -> dict[str, Any]:
    from unisd.runs.export import save_final, write_model_cards

    check = HeldoutCheck(trainer, output_dir)
    before = check("before") if recipe.evaluation.heldout else None
    probe = (lambda: check(None)["accuracy"]) if before is not None and recipe.evaluation.heldout_every else None
    t0 = time.time()
    result = trainer.train(heldout_probe=probe)
    summary: dict[str, Any] = {
        "recipe": recipe.name,
        "steps": result.get("step"),
        "seconds": round(time.time() - t0, 1),
        "records": len(trainer.run.records),
        "records_loaded": trainer.records_loaded,
        "dropped_long_prompts": trainer.dropped_long_prompts,
        "rejected_records": _count_lines(output_dir / "rejects.jsonl"),
    }
    if "stopped_by_signal" in result:
        summary["stopped_by_signal"] = result["stopped_by_signal"]
        return summary
    trainer.accelerator.wait_for_everyone()
    student = trainer.gathered_student()  # every process: under FSDP2 the weights are gathered
    if trainer.accelerator.is_main_process:
        from unisd.engine.metrics import read_metrics

        rows = read_metrics(output_dir / "metrics.jsonl") if (output_dir / "metrics.jsonl").exists() else []
        if rows:
            summary["first"] = {k: v for k, v in rows[0].items() if k.startswith("loss/")}
            summary["last"] = {k: v for k, v in rows[-1].items() if k.startswith("loss/")}
        from unisd.runs.activity import run_activity, warnings

        activity = run_activity(recipe, rows, trainer.host.registries)
        if activity:
            summary["mechanisms"] = activity
            for line in warnings(activity):
                log.warning(line)
        final = save_final(student, trainer.run.tokenizer, output_dir / "final", merged=recipe.checkpoint.save_merged)
        summary["model"] = {k: str(v) for k, v in final.paths.items()}
        if before is not None:
            after = check("after", model=final.model)
            summary["heldout"] = {
                "n": after["n"],
                "accuracy_before": before["accuracy"],
                "accuracy_after": after["accuracy"],
                "split": recipe.evaluation.heldout_split,
            }
        if recipe.evaluation.tasks:
            summary["evaluation"] = _evaluate(trainer, final.model, output_dir)
        write_model_cards(output_dir / "final", recipe, summary)
        (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


class HeldoutCheck:
    """A run's held-out accuracy: its records loaded once, each named result cached in
    heldout-<when>.json (so a resumed run keeps its "before"); ``when=None``: during training, not
    cached."""

    def __init__(self, trainer, output_dir: Path) -> None:
        self.trainer, self.output_dir = trainer, output_dir
        self._records: tuple[Any, list[dict[str, Any]]] | None = None

    def __call__(self, when: str | None, model=None) -> dict[str, Any]:
        from unisd.runs.heldout import heldout_records, recipe_heldout_accuracy
        from unisd.models.wrapping import unwrap

        trainer, recipe = self.trainer, self.trainer.recipe
        path = self.output_dir / f"heldout-{when}.json"
        if when is not None and path.exists():
            return json.loads(path.read_text())
        if self._records is None:
            self._records = heldout_records(recipe, trainer.host.registries)
        adapter, records = self._records
        if when is not None:
            log.info("held-out check (%s training): %d %s records", when, len(records), recipe.evaluation.heldout_split)
        result = recipe_heldout_accuracy(
            model if model is not None else unwrap(trainer.ddp_model),
            trainer.run.tokenizer,
            adapter,
            records,
            recipe,
            device=trainer.accelerator.device,
            when=when if trainer.accelerator.is_main_process else None,
        )
        if when is not None and trainer.accelerator.is_main_process:
            path.write_text(json.dumps(result, indent=2))
        return result


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()) if path.is_file() else 0


def _evaluate(trainer, model, output_dir: Path) -> dict[str, Any]:
    """lm-eval tasks of ``evaluation.tasks`` on the merged ``model``, in process (no reload)."""
    from unisd.evaluation.runner import evaluate_model

    e = trainer.recipe.evaluation
    report = evaluate_model(
        model,
        trainer.run.tokenizer,
        e.tasks,
        limit=e.limit,
        data_dir=e.data_dir,
        output_dir=output_dir / "eval",
        batch_size=e.batch_size,
        seed=trainer.recipe.training.seed,
        max_gen_toks=e.max_gen_toks,
        mcqa_rule=e.mcqa_rule,
        model_name=str(output_dir),
    )
    return report.get("summary", {})


def default_output_dir(recipe) -> Path:
    return Path("runs") / f"{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}"
