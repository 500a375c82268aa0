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

import itertools
import json
import logging
import math
from pathlib import Path
from typing import Any
from collections.abc import Sequence

from pydantic import Field, field_validator, model_validator

from unisd.components.base import StrictModel
from unisd.runs.forgetting import ProbeSpec, paired_change, score_probes
from unisd.runs.stats import mean_ci
from unisd.errors import UserError
from unisd.files import hold_directory

log = logging.getLogger("unisd.replicate")

BASE = "base"


class ExperimentTask(StrictModel):
    """One task (column of the table)."""

    name: str = Field(description="column name, and the folder of its runs")
    data: dict[str, Any] = Field(description="the dataset adapter config (data.dataset of every recipe)")
    heldout: int = Field(128, ge=1, description="held-out records scored per run")
    heldout_split: str = Field("test", description="the split they come from (never the one settings were chosen on)")
    set: list[str] = Field(default_factory=list, description="recipe overrides for this task's runs")
    methods: list[str] | None = Field(
        None,
        description="the experiment's methods run on this task (names or grid "
        "labels; a gridded name keeps all its variants); default all",
    )

    @field_validator("name")
    @classmethod
    def _plain(cls, v: str) -> str:
        if not v or "/" in v or v.startswith("."):
            raise ValueError("must be a plain folder name")
        return v


class RetentionSpec(StrictModel):
    """The paper's retention statistics against a reference method (spec §5.3)."""

    reference: str | None = Field(
        None,
        description="the method every other is compared with, seed by seed (none: the "
        "statistics are kept per run, not compared)",
    )
    records: int = Field(64, ge=1, description="held-out answers per run used (the first ones)")


class QuickSpec(StrictModel):
    """What ``--quick`` changes (a CI-sized run of the same pipeline)."""

    seeds: list[int] | None = None
    methods: list[str] | None = None
    tasks: list[str] | None = None
    heldout: int | None = Field(None, ge=1)
    retention_records: int | None = Field(None, ge=1)
    set: list[str] = Field(default_factory=list)


class Experiment(StrictModel):
    """An experiment file."""

    name: str
    description: str = ""
    seeds: list[int] = Field(min_length=1)
    methods: list[str] = Field(min_length=1, description="recipe names or files, or 'base' (no training)")
    baselines: list[str] = Field(
        default_factory=list,
        description="the methods 'best baseline' is chosen from (per "
        "task, by mean); none: no comparison with a best baseline",
    )
    tasks: list[ExperimentTask] = Field(min_length=1)
    set: list[str] = Field(default_factory=list, description="recipe overrides for every run (the shared budget)")
    retention: RetentionSpec = Field(default_factory=RetentionSpec)
    forgetting: list[ProbeSpec] = Field(
        default_factory=list,
        description="capabilities no task trains: every run and "
        "the base model are scored on them item by item (forgetting.json)",
    )
    quick: QuickSpec = Field(default_factory=QuickSpec)
    grid: dict[str, dict[str, list[Any]]] = Field(
        default_factory=dict,
        description="method → {recipe field: [values]}: the method is trained once per combination "
        "of values, each its own row labelled method[field=value,…] (to choose a setting on a validation split)",
    )

    @field_validator("methods", "seeds")
    @classmethod
    def _unique(cls, v: list) -> list:
        dup = sorted({str(x) for x in v if v.count(x) > 1})
        if dup:
            raise ValueError(f"listed more than once: {', '.join(dup)}")
        return v

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, v: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, list[Any]]]:
        for method, axes in v.items():
            if method == BASE:
                raise ValueError("'base' trains nothing: it has no settings to grid")
            empty = [k for k, values in axes.items() if not values]
            if not axes or empty:
                raise ValueError(
                    f"{method}: every field needs at least one value ({', '.join(empty) or 'no field given'})"
                )
        return v

    @model_validator(mode="after")
    def _grid_methods_listed(self) -> Experiment:
        unlisted = [m for m in self.grid if m not in self.methods]
        if unlisted:
            raise ValueError(f"grid: {', '.join(unlisted)} not in methods (a grid varies a listed method)")
        return self

    def variants(self) -> list[tuple[str, str, list[str]]]:
        """``(label, method, overrides)`` per row: a method with a grid gives one per combination of values."""
        out: list[tuple[str, str, list[str]]] = []
        for method in self.methods:
            axes = self.grid.get(method)
            if not axes:
                out.append((_name(method), method, []))
                continue
            for combo in itertools.product(*axes.values()):
                values = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in zip(axes, combo, strict=True)]
                label = f"{_name(method)}[" + ",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in values) + "]"
                out.append((label, method, [f"{k}={v}" for k, v in values]))
        return out

    @property
    def labels(self) -> list[str]:
        """Every row of the table: the methods, a gridded one replaced by its variants."""
        return [label for label, _, _ in self.variants()]

    def task_variants(self, task: ExperimentTask) -> list[tuple[str, str, list[str]]]:
        """The rows of :meth:`variants` that ``task`` runs (its ``methods``, else all)."""
        if task.methods is None:
            return self.variants()
        return [v for v in self.variants() if v[0] in task.methods or _name(v[1]) in task.methods]

    @model_validator(mode="after")
    def _task_methods_listed(self) -> Experiment:
        known = {n for label, method, _ in self.variants() for n in (label, _name(method))}
        for task in self.tasks:
            unknown = [m for m in task.methods or () if m not in known]
            if unknown:
                raise ValueError(
                    f"task {task.name!r}: methods {', '.join(unknown)} are not among the experiment's methods"
                )
        return self

    def only_tasks(self, names: list[str]) -> Experiment:
        unknown = [n for n in names if n not in {t.name for t in self.tasks}]
        if unknown:
            raise UserError(
                f"experiment {self.name!r} has no task {', '.join(map(repr, unknown))} "
                f"(its tasks: {', '.join(t.name for t in self.tasks)})"
            )
        return self.model_copy(update={"tasks": [t for t in self.tasks if t.name in names]})

    def quickened(self) -> Experiment:
        q = self.quick
        tasks = [t for t in self.tasks if q.tasks is None or t.name in q.tasks]
        if q.heldout:
            tasks = [t.model_copy(update={"heldout": q.heldout}) for t in tasks]
        retention = (
            self.retention.model_copy(update={"records": q.retention_records})
            if q.retention_records
            else self.retention
        )
        return self.model_copy(
            update={
                "seeds": q.seeds or self.seeds,
                "methods": q.methods or self.methods,
                "tasks": tasks,
                "set": [*self.set, *q.set],
                "retention": retention,
            }
        )


class ExperimentError(UserError, ValueError):
    """An experiment file that cannot be read or validated (every problem, with its line)."""


def resolve_experiment(name_or_path: str) -> Path:
    """A shipped experiment name or a file path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml", ".json") or p.exists():
        if not p.is_file():
            raise UserError(f"experiment file {p} not found")
        return p
    from unisd.plugins import get_registries

    experiments = get_registries().experiments
    if name_or_path not in experiments:
        raise UserError(f"{experiments.unknown_message(name_or_path)} (or give a .yaml path)")
    return Path(experiments.get(name_or_path))


def load_experiment(name_or_path: str, *, quick: bool = False) -> Experiment:
    """Read and validate an experiment file; problems name the field and the line."""
    from unisd.recipe.loading import Locator, RecipeError, read_document, validate

    path = resolve_experiment(name_or_path)
    try:
        data, located = read_document(path)
        exp = validate(_local_recipes(data, path.parent), str(path), Locator([located]), model=Experiment)
    except RecipeError as exc:
        raise ExperimentError(str(exc).replace("invalid recipe", "invalid experiment", 1)) from None
    return exp.quickened() if quick else exp


def plan(exp: Experiment) -> list[dict[str, Any]]:
    """Every training run (task, method, seed) with its validated recipe; raises before any training."""
    from unisd.recipe import RecipeError, load_recipe

    runs = []
    for task in exp.tasks:
        for label, method, variant in exp.task_variants(task):
            if method == BASE:
                continue
            for seed in exp.seeds:
                overrides = [
                    *exp.set,
                    *task.set,
                    *variant,
                    f"training.seed={seed}",
                    f"evaluation.heldout={task.heldout}",
                    f"evaluation.heldout_split={task.heldout_split}",
                ]
                try:
                    recipe = load_recipe(method, overrides, data={"dataset": task.data})
                except RecipeError as exc:
                    raise UserError(f"experiment: task {task.name!r}, method {label!r}: {exc}") from None
                runs.append(
                    {
                        "task": task.name,
                        "method": label,
                        "seed": seed,
                        "recipe": recipe,
                        "build": (method, overrides, {"dataset": task.data}),
                        "dir": Path(task.name) / _folder(label) / f"s{seed}",
                    }
                )
    if not runs:
        raise UserError(
            "experiment: no method to train (besides 'base'); the base score comes from the trained runs' 'before' check"
        )
    return runs


_RECIPE_FILE = (".yaml", ".yml", ".json")


def _name(method: str) -> str:
    """A method's name in the table: a recipe file's stem, else the recipe's name."""
    return Path(method).stem if method.endswith(_RECIPE_FILE) else method


def _folder(label: str) -> str:
    """A row's folder: its label, a grid variant's values kept (``unisd-ema[every=1]``)."""
    method, bracket, values = label.partition("[")
    return _name(method) + (bracket + values.replace("/", "_") if bracket else "")


def _local_recipes(data: Any, folder: Path) -> Any:
    """An experiment's relative recipe files (in ``methods``, ``baselines`` and ``grid``'s keys) as paths
    beside the experiment file, where one is there, so that a shipped experiment carries its recipes."""
    if not isinstance(data, dict):
        return data

    def here(m: Any) -> Any:
        if isinstance(m, str) and m.endswith(_RECIPE_FILE) and not Path(m).is_absolute() and (folder / m).is_file():
            return str((folder / m).resolve())
        return m

    out = dict(data)
    for key in ("methods", "baselines"):
        if isinstance(out.get(key), list):
            out[key] = [here(m) for m in out[key]]
    if isinstance(out.get("grid"), dict):
        out["grid"] = {here(m): axes for m, axes in out["grid"].items()}
    if isinstance(out.get("quick"), dict) and isinstance(out["quick"].get("methods"), list):
        out["quick"] = {**out["quick"], "methods": [here(m) for m in out["quick"]["methods"]]}
    return out


def run_replication(exp: Experiment, out: Path, *, progress: bool = True, workers: int = 1) -> dict[str, Any]:
    """Train what is missing, then compute and write the table, plots and JSON.

    The base model's held-out answers are computed once per task (``<task>/base/heldout.json``) and
    shared by that task's runs as their "before". ``workers`` > 1 trains that many runs at once in
    separate processes, splitting the CPU threads between them (on a small CPU, two single-thread
    runs get through more work than one two-thread run).
    """
    runs = plan(exp)
    with hold_directory(out, "replication"):
        check_same_runs(runs, out)
        return _replicate(exp, runs, out, progress=progress, workers=workers)


def _replicate(
    exp: Experiment, runs: list[dict[str, Any]], out: Path, *, progress: bool, workers: int
) -> dict[str, Any]:
    from tqdm.auto import tqdm

    out.mkdir(parents=True, exist_ok=True)
    bases = {
        task.name: _base_heldout(next(r["recipe"] for r in runs if r["task"] == task.name), out / task.name / "base")
        for task in exp.tasks
    }
    model = runs[0]["recipe"].model.name_or_path
    if exp.forgetting:
        _base_forgetting(model, exp.forgetting, out)
    outputs = ("summary.json", "retention.json", *(("forgetting.json",) if exp.forgetting else ()))
    todo = [r for r in runs if not all((out / r["dir"] / f).is_file() for f in outputs)]
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
    results = collect(exp, out)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "table.md").write_text(table_markdown(exp, results))
    plot_results(exp, results, out)
    return results


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
    if probes and not (run_dir / "forgetting.json").is_file():
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


def _pct_pairs(a: list[float], b: list[float], better) -> float:
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if not (math.isnan(x) or math.isnan(y))]
    return sum(better(x, y) for x, y in pairs) / len(pairs) if pairs else math.nan


def collect(exp: Experiment, out: Path) -> dict[str, Any]:
    """Every number of the table from the run directories."""
    from unisd.runs.activity import merge_runs
    from unisd.runs.inspection import heldout_curve, mechanism_report, step_seconds

    res: dict[str, Any] = {"experiment": exp.name, "seeds": exp.seeds, "tasks": {}}
    base_file = out / "base-forgetting.json"
    base_probes = json.loads(base_file.read_text()) if exp.forgetting and base_file.is_file() else {}
    if base_probes:
        res["forgetting_base"] = {p.name: base_probes[p.name]["accuracy"] for p in exp.forgetting}
    for task in exp.tasks:
        t: dict[str, Any] = {"methods": {}}
        before_any = None
        labels = [label for label, _, _ in exp.task_variants(task)]
        for method in labels:
            if method == BASE:
                continue
            per_seed = {}
            for seed in exp.seeds:
                run_dir = out / task.name / _folder(method) / f"s{seed}"
                summary = json.loads((run_dir / "summary.json").read_text())
                h = summary["heldout"]
                ret = json.loads((run_dir / "retention.json").read_text())
                per_seed[seed] = {
                    "before": h["accuracy_before"],
                    "after": h["accuracy_after"],
                    "n": h["n"],
                    "curve": heldout_curve(run_dir),
                    "jsd": ret["jsd"],
                    "base_logp": ret["base_logp_of_model_completion"],
                    "step_s": step_seconds(run_dir),
                    "activity": mechanism_report(run_dir),
                }  # recomputed: as today's code summarises
                before_any = h["accuracy_before"] if before_any is None else before_any
            t["methods"][method] = {
                "per_seed": per_seed,
                "activity": merge_runs([v["activity"] for v in per_seed.values()]),
            }
            if base_probes:
                runs = [
                    json.loads((out / task.name / _folder(method) / f"s{s}" / "forgetting.json").read_text())
                    for s in exp.seeds
                ]
                t["methods"][method]["forgetting"] = {
                    p.name: paired_change(base_probes[p.name], [r[p.name] for r in runs]) for p in exp.forgetting
                }
        t["base"] = before_any
        base_file = out / task.name / "base" / "heldout.json"
        if base_file.is_file():  # the fixed held-out items every run of the task is scored on
            t["heldout_ids"] = json.loads(base_file.read_text())["key"]["ids"]
        if BASE in labels:
            t["methods"][BASE] = {"per_seed": {s: {"before": before_any, "after": before_any} for s in exp.seeds}}
            t["methods"] = {m: t["methods"][m] for m in labels}  # the experiment's order: base where listed
        for m in t["methods"].values():
            after = [v["after"] for v in m["per_seed"].values()]
            m["mean"], m["ci"] = mean_ci(after)
            m["vs_base"] = dict(zip(("mean", "ci"), mean_ci([a - before_any for a in after]), strict=True))
            secs = [v["step_s"] for v in m["per_seed"].values() if not math.isnan(v.get("step_s", math.nan))]
            m["step_s"] = sum(secs) / len(secs) if secs else None
        # a gridded baseline competes with each of its variants
        present = [
            label
            for label, method, _ in exp.task_variants(task)
            if (method in exp.baselines or _name(method) in exp.baselines) and label in t["methods"]
        ]
        best = max(present, key=lambda b: t["methods"][b]["mean"]) if present else None
        t["best_baseline"] = best
        ref = exp.retention.reference if exp.retention.reference in t["methods"] else None
        for name, m in t["methods"].items():
            if best is not None:
                diffs = [m["per_seed"][s]["after"] - t["methods"][best]["per_seed"][s]["after"] for s in exp.seeds]
                m["vs_best_baseline"] = dict(zip(("mean", "ci"), mean_ci(diffs), strict=True))
            if ref is not None and name not in (ref, BASE):
                jl = [
                    _pct_pairs(m["per_seed"][s]["jsd"], t["methods"][ref]["per_seed"][s]["jsd"], lambda x, y: x < y)
                    for s in exp.seeds
                ]
                bl = [
                    _pct_pairs(
                        m["per_seed"][s]["base_logp"], t["methods"][ref]["per_seed"][s]["base_logp"], lambda x, y: x > y
                    )
                    for s in exp.seeds
                ]
                m["retention_vs_reference"] = {
                    "reference": ref,
                    "jsd_lower": mean_ci(jl)[0],
                    "base_logp_higher": mean_ci(bl)[0],
                }
        res["tasks"][task.name] = t
    return res


def _cell(mean: float | None, ci: float | None, signed: bool = False) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    v = f"{100 * mean:+.1f}" if signed else f"{100 * mean:.1f}"
    return v if ci is None or math.isnan(ci) else f"{v} ± {100 * ci:.1f}"


def _change_cell(c: dict[str, Any]) -> str:
    """``41.0 → 39.5: -1.5 ± 2.0 [-4.1, +1.0]`` for a :func:`paired_change`."""
    if not c.get("n"):
        return "–"
    lo, hi = c["bootstrap"]
    return (
        f"{100 * c['before']:.1f} → {100 * c['after']:.1f}: {_cell(c['change'], c['change_ci'], True)} "
        f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"
    )


def table_markdown(exp: Experiment, res: dict[str, Any]) -> str:
    """The paper-shaped table plus the paired-difference, retention and mechanism-activity tables."""
    from unisd.runs.activity import merged_cells

    tasks = list(res["tasks"])
    lines = [
        f"# {exp.name}",
        "",
        f"Seeds {exp.seeds}; accuracy (%) on each task's held-out split, mean ± 95% CI (Student t over seeds).",
        "",
        "| method | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    methods = list(dict.fromkeys(m for t in res["tasks"].values() for m in t["methods"]))
    for m in methods:
        cells = [
            _cell(res["tasks"][t]["methods"][m]["mean"], res["tasks"][t]["methods"][m]["ci"])
            if m in res["tasks"][t]["methods"]
            else "–"
            for t in tasks
        ]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Paired differences in points (same seed), mean ± 95% CI: vs the base model | vs the best baseline "
        "(" + ", ".join(f"{t}: {res['tasks'][t]['best_baseline']}" for t in tasks) + ").",
        "",
        "| method | " + " | ".join(f"{t} vs base | {t} vs best baseline" for t in tasks) + " |",
        "|---|" + "---|---|" * len(tasks),
    ]
    for m in methods:
        cells = []
        for t in tasks:
            e = res["tasks"][t]["methods"].get(m, {})
            vb, vbb = e.get("vs_base", {}), e.get("vs_best_baseline", {})
            cells += [_cell(vb.get("mean"), vb.get("ci"), True), _cell(vbb.get("mean"), vbb.get("ci"), True)]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    ref = exp.retention.reference
    lines += (
        []
        if ref is None
        else [
            "",
            f"Retention against `{ref}` (per sample, same seed, mean over seeds): share of held-out samples whose "
            f"JSD to the base model is lower than {ref}'s (paper: 70.3%) | share where the base model gives the "
            f"method's completion a higher log-probability than {ref}'s (paper: 60.6%).",
            "",
            "| method | " + " | ".join(f"{t} JSD lower | {t} base log-p higher" for t in tasks) + " |",
            "|---|" + "---|---|" * len(tasks),
        ]
    )
    for m in methods:
        cells = []
        for t in tasks:
            r = res["tasks"][t]["methods"].get(m, {}).get("retention_vs_reference")
            cells += ["–", "–"] if not r else [_cell(r["jsd_lower"], None), _cell(r["base_logp_higher"], None)]
        if any(c != "–" for c in cells):
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if res.get("forgetting_base"):
        probes = list(res["forgetting_base"])
        lines += [
            "",
            "Forgetting: accuracy (%) on capabilities no task trains, the base model → after training (mean over "
            "seeds), and the change in points ± 95% CI over seeds [paired bootstrap over items]; beside it the "
            "method's gain on the task it trained on.",
            "",
            "| task | method | gain on the task | " + " | ".join(probes) + " |",
            "|---|---|---|" + "---|" * len(probes),
        ]
        for t in tasks:
            for m in methods:
                e = res["tasks"][t]["methods"].get(m, {})
                if "forgetting" not in e:
                    continue
                gain = _cell(e["vs_base"]["mean"], e["vs_base"]["ci"], True)
                lines.append(
                    f"| {t} | {m} | {gain} | " + " | ".join(_change_cell(e["forgetting"][p]) for p in probes) + " |"
                )
    lines += [
        "",
        "Cost: seconds per optimizer step (median over a run's steps without diagnostics, mean over seeds; runs "
        "that shared the machine, side by side) and its ratio to the fastest method of the task.",
        "",
        "| method | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    for m in methods:
        cells = []
        for t in tasks:
            sec = res["tasks"][t]["methods"].get(m, {}).get("step_s")
            fastest = min(
                (v["step_s"] for v in res["tasks"][t]["methods"].values() if v.get("step_s") is not None), default=None
            )
            cells.append("–" if sec is None or math.isnan(sec) else f"{sec:.1f} s ({sec / fastest:.2f}×)")
        if any(c != "–" for c in cells):
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Mechanism activity: each component's activity metrics (mean over seeds of each run's mean over its logged "
        "steps), its term's share of the gradient norm, and in how many seeds it was active, weak or inert (with "
        "the reason). `mechanisms_<task>.png` shows them over steps.",
        "",
        "| task | method | component | metrics | grad share | status |",
        "|---|---|---|---|---|---|",
    ]
    for t in tasks:
        for m in methods:
            for a in res["tasks"][t]["methods"].get(m, {}).get("activity", []):
                lines.append(f"| {t} | {m} | {a['name']} ({a['type']}) | " + " | ".join(merged_cells(a)) + " |")
    return "\n".join(lines) + "\n"


def plot_results(exp: Experiment, res: dict[str, Any], out: Path) -> None:
    """``accuracy_vs_step.png`` (mean over seeds with its 95% t-interval as a band, every method its own
    colour and marker), ``jsd_to_base.png`` (per-sample distributions) and ``mechanisms_<task>.png``
    (each mechanism's activity metrics over steps, seeds averaged)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no plots (pip install matplotlib)")
        return
    from unisd.runs.activity import activity_keys, line_styles, mean_rows, plot_activity
    from unisd.engine.metrics import read_metrics

    tasks = list(res["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(7 * len(tasks), 4.5), squeeze=False)
    for ax, t in zip(axes[0], tasks, strict=False):
        methods = res["tasks"][t]["methods"]
        styles = line_styles(list(methods))
        for m, e in methods.items():
            curves = [v.get("curve") for v in e["per_seed"].values() if v.get("curve")]
            if not curves:
                continue
            steps = sorted({p["step"] for c in curves for p in c})
            stats = [mean_ci([p["accuracy"] for c in curves for p in c if p["step"] == s]) for s in steps]
            ys = [100 * mu for mu, _ in stats]
            ax.plot(steps, ys, label=m, linewidth=1.3, markersize=4, **styles[m])
            lo = [100 * (mu - (0 if math.isnan(ci) else ci)) for mu, ci in stats]
            hi = [100 * (mu + (0 if math.isnan(ci) else ci)) for mu, ci in stats]
            ax.fill_between(steps, lo, hi, color=styles[m]["color"], alpha=0.12, linewidth=0)
        ax.axhline(100 * (res["tasks"][t]["base"] or 0), color="grey", linestyle=":", label="base")
        ax.set_title(f"{t} (mean over seeds, band: 95% CI)")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("held-out accuracy (%)")
        ax.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_step.png", dpi=110)
    plt.close(fig)

    for t in tasks:
        activity_curves, keys = {}, []
        for m, e in res["tasks"][t]["methods"].items():
            histories = [
                read_metrics(f)
                for s in e["per_seed"]
                if (f := out / t / _folder(m) / f"s{s}" / "metrics.jsonl").is_file()
            ]
            if histories and e.get("activity"):
                activity_curves[m] = mean_rows(histories)
                keys += activity_keys(e["activity"])
        if activity_curves:
            plot_activity(
                activity_curves,
                list(dict.fromkeys(keys)),
                out / f"mechanisms_{t}.png",
                title=f"{t}: mechanism activity over steps (mean over seeds)",
            )

    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, t in zip(axes[0], tasks, strict=False):
        names, data = [], []
        for m, e in res["tasks"][t]["methods"].items():
            vals = [x for v in e["per_seed"].values() for x in (v.get("jsd") or []) if not math.isnan(x)]
            if vals:
                names.append(m)
                data.append(vals)
        if data:
            ax.boxplot(data, showfliers=False)
            ax.set_xticks(range(1, len(names) + 1))
            ax.set_xticklabels(names, rotation=45, ha="right", fontsize="small")
        ax.set_title(t)
        ax.set_ylabel("per-sample JSD to the base model")
    fig.tight_layout()
    fig.savefig(out / "jsd_to_base.png", dpi=110)
    plt.close(fig)
