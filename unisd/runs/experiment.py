"""An experiment file for ``unisd replicate``: its model (methods, tasks, seeds, the shared budget,
baselines, retention, forgetting probes, a quick mode, grids) and the plan of runs it makes."""

from __future__ import annotations

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from unisd.components.base import StrictModel
from unisd.runs.forgetting import ProbeSpec
from unisd.errors import UserError


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
