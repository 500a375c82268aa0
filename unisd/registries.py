"""The set of registries, one per extension point, filled by ``unisd_register`` hooks."""

from __future__ import annotations

from pathlib import Path
from collections.abc import Iterator

from unisd.components.kinds import (
    AuxiliaryLoss,
    ContextBuilder,
    DatasetAdapter,
    DisagreementMeasure,
    Divergence,
    GenerationBackend,
    Objective,
    StabilityGuard,
    TeacherProvider,
)
from unisd.components.evaluators import EvaluatorSpec
from unisd.registry import Registry

#: Registries whose entries can appear in a recipe's ``components`` list.
COMPONENT_KINDS = ("teachers", "disagreements", "losses", "guards")


class Registries:
    """One :class:`Registry` per extension point. ``origin`` is stamped on each ``add``."""

    def __init__(self) -> None:
        self.teachers: Registry[type[TeacherProvider]] = Registry(
            "teacher", TeacherProvider, "Weights the teacher forwards run with"
        )
        self.disagreements: Registry[type[DisagreementMeasure]] = Registry(
            "disagreement", DisagreementMeasure, "K-context teacher log-probs → loss weights"
        )
        self.losses: Registry[type[AuxiliaryLoss]] = Registry(
            "loss", AuxiliaryLoss, "Auxiliary loss terms added with a weight λ"
        )
        self.guards: Registry[type[StabilityGuard]] = Registry(
            "guard", StabilityGuard, "Transforms of per-token divergences or of the update"
        )
        self.divergences: Registry[type[Divergence]] = Registry(
            "divergence", Divergence, "Per-token teacher/student divergences"
        )
        self.objectives: Registry[type[Objective]] = Registry(
            "objective", Objective, "What the student learns from: distillation, cross-entropy, …"
        )
        self.context_builders: Registry[type[ContextBuilder]] = Registry(
            "context_builder", ContextBuilder, "Builders of auxiliary teacher contexts"
        )
        self.datasets: Registry[type[DatasetAdapter]] = Registry("dataset", DatasetAdapter, "Training-set adapters")
        self.evaluators: Registry[EvaluatorSpec] = Registry(
            "evaluator", EvaluatorSpec, "Evaluation tasks and groups (lm-eval)"
        )
        self.generators: Registry[type[GenerationBackend]] = Registry(
            "generator", GenerationBackend, "Rollout generation backends"
        )
        self.recipes: Registry[Path] = Registry("recipe", None, "Shipped recipes (YAML files)")
        self.experiments: Registry[Path] = Registry("experiment", None, "Shipped replication experiments (YAML files)")

    def component_class(self, name: str) -> type:
        """The class registered as recipe component ``name`` (in any of :data:`COMPONENT_KINDS`)."""
        for attr in COMPONENT_KINDS:
            reg = getattr(self, attr)
            if name in reg:
                return reg.get(name)
        raise KeyError(name)

    def all(self) -> dict[str, Registry]:
        return {k: v for k, v in vars(self).items() if isinstance(v, Registry)}

    def __iter__(self) -> Iterator[Registry]:
        return iter(self.all().values())

    def freeze(self) -> None:
        for reg in self:
            reg.freeze()

    def with_origin(self, origin: str) -> OriginView:
        """A view whose ``add`` calls default ``origin`` to the registering plugin."""
        return OriginView(self, origin)


class _StampedRegistry:
    def __init__(self, registry: Registry, origin: str) -> None:
        self._registry, self._origin = registry, origin

    def add(
        self,
        name: str,
        target: object,
        *,
        origin: str | None = None,
        description: str = "",
        default: bool = False,
        config: object = None,
    ) -> None:
        self._registry.add(
            name, target, origin=origin or self._origin, description=description, default=default, config=config
        )

    def __getattr__(self, item: str):
        return getattr(self._registry, item)


class OriginView:
    """Passed to ``unisd_register``: same attributes as :class:`Registries`, origin-stamped."""

    def __init__(self, registries: Registries, origin: str) -> None:
        for key, reg in registries.all().items():
            setattr(self, key, _StampedRegistry(reg, origin))
