"""The base every pluggable component shares: a typed config and optional runtime state.

A component class declares ``Config``, a pydantic model whose ``type`` field is the component's
registry name. The recipe validates each component entry against that model, so a plugin brings its
own validation and its own JSON Schema. Components that keep state (an EMA teacher, a quantile
tracker, a negatives cache) implement the ``unisd_*`` runtime hooks of :mod:`unisd.hookspecs` as
methods; the engine registers each component with the plugin manager for the length of a run.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # pragma: no cover
    from unisd.components.context import RunContext


class StrictModel(BaseModel):
    """Base of every configuration model: unknown keys are errors, assignments are validated, and
    no number may be ``inf`` or ``nan``."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class TypedConfig(StrictModel):
    """Base of every config that names its implementation in ``type`` (a registry name): component
    configs, and those of dataset adapters and context builders, which have no ``name``."""

    type: str


class ComponentConfig(TypedConfig):
    """Base of a component's config. Subclasses narrow ``type`` to ``Literal["their-name"]``."""

    #: the registry kind of a config model the recipe model built for one registered name (``_tagged``)
    _unisd_kind: ClassVar[str]
    type: str
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$",
        description="a name of its own, so one type can appear twice (two feature-matching "
        "terms on different layers): its loss term, logs, checkpoint state and "
        "--set address use it; default: the type",
    )


@dataclass(frozen=True)
class RecordSlot:
    """An optional record field a component reads, beyond the core schema of :mod:`unisd.data.records`.

    ``type`` is its type, checked when the records load (a bad value names the file, line and
    field); ``rendered_from`` names, for a teacher-prompt slot, the reference slot that the recipe's
    ``data.teacher_template`` renders into it (as ``reference`` is rendered into ``teacher_prompt``).
    """

    type: Any
    rendered_from: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Requirements:
    """What a component needs the engine to compute for each micro-batch.

    ``feature_layers``: module paths (``"model.norm"``) or ``"lm_head_input"`` whose outputs are
    captured by forward hooks at completion positions, for student and teacher.
    ``record_fields``: record slots the component reads (checked once the run is set up).
    ``prompt_fields``: record slots holding teacher prompts the component adds (a string or a list
    of strings); records whose prompts there exceed ``data.max_prompt_length`` are dropped, as for
    ``prompt`` and ``teacher_prompt``.
    ``token_logp_grad``: the component's loss goes through ``batch.student.token_logps``, so they
    must carry gradients (else, when log-probs are computed in blocks, they are values only).
    ``full_logprobs``: the component reads the full ``(B, T, V)`` ``batch.student.logprobs`` /
    ``batch.teacher.logprobs``; the run then materialises them (``training.logit_chunk`` is ignored).
    """

    feature_layers: frozenset[str] = field(default_factory=frozenset)
    record_fields: frozenset[str] = field(default_factory=frozenset)
    token_logp_grad: bool = False
    full_logprobs: bool = False
    prompt_fields: frozenset[str] = field(default_factory=frozenset)

    def merge(self, other: Requirements) -> Requirements:
        return Requirements(
            self.feature_layers | other.feature_layers,
            self.record_fields | other.record_fields,
            self.token_logp_grad or other.token_logp_grad,
            self.full_logprobs or other.full_logprobs,
            self.prompt_fields | other.prompt_fields,
        )


class Component(abc.ABC):  # noqa: B024 (no method is abstract: every kind overrides its own)
    """Base class of every component: recipe components (teachers, disagreement measures, losses,
    guards), divergences, objectives, dataset adapters, context builders and generation backends.

    Subclasses set ``kind`` (done by the kind's base class) and ``Config``; a class that leaves an
    abstract method of its kind unimplemented cannot be built. The engine builds a component with
    ``cls(config)``, calls :meth:`setup` once the model exists, and registers it for the run's hooks.
    """

    kind: ClassVar[str] = "component"
    Config: ClassVar[type[TypedConfig]] = ComponentConfig
    #: record fields this component reads beyond the core schema, validated when records load
    record_slots: ClassVar[Mapping[str, RecordSlot]] = {}
    #: the metrics (logged as ``<name>/<key>``) that show whether this component acts; ``unisd inspect``,
    #: the run summary and ``unisd replicate`` tabulate them (:mod:`unisd.runs.activity`)
    activity_metrics: ClassVar[tuple[str, ...]] = ()
    #: those of them that count up over a run (a number of updates): summarised by their last value
    cumulative_metrics: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: TypedConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        """The component's own name (``config.name``), else its type."""
        return getattr(self.config, "name", None) or self.config.type

    def requirements(self) -> Requirements:
        """What this component needs computed per micro-batch (default: nothing extra)."""
        return Requirements()

    def setup(self, run: RunContext) -> None:  # noqa: B027 (optional: most components need no setup)
        """Called once before training with the live run (model, tokenizer, data, recipe)."""

    def diagnose(self, batch: Any) -> dict[str, float]:
        """Measurements too costly for every micro-batch that show this component acting (an EMA
        teacher's KL to the base model), logged as ``<name>/<key>``. The engine calls it on the
        first micro-batch of every ``logging.diagnostics_every``-th step with the
        :class:`~unisd.components.batch.DistillBatch`. Default: nothing."""
        return {}

    def inert_reason(self, history: Sequence[Mapping[str, Any]], steps: int) -> str | None:
        """Why this component did nothing over a run, naming the setting responsible (e.g. "EMA
        syncs every 10 steps, run has 8"), or ``None`` when it acted or cannot tell. ``history``
        holds the run's logged metric rows, ``steps`` its optimizer steps. Called after training
        on a component built from its config alone (no ``setup``)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


def config_model_of(component: Any) -> type[BaseModel]:
    """The ``Config`` model of a component class (a pydantic model with a ``type`` field), with a
    clear error naming the class when it is missing."""
    cfg = getattr(component, "Config", None)
    if not (isinstance(cfg, type) and issubclass(cfg, BaseModel) and "type" in cfg.model_fields):
        name = f"{getattr(component, '__module__', '?')}:{getattr(component, '__qualname__', component)}"
        raise TypeError(
            f"{name} must define Config, a pydantic model with a 'type' field "
            "(subclass unisd.ComponentConfig, or the kind's config base)"
        )
    return cfg
