"""What a plugin registers in ``registry.evaluators`` to add an evaluation task or a group.

A :class:`TaskSpec` names one lm-evaluation-harness task and says where its YAML lives, which
metric is its headline, and (optionally) how to load its documents for the data check, the
retention metrics and the per-domain breakdown. A :class:`GroupSpec` names an ordered set of tasks
that ``unisd eval --tasks GROUP`` expands to. Both are plain frozen dataclasses; this module
imports nothing heavy, so a plugin's spec module can be imported cheaply::

    from unisd import hookimpl
    from unisd.components.evaluators import TaskSpec

    @hookimpl
    def unisd_register(registry):
        registry.evaluators.add("my_task", "my_pkg.eval_specs:MY_TASK")   # a TaskSpec, lazily

The core (:mod:`unisd.evaluation.tasks`) finds tasks only through that registry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

#: A callable, or a lazy ``"package.module:attribute"`` path to one, imported on first use.
Ref = str | Callable[..., Any]


class DataUnavailable(RuntimeError):
    """A task's data cannot be found (missing local file, or the hub cannot be reached).

    Raised by a :attr:`TaskSpec.docs` loader; ``unisd eval`` then skips the task and reports why."""


def resolve_ref(ref: Ref, what: str = "reference") -> Callable[..., Any]:
    """``ref`` itself if callable, else the attribute a ``"module:attr"`` string names."""
    if callable(ref):
        return ref
    module_name, _, attr = str(ref).partition(":")
    if not module_name or not attr:
        raise ValueError(f"{what} {ref!r} must be a callable or look like 'package.module:attribute'")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{what} {ref!r} is not callable")
    return obj


class EvaluatorSpec:
    """Base of what ``registry.evaluators`` holds: a :class:`TaskSpec` or a :class:`GroupSpec`."""

    name: str


@dataclass(frozen=True)
class TaskSpec(EvaluatorSpec):
    """One lm-eval task that ``unisd eval`` (and ``evaluation.tasks`` of a recipe) can run.

    ``name``
        the lm-eval task name (``task:`` in its YAML) and the registry key.
    ``include_dir``
        folder handed to lm-eval's ``TaskManager(include_path=...)``; it holds the task's YAML (and
        the templates it includes). Several specs may share one folder.
    ``primary_metric``
        the headline metric (first column of ``results.md``, bars of ``unisd compare``).
    ``benchmark``
        the data family (several tasks may share one, e.g. a generative and a log-likelihood variant).
    ``loglikelihood``
        a log-likelihood (multiple-choice) variant: nothing is generated, so the retention metrics
        skip it.
    ``docs``
        ``loader(data_dir) -> list[dict]`` (or its ``"module:attr"`` path): the task's documents,
        each with at least ``prompt``; raises :class:`DataUnavailable` when the data is missing. Used
        to skip tasks without data before lm-eval starts and by the retention metrics. ``None``:
        lm-eval loads the data itself and the task is always attempted.
    ``gold_completion``
        ``gold(doc) -> str`` (or its path): the reference completion of a document, for the
        gold-completion fit of the retention metrics. ``None``: no retention for this task.
    ``breakdown_field``
        document field that splits the results into domains in ``results.md`` (``None``: no table).
    ``write_samples``
        ``False`` keeps the task's documents off disk even with ``--log-samples`` (GPQA).
    ``aliases``
        short names ``--tasks`` also accepts (``mbpp`` for ``unisd_mbpp``).
    """

    name: str
    include_dir: Path
    primary_metric: str
    benchmark: str = ""
    loglikelihood: bool = False
    docs: Ref | None = None
    gold_completion: Ref | None = None
    breakdown_field: str | None = None
    write_samples: bool = True
    executes_code: bool = False  # scores by running model-written code (needs the sandbox's kernel layers)
    aliases: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or self.name != self.name.strip():
            raise ValueError(f"TaskSpec name must be a non-empty string, got {self.name!r}")
        if not self.primary_metric:
            raise ValueError(f"TaskSpec {self.name!r} needs a primary_metric")
        object.__setattr__(self, "include_dir", Path(self.include_dir))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        if not self.benchmark:
            object.__setattr__(self, "benchmark", self.name)

    def load_docs(self, data_dir: str | Path | None = None) -> list[dict[str, Any]]:
        """The task's documents through :attr:`docs`; :class:`DataUnavailable` if it has no loader."""
        if self.docs is None:
            raise DataUnavailable(f"{self.name}: the task registers no document loader")
        return list(resolve_ref(self.docs, f"docs loader of task {self.name!r}")(data_dir))

    def gold(self, doc: dict[str, Any]) -> str:
        """The gold completion of ``doc`` through :attr:`gold_completion`."""
        if self.gold_completion is None:
            raise ValueError(f"task {self.name!r} registers no gold_completion")
        return str(resolve_ref(self.gold_completion, f"gold_completion of task {self.name!r}")(doc))


@dataclass(frozen=True)
class GroupSpec(EvaluatorSpec):
    """A named, ordered list of task names (``unisd-six``); the tasks may come from any plugin."""

    name: str
    tasks: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"GroupSpec name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if not self.tasks:
            raise ValueError(f"group {self.name!r} lists no task")


# -- process-wide settings that lm-eval hooks read -----------------------------------------------------


@dataclass(frozen=True)
class EvalSettings:
    """Settings of the evaluation in progress, for task hooks that lm-eval calls without context
    (``process_results(doc, results)``). Read with :func:`current_settings`."""

    code_timeout_s: float = 10.0  # wall-clock limit of one model-written program
    mcqa_rule: str = "fixed"  # MCQA letter extraction: "fixed", or the spec's "reference" rule


_SETTINGS = EvalSettings()


def current_settings() -> EvalSettings:
    return _SETTINGS


@contextlib.contextmanager
def eval_settings(**changes: Any) -> Iterator[EvalSettings]:
    """Use ``changes`` (fields of :class:`EvalSettings`) for the length of the ``with`` block."""
    global _SETTINGS
    previous = _SETTINGS
    _SETTINGS = dataclasses.replace(previous, **changes)
    try:
        yield _SETTINGS
    finally:
        _SETTINGS = previous
