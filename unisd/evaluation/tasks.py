"""Evaluation tasks and groups, found only through ``registry.evaluators``.

Plugins register :class:`~unisd.components.evaluators.TaskSpec` and
:class:`~unisd.components.evaluators.GroupSpec` objects (usually lazily, as ``"module:attr"``) in their
``unisd_register`` hook; the built-in benchmarks (``unisd-six``, ``unisd-mc``) come from the
``evaluation`` plugin exactly like a third-party task would. The registry checks that every entry
is an :class:`~unisd.components.evaluators.EvaluatorSpec`.

Every function takes an optional ``registries`` (default: the process-wide plugin host's).

A ``--tasks`` item that no plugin registers is handed to lm-eval itself (:func:`select_tasks`):
its stock tasks and groups, and plain lm-eval YAML directories given as ``include_path``, run with
no Python of ours.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload
from collections.abc import Iterable

from unisd.components.evaluators import GroupSpec, TaskSpec
from unisd.errors import UserError
from unisd.registry import UnknownEntryError

if TYPE_CHECKING:  # pragma: no cover
    from unisd.registries import Registries
    from unisd.registry import Registry


class UnknownTaskError(UnknownEntryError, ValueError):
    """A ``--tasks`` item that names no registered task, group or alias."""


@dataclass(frozen=True)
class Catalog:
    """The registered tasks and groups (name order) and the plugin package each came from."""

    tasks: dict[str, TaskSpec]
    groups: dict[str, GroupSpec]
    origins: dict[str, str]
    registry: Registry

    def groups_of(self, task: str) -> list[str]:
        return [g for g, spec in self.groups.items() if task in spec.tasks]


def _evaluators(registries: Registries | None) -> Registry:
    if registries is None:
        from unisd.plugins import get_registries

        registries = get_registries()
    return registries.evaluators


def catalog(registries: Registries | None = None) -> Catalog:
    """Resolve (import) every evaluator entry and keep the task and group specs."""
    reg = _evaluators(registries)
    tasks: dict[str, TaskSpec] = {}
    groups: dict[str, GroupSpec] = {}
    origins: dict[str, str] = {}
    for entry in reg.entries():
        obj = entry.resolve(reg)
        if isinstance(obj, (TaskSpec, GroupSpec)) and obj.name != entry.name:
            raise ValueError(
                f"evaluator {entry.name!r} from {entry.origin} is a {type(obj).__name__} named "
                f"{obj.name!r}; register it under its own name"
            )
        if isinstance(obj, TaskSpec):
            tasks[entry.name] = obj
        elif isinstance(obj, GroupSpec):
            groups[entry.name] = obj
        else:
            continue
        origins[entry.name] = entry.origin
    return Catalog(tasks, groups, origins, reg)


def task_specs(registries: Registries | None = None) -> dict[str, TaskSpec]:
    """``{task name: TaskSpec}`` of every registered task."""
    return catalog(registries).tasks


def find_task(name: str, registries: Registries | None = None) -> TaskSpec | None:
    """The spec registered as ``name``, or ``None`` (results of tasks no longer installed)."""
    reg = _evaluators(registries)
    if name not in reg:
        return None
    obj = reg.get(name)
    return obj if isinstance(obj, TaskSpec) else None


def get_task(name: str, registries: Registries | None = None) -> TaskSpec:
    """The spec registered as ``name``; an unknown name gives the registry's "Did you mean" message."""
    spec = find_task(name, registries)
    if spec is None:
        raise _unknown(name, _evaluators(registries))
    return spec


@overload
def primary_metric(task: str, default: str, registries: Registries | None = None) -> str: ...


@overload
def primary_metric(task: str, default: None = None, registries: Registries | None = None) -> str | None: ...


def primary_metric(task: str, default: str | None = None, registries: Registries | None = None) -> str | None:
    """The headline metric of ``task`` (``default`` for a task no plugin registers)."""
    spec = find_task(task, registries)
    return spec.primary_metric if spec is not None else default


def _unknown(item: str, reg: Registry) -> UnknownTaskError:
    message = reg.unknown_message(item)
    prefix = f"unknown {reg.kind} {item!r}"
    if message.startswith(prefix):
        message = f"unknown task or group {item!r}" + message[len(prefix) :]
    return UnknownTaskError(message)


def default_tasks(registries: Registries | None = None) -> str:
    """The evaluator a plugin registered with ``default=True`` (what ``unisd eval`` runs without ``--tasks``)."""
    name = _evaluators(registries).default
    if name is None:
        raise UnknownTaskError("no plugin registers a default evaluation task or group: name the tasks (--tasks)")
    return name


def resolve_tasks(spec: str | Iterable[str] | None, registries: Registries | None = None) -> list[str]:
    """Expand a comma-separated list of tasks, groups and aliases (``mbpp``) to task names
    (``None``: :func:`default_tasks`).

    An item is looked up as a task or group name, then with ``-`` read as ``_``, then as an alias
    (``TaskSpec.aliases``). Unknown items raise :class:`UnknownTaskError` (a ``ValueError``)."""
    spec = default_tasks(registries) if spec is None else spec
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    cat: Catalog | None = None
    out: list[str] = []
    for item in items:
        cat = cat or catalog(registries)
        names = _expand(item, cat)
        out.extend(n for n in names if n not in out)
    return out


def _expand(item: str, cat: Catalog) -> list[str]:
    key = item.replace("-", "_")
    for name in (item, key):
        if name in cat.groups:
            group = cat.groups[name]
            missing = [t for t in group.tasks if t not in cat.tasks]
            if missing:
                raise ValueError(
                    f"group {name!r} from {cat.origins[name]} lists unregistered task(s) {', '.join(missing)}"
                )
            return list(group.tasks)
        if name in cat.tasks:
            return [name]
    hits = [t for t, s in cat.tasks.items() if item in s.aliases or key in (a.replace("-", "_") for a in s.aliases)]
    if len(hits) == 1:
        return hits
    if len(hits) > 1:
        raise UnknownTaskError(
            f"task alias {item!r} is ambiguous: it names {', '.join(hits)} "
            f"(from {', '.join(sorted({cat.origins[h] for h in hits}))}); use the full name"
        )
    raise _unknown(item, cat.registry)


@dataclass(frozen=True)
class TaskSelection:
    """``--tasks`` split into tasks registered by plugins (their data, scoring and reports are
    UniSD's) and names that lm-eval's own ``TaskManager`` resolves: YAML tasks under
    ``include_path``, or (``stock``) lm-eval's shipped tasks and groups."""

    registered: list[str]
    lm_eval: list[str]
    include_path: list[str]
    stock: bool = False


def lm_eval_task_manager(include_path: Iterable[str] = (), *, defaults: bool = True, metadata: dict | None = None):
    """lm-eval's ``TaskManager`` over ``include_path`` and, with ``defaults``, its shipped tasks
    (indexing those takes seconds: the manager is kept per set of arguments)."""
    import json

    paths = tuple(str(Path(p).expanduser().resolve()) for p in include_path)
    return _task_manager(paths, defaults, json.dumps(metadata, sort_keys=True) if metadata else None)


@functools.lru_cache(maxsize=4)
def _task_manager(paths: tuple[str, ...], defaults: bool, metadata: str | None):
    import json

    from lm_eval.tasks import TaskManager

    return TaskManager(
        include_defaults=defaults, include_path=list(paths) or None, metadata=json.loads(metadata) if metadata else None
    )


class RecipeTaskError(UserError, ValueError):
    """A recipe's ``evaluation.tasks`` names something that is not a task."""


def check_recipe_tasks(recipe: Any, registries: Registries | None = None) -> None:
    """Every name in ``recipe.evaluation.tasks`` is a registered task or group, or one of lm-eval's
    (did-you-mean otherwise), checked against ``registries`` (default: the recipe model's own)."""
    tasks = recipe.evaluation.tasks
    if not tasks:
        return
    try:
        select_tasks(tasks, registries=registries or getattr(type(recipe), "registries", None))
    except UnknownTaskError as exc:
        raise RecipeTaskError(f"evaluation.tasks: {exc}") from None


def select_tasks(
    spec: str | Iterable[str] | None, include_path: Iterable[str] = (), registries: Registries | None = None
) -> TaskSelection:
    """Resolve ``spec`` (comma-separated names, groups, aliases): registered tasks first, then the
    YAML tasks under ``include_path``, then lm-eval's shipped ones; a registered task's alias
    (``mbpp``) that is also an lm-eval task name means lm-eval's task (UniSD's is ``unisd_mbpp``).
    A name none of them knows raises :class:`UnknownTaskError` with suggestions from all."""
    import difflib

    spec = default_tasks(registries) if spec is None else spec
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    paths = [str(Path(p).expanduser().resolve()) for p in include_path]
    for path in paths:
        if not Path(path).is_dir():
            raise ValueError(f"--include-path {path}: no such directory")
    registered: list[str] = []
    unknown: list[tuple[str, UnknownTaskError]] = []
    cat = catalog(registries)
    for item in items:
        exact = any(n in cat.tasks or n in cat.groups for n in (item, item.replace("-", "_")))
        if not exact and _lm_eval_has(item, paths):  # an alias never shadows lm-eval's task of that name
            unknown.append((item, UnknownTaskError(f"unknown task {item!r}")))
            continue
        try:
            registered += [n for n in resolve_tasks([item], registries) if n not in registered]
        except UnknownTaskError as exc:
            unknown.append((item, exc))
    local = set(lm_eval_task_manager(paths, defaults=False).all_tasks) if paths and unknown else set()
    rest = [(item, exc) for item, exc in unknown if item not in local]
    stock = set(lm_eval_task_manager(paths).all_tasks) if rest else set()
    missing = [(item, exc) for item, exc in rest if item not in stock]
    if missing:
        item, error = missing[0]
        close = difflib.get_close_matches(item, sorted(stock | local), n=3)
        hint = (
            f"; lm-eval has no such task either (closest: {', '.join(close)})"
            if close
            else "; lm-eval has no such task either (give --include-path DIR for a directory of lm-eval YAML tasks)"
        )
        raise UnknownTaskError(f"{error}{hint}")
    return TaskSelection(registered, [item for item, _ in unknown], paths, stock=bool(rest))


def _lm_eval_has(name: str, paths: list[str]) -> bool:
    """Whether lm-eval (its shipped tasks, or the YAML tasks under ``paths``) knows ``name``."""
    return name in set(lm_eval_task_manager(paths).all_tasks)


def include_paths(tasks: Iterable[str] | None = None, registries: Registries | None = None) -> list[str]:
    """The ``include_dir`` of the given tasks (default: of every registered task), each once, for
    lm-eval's ``TaskManager(include_path=...)``."""
    specs = task_specs(registries)
    names = list(specs) if tasks is None else list(tasks)
    out: list[str] = []
    for name in names:
        spec = specs.get(name) or get_task(name, registries)
        path = str(Path(spec.include_dir).expanduser().resolve())
        if path not in out:
            out.append(path)
    return out


def describe_tasks(registries: Registries | None = None) -> str:
    """A plain-text listing of the registered groups and tasks, with the plugin package of each."""
    cat = catalog(registries)
    lines = ["Groups:"]
    lines += [f"  {g}: {', '.join(s.tasks)}  [{cat.origins[g]}]" for g, s in cat.groups.items()] or ["  (none)"]
    lines.append("Tasks:")
    for t, s in cat.tasks.items():
        extra = f", aliases {', '.join(s.aliases)}" if s.aliases else ""
        lines.append(f"  {t}  (benchmark {s.benchmark}, metric {s.primary_metric}{extra})  [{cat.origins[t]}]")
    if not cat.tasks:
        lines.append("  (none)")
    return "\n".join(lines)
