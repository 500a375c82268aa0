"""``unisd replicate EXPERIMENT``: the paper's comparison in miniature, from one experiment file.

An experiment trains every listed method (shipped recipe names or recipe files; ``base`` means no
training) on every task with the same seeds and budget, scores each on its task's held-out split
with that task's own answer check, and writes to the experiment directory:

``table.md``      rows = methods, columns = tasks: mean ± 95% CI over seeds, paired differences vs
                  the base model and vs the best baseline (t-intervals over seeds), and the
                  retention statistics against SFT
``results.json``  every number, per run
``accuracy_vs_step.png``, ``jsd_to_base.png``  held-out accuracy over training; per-sample JSD to base

Runs land in ``<dir>/<task>/<method>/s<seed>/``; a run with a ``summary.json`` is reused, one
without is resumed from its last checkpoint, so a killed replication continues where it stopped.
Every recipe is built and validated before anything trains.
"""

from __future__ import annotations

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from collections.abc import Sequence


from unisd.runs.forgetting import ProbeSpec, probes_scored, score_probes
from unisd.errors import UserError
from unisd.files import hold_directory
from unisd.runs.experiment import Experiment, load_experiment, plan
from unisd.runs.replication_plots import plot_results
from unisd.runs.replication_table import collect, table_markdown

log = logging.getLogger("unisd.replicate")

__all__ = ["Experiment", "collect", "load_experiment", "plan", "plot_results", "run_replication", "table_markdown"]


def run_replication(
    exp: Experiment, out: Path, *, progress: bool = True, workers: int = 1, whole: Experiment | None = None
) -> dict[str, Any]:
    """Train what is missing, then compute and write the table, plots and JSON.

    ``whole`` is the experiment ``exp`` was cut from (``--tasks``): the table, plots and JSON then also
    cover every other task of it whose runs have all finished in ``out``, so columns run one at a
    time add up instead of replacing each other.

    The base model's held-out answers are computed once per task (``<task>/base/heldout.json``) and
    shared by that task's runs as their "before". ``workers`` > 1 trains that many runs at once in
    separate processes, splitting the CPU threads between them (on a small CPU, two single-thread
    runs get through more work than one two-thread run).
    """
    runs = plan(exp)
    with hold_directory(out, "replication"):
        check_same_runs(runs, out)
        _train_missing(exp, runs, out, progress=progress, workers=workers)
        return _report(exp if whole is None else with_finished_tasks(whole, exp, out), out)


def run_finished(r: dict[str, Any], out: Path, forgetting: Sequence[ProbeSpec]) -> bool:
    """Whether the planned run ``r`` left everything the table reads (summary, retention, probes)."""
    run_dir = out / r["dir"]
    return all((run_dir / f).is_file() for f in ("summary.json", "retention.json")) and probes_scored(
        run_dir / "forgetting.json", forgetting, model_name=r["recipe"].model.name_or_path
    )


def with_finished_tasks(whole: Experiment, ran: Experiment, out: Path) -> Experiment:
    """``whole`` restricted to the tasks of ``ran`` and to those of its other tasks whose runs have
    all finished in ``out`` (in the experiment's task order)."""
    names = {t.name for t in ran.tasks}
    others = [t.name for t in whole.tasks if t.name not in names]
    runs = plan(whole.only_tasks(others)) if others else []
    done = {name for name in others if all(run_finished(r, out, whole.forgetting) for r in runs if r["task"] == name)}
    return whole.only_tasks([t.name for t in whole.tasks if t.name in names | done])


def _report(exp: Experiment, out: Path) -> dict[str, Any]:
    results = collect(exp, out)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "table.md").write_text(table_markdown(exp, results))
    plot_results(exp, results, out)
    return results


def _train_missing(exp: Experiment, runs: list[dict[str, Any]], out: Path, *, progress: bool, workers: int) -> None:
    from tqdm.auto import tqdm

    out.mkdir(parents=True, exist_ok=True)
    bases = {
        task.name: _base_heldout(next(r["recipe"] for r in runs if r["task"] == task.name), out / task.name / "base")
        for task in exp.tasks
    }
    model = runs[0]["recipe"].model.name_or_path
    if exp.forgetting:
        _base_forgetting(model, exp.forgetting, out)

    todo = [r for r in runs if not run_finished(r, out, exp.forgetting)]
    bar = tqdm(
        total=len(runs),
        initial=len(runs) - len(todo),
        desc=f"replicate {exp.name}",
        unit="run",
        disable=not progress,
        position=0,
    )
    jobs = [(r["build"], str(out / r["dir"]), bases[r["task"]], exp.retention.records, exp.forgetting) for r in todo]
    if workers <= 1 or len(jobs) <= 1:
        for r, job in zip(todo, jobs, strict=True):
            bar.set_postfix_str(f"{r['task']}/{r['method']}/s{r['seed']}")
            _run_one(*job)
            bar.update(1)
    else:
        _run_parallel(todo, jobs, workers, bar)
    bar.close()


def check_same_runs(runs: list[dict[str, Any]], out: Path) -> None:
    """Refuse, before anything trains, an experiment directory whose runs used other recipes (another
    ``--set``, ``--quick`` into a full run's directory …): their results would be reused as this
    experiment's, or their checkpoints resumed under other settings."""
    from unisd.runs.launch import stored_recipe_differs
    from unisd.recipe import dump_recipe

    differ = [str(r["dir"]) for r in runs if stored_recipe_differs(out / r["dir"], dump_recipe(r["recipe"]))]
    if differ:
        more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
        raise UserError(
            f"{out} holds runs of other settings than this experiment's ({', '.join(differ[:3])}{more}: their "
            "recipe.yaml differs); replicate into another --output-dir, or move that one away"
        )


def _base_forgetting(model: str, probes: list[ProbeSpec], out: Path) -> dict[str, Any]:
    """The base model's probe results (cached in ``out/base-forgetting.json``), the "before" of forgetting."""
    from unisd.evaluation.loading import load_for_eval

    return score_probes(lambda: load_for_eval(model), probes, out / "base-forgetting.json", model_name=model)


def _base_heldout(recipe, folder: Path) -> dict[str, Any]:
    """The base model's greedy held-out result for a task (cached in ``folder/heldout.json``)."""
    from unisd.runs.heldout import heldout_max_new_tokens, heldout_records, recipe_heldout_accuracy
    from unisd.evaluation.loading import load_for_eval
    from unisd.plugins import get_host

    path = folder / "heldout.json"
    adapter, records = heldout_records(recipe, get_host().registries)
    key = {
        "model": recipe.model.name_or_path,
        "ids": [r["id"] for r in records],
        "max_new_tokens": heldout_max_new_tokens(recipe),
        "mcqa_rule": recipe.evaluation.mcqa_rule,
    }
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached["result"]
    log.info("base model: held-out check of %s (%d records)", folder.parent.name, len(records))
    model, tok = load_for_eval(recipe.model.name_or_path)
    result = recipe_heldout_accuracy(model, tok, adapter, records, recipe, when="of the base model")
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "result": result}, indent=2))
    return result


def _run_one(
    build,
    run_dir: str | Path,
    base: dict[str, Any],
    retention_records: int,
    probes: Sequence[ProbeSpec] = (),
    cache: dict[str, Any] | None = None,
) -> None:
    """Train (or resume, or reuse) one run, then its retention statistics and forgetting probes."""
    from unisd.runs.launch import train
    from unisd.recipe import load_recipe

    method, overrides, data = build
    recipe = load_recipe(method, overrides, data=data)
    run_dir = Path(run_dir)
    if not (run_dir / "summary.json").is_file():
        resume = "auto" if (run_dir / "checkpoints").exists() else None
        train(recipe, run_dir, resume=resume, overwrite=resume is None and run_dir.exists(), heldout_before=base)
        for stale in ("retention.json", "forgetting.json"):  # scored on a model this training replaced
            (run_dir / stale).unlink(missing_ok=True)
    if not (run_dir / "retention.json").is_file():
        _retention(run_dir, recipe, retention_records, _MODELS if cache is None else cache)
    if probes and not probes_scored(run_dir / "forgetting.json", probes, model_name=recipe.model.name_or_path):
        from unisd.evaluation.loading import load_for_eval

        score_probes(
            lambda: load_for_eval(str(run_dir)),
            list(probes),
            run_dir / "forgetting.json",
            model_name=recipe.model.name_or_path,
        )


_MODELS: dict[str, Any] = {}  # the base model for retention scoring, kept per process


def _worker_init(threads: int, slots) -> None:
    import os

    import torch

    torch.set_num_threads(threads)
    with slots.get_lock():
        slots.value += 1
        os.environ["TQDM_POSITION"] = str(slots.value)  # each worker's run bar on its own line


def _run_parallel(todo: list[dict[str, Any]], jobs: list[tuple], workers: int, bar) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    import torch

    from unisd.environ import patched_environ

    threads = max(1, torch.get_num_threads() // workers)
    ctx = mp.get_context("spawn")
    # read by the children when they import torch
    with (
        patched_environ({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}),
        ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_worker_init, initargs=(threads, ctx.Value("i", 0))
        ) as pool,
    ):
        futures = {pool.submit(_run_one, *job): r for r, job in zip(todo, jobs, strict=True)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for f in done:
                r = futures[f]
                if f.exception() is not None:
                    for p in pending:
                        p.cancel()
                    raise UserError(
                        f"replicate: run {r['dir']} failed: {f.exception()} (finished runs are kept; "
                        "run the same command again to resume)"
                    ) from f.exception()
                bar.set_postfix_str(f"done {r['task']}/{r['method']}/s{r['seed']}")
                bar.update(1)


def _retention(run_dir: Path, recipe, records: int, cache: dict[str, Any]) -> None:
    """Per-sample JSD to the base model and base log-prob of the run's held-out answers."""
    from unisd.evaluation.loading import load_for_eval
    from unisd.evaluation.retention import score_completions

    answers = json.loads((run_dir / "heldout-after.json").read_text())["answers"][:records]
    prompts = _heldout_prompts(recipe, [a["id"] for a in answers])
    key = recipe.model.name_or_path
    if key not in cache:
        cache.clear()
        cache[key] = load_for_eval(key)
    base, tok = cache[key]
    trained, _ = load_for_eval(str(run_dir))
    scored = score_completions(base, tok, prompts, [a["answer"] for a in answers], other=trained, batch_size=8)
    (run_dir / "retention.json").write_text(
        json.dumps(
            {"ids": [a["id"] for a in answers], "base_logp_of_model_completion": scored.mean_logp, "jsd": scored.jsd},
            indent=2,
        )
    )


def _heldout_prompts(recipe, ids: list[str]) -> list[str]:
    from unisd.runs.heldout import heldout_records
    from unisd.plugins import get_host

    _, records = heldout_records(recipe, get_host().registries)
    by_id = {r["id"]: r["prompt"] for r in records}
    return [by_id[i] for i in ids]
