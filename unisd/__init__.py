"""UniSD: a unified, pluggable framework for self-distillation of large language models."""

from unisd.components.base import Component, ComponentConfig, RecordSlot, Requirements, StrictModel
from unisd.components.batch import DistillBatch, MicroResult, Scores
from unisd.components.kinds import (
    AuxiliaryLoss,
    AuxiliaryLossConfig,
    ContextBuilder,
    ContextBuilderConfig,
    DatasetAdapter,
    DatasetConfig,
    DisagreementMeasure,
    Divergence,
    DivergenceConfig,
    GenerationBackend,
    LossTerm,
    Objective,
    ObjectiveConfig,
    StabilityGuard,
    TeacherProvider,
    Weights,
)
from unisd.hookspecs import hookimpl
from unisd.plugins import get_host, get_registries
from unisd.registry import Registry

from unisd.version import __version__

__all__ = [
    "AuxiliaryLoss",
    "AuxiliaryLossConfig",
    "Component",
    "ComponentConfig",
    "ContextBuilder",
    "ContextBuilderConfig",
    "DatasetAdapter",
    "DatasetConfig",
    "DisagreementMeasure",
    "DistillBatch",
    "Divergence",
    "DivergenceConfig",
    "GenerationBackend",
    "LossTerm",
    "MicroResult",
    "Objective",
    "ObjectiveConfig",
    "RecordSlot",
    "Registry",
    "Requirements",
    "Scores",
    "StabilityGuard",
    "StrictModel",
    "TeacherProvider",
    "Weights",
    "get_host",
    "get_registries",
    "hookimpl",
    "__version__",
]
