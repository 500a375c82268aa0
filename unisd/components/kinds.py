"""The component protocols, one per extension point.

Each is a small abstract base class working on batched tensors. The five UniSD mechanisms are each
one subclass of these; a new mechanism is a new subclass registered from a plugin — no core edit.
"""

from __future__ import annotations

import abc
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from collections.abc import Callable, Iterable, Mapping, Sequence


from pydantic import Field

from unisd.components.base import Component, ComponentConfig, RecordSlot, TypedConfig
from unisd.components.batch import DistillBatch, MicroResult

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from unisd.components.batch import Tokenized
    from unisd.components.context import RunContext
    from unisd.components.stages import Stages


# -- divergences ---------------------------------------------------------------------------------
class DivergenceConfig(ComponentConfig):
    """Config of a divergence. ``weight`` scales the divergence term (0 drops it)."""

    weight: float = 1.0


class Divergence(Component):
    """Per-token divergence between teacher and student distributions over the full vocabulary.

    ``per_token`` gets fp32 log-probabilities of shape (B, T, V) and returns (B, T). Gradients flow
    through ``student_logprobs`` only. ``upper_bound`` is the largest value the divergence can take
    (``inf`` when unbounded); guards use it to check that a cap can bind.
    """

    kind: ClassVar[str] = "divergence"
    Config: ClassVar[type[DivergenceConfig]] = DivergenceConfig
    config: DivergenceConfig
    upper_bound: float = float("inf")

    @abc.abstractmethod
    def per_token(self, teacher_logprobs: torch.Tensor, student_logprobs: torch.Tensor) -> torch.Tensor:
        """Return D of shape (B, T)."""


# -- objectives ----------------------------------------------------------------------------------
class ObjectiveConfig(ComponentConfig):
    """Config of a training objective (``objective`` in a recipe); objectives add their options.
    ``samples``: the objective trains on sampled completions (so ``generation.num_generations``
    applies)."""

    samples: ClassVar[bool] = True
    score_temperature: float | None = Field(
        None,
        gt=0.0,
        description="temperature of student/teacher log-probs; default: the generation temperature (reference: 0.7)",
    )
    normalization: Literal["sequence", "token"] = Field(
        "sequence",
        description="'sequence': per-sequence token mean, then batch mean (spec §1.6); 'token': global token mean",
    )


class Objective(Component):
    """What the student learns from, one micro-batch at a time.

    ``loss(step, records, prompt, rng)`` returns the micro-batch's :class:`MicroResult`. ``step``
    is the engine's micro-step, typed by the :class:`~unisd.components.stages.Stages` protocol; it
    offers the stages an objective is built from: ``sample(prompt)``
    (rollouts from the student, or its base weights), ``gold(records)`` (the reference completions
    as a rollout), ``score_student`` / ``score_teacher`` (teacher-forced log-probs),
    ``nll(prompt, rollout)``, and ``distill(records, prompt, rollout)`` (the divergence with every
    guard, disagreement weight and auxiliary term of the recipe). ``prompt`` holds the micro-batch's
    chat-rendered, left-padded prompts on the run's device; ``rng`` is seeded per micro-batch.
    """

    kind: ClassVar[str] = "objective"
    Config: ClassVar[type[ObjectiveConfig]] = ObjectiveConfig
    config: ObjectiveConfig

    @abc.abstractmethod
    def loss(
        self, step: Stages, records: Sequence[dict[str, Any]], prompt: Tokenized, rng: torch.Generator
    ) -> MicroResult:
        """The micro-batch's loss and logs."""


# -- teacher providers ---------------------------------------------------------------------------
TeacherForward = Callable[..., Any]  # called like model(input_ids=…, attention_mask=…, …)


class TeacherProvider(Component):
    """Provides the weights the teacher forwards run with.

    ``teacher_forward()`` is a context manager yielding a callable with the signature of the model's
    ``forward``; the engine runs every teacher forward (primary, auxiliary, negative) inside it under
    ``torch.no_grad()``, and aligns positions itself. Stateful providers (EMA) update themselves in
    the ``unisd_on_step_end`` hook and save state through the checkpoint hooks.
    """

    kind: ClassVar[str] = "teacher"

    @classmethod
    def model_copies(cls, recipe: Any) -> int:
        """Whole extra copies of the model's weights this provider holds (the start-up memory
        check counts them). Default: none under LoRA (the adapter is switched off), one under full
        fine-tuning."""
        return 0 if recipe.lora.enabled else 1

    @abc.abstractmethod
    def teacher_forward(self) -> AbstractContextManager[TeacherForward]:
        """Yield a forward callable that computes teacher logits. Feature hooks are placed on it
        when it is an ``nn.Module`` (a separate teacher model), else on the student's modules (a
        callable such as ``functional_call`` over the student)."""


# -- disagreement measures (multi-teacher agreement) ---------------------------------------------
@dataclass
class Weights:
    """Per-token and/or per-sequence loss weights (constants, no gradient).

    ``token`` (B, T) re-weights tokens inside each sequence; ``sequence`` (B,) re-weights sequences
    inside the batch. ``None`` means uniform.
    """

    token: torch.Tensor | None = None
    sequence: torch.Tensor | None = None
    logs: dict[str, float] = field(default_factory=dict)


class DisagreementMeasure(Component):
    """Maps the teacher's log-probs of the sampled tokens under K contexts to loss weights.

    Subclasses implement :meth:`weights`; the K contexts come from the batch records (built offline
    by a :class:`ContextBuilder`) and are scored with ``batch.score_contexts`` in one forward.
    """

    kind: ClassVar[str] = "disagreement"

    @abc.abstractmethod
    def weights(self, batch: DistillBatch) -> Weights:
        """Return the weights for this micro-batch."""


# -- auxiliary losses ----------------------------------------------------------------------------
class AuxiliaryLossConfig(ComponentConfig):
    """Config of an auxiliary loss: ``weight`` is its λ in the total loss."""

    weight: float = 1.0


@dataclass
class LossTerm:
    """A named scalar loss term (before its λ) plus values to log."""

    name: str
    value: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)


class AuxiliaryLoss(Component):
    """An extra loss term; the engine adds ``config.weight · term.value`` to the total."""

    kind: ClassVar[str] = "loss"
    Config: ClassVar[type[AuxiliaryLossConfig]] = AuxiliaryLossConfig
    config: AuxiliaryLossConfig

    @abc.abstractmethod
    def compute(self, batch: DistillBatch) -> LossTerm:
        """Return the unweighted term for this micro-batch."""


# -- stability guards ----------------------------------------------------------------------------
class StabilityGuard(Component):
    """Transforms per-token divergences before weighting, and/or the update before the step.

    ``transform_divergence`` gets D (B, T) and the completion mask and returns the new D (e.g. a
    hard cap). ``token_weights`` may return (B, T) constant weights that multiply the loss weights
    of the tokens (0 removes a token from the loss and from its sequence's normaliser), or ``None``.
    ``before_optimizer_step`` sees the model after backward (e.g. to inspect gradients).
    """

    kind: ClassVar[str] = "guard"

    def transform_divergence(self, divergence: torch.Tensor, mask: torch.Tensor, batch: DistillBatch) -> torch.Tensor:
        return divergence

    def token_weights(self, mask: torch.Tensor, batch: DistillBatch) -> torch.Tensor | None:
        return None

    def before_optimizer_step(self, model: torch.nn.Module, run: RunContext) -> None:
        return None


# -- context builders ----------------------------------------------------------------------------
class ContextBuilderConfig(TypedConfig):
    """Config of a context builder: K contexts per item, ``demos`` donor items per context."""

    type: str
    k: int = 3
    demos: int = 1
    seed: int = 42


class ContextBuilder(Component):
    """Builds K auxiliary teacher contexts per training record (offline, before training).

    ``build`` receives all records of the training split and returns, for each record, K
    user-turn texts. It must never put an item's own reference answer into its contexts. The
    component that builds it passes it to ``run.adopt`` so it receives the run's hooks.
    """

    kind: ClassVar[str] = "context_builder"
    Config: ClassVar[type[ContextBuilderConfig]] = ContextBuilderConfig

    @abc.abstractmethod
    def build(self, records: Sequence[dict[str, Any]], *, run: RunContext | None = None) -> list[list[str]]:
        """Return ``len(records)`` lists of K context strings."""


# -- dataset adapters ----------------------------------------------------------------------------
class DatasetConfig(TypedConfig):
    """Config of a dataset adapter. ``path`` overrides the hub source with local files."""

    type: str
    split: str = "train"
    path: str | None = None
    limit: int | None = None


class DatasetAdapter(Component):
    """Turns a source dataset into training records (see :mod:`unisd.data.records`).

    Before :meth:`load` the engine sets ``on_bad_record`` (``"error"`` or ``"skip"``), the
    ``rejects_path`` for skipped records and the ``slots`` the recipe's components read
    (:class:`~unisd.components.base.RecordSlot`), to be validated with the core fields
    (:func:`unisd.data.records.validate_records` does all three). Once the run exists the adapter
    is set up and receives the run's hooks like any component.
    """

    kind: ClassVar[str] = "dataset"
    Config: ClassVar[type[DatasetConfig]] = DatasetConfig
    on_bad_record: Literal["error", "skip"] = "error"
    rejects_path: str | Path | None = None
    slots: Mapping[str, RecordSlot] = {}

    @abc.abstractmethod
    def load(self) -> Iterable[dict[str, Any]]:
        """Yield records with at least ``id``, ``prompt``, ``teacher_prompt`` and ``gold``."""

    def is_correct(self, record: dict[str, Any], completion: str) -> bool | None:
        """Whether ``completion`` answers ``record`` correctly (``None``: this dataset cannot tell).
        Used for the held-out before/after summary of a run."""
        return None


# -- rollout backends ----------------------------------------------------------------------------
class GeneratorConfig(ComponentConfig):
    """Config of a generation backend (``generation.backend`` in a recipe); backends add their options."""

    def reserved_memory(self, device: Any) -> int:
        """Bytes of ``device`` memory the backend takes for itself beside training (an engine's
        weights and KV cache); the start-up memory check sets them aside. Default: none."""
        return 0


class GenerationBackend(Component):
    """Samples completions from the student (HF ``generate``, vLLM, …). The engine builds it with
    ``cls(config)`` (the recipe's ``generation.backend``), sets it up with the run, and registers it
    for the run's hooks (a backend holding its own copy of the weights learns of each optimizer
    step from ``unisd_on_step_end``)."""

    kind: ClassVar[str] = "generator"
    Config: ClassVar[type[GeneratorConfig]] = GeneratorConfig

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__(config if config is not None else self.Config(type=self.kind))

    @abc.abstractmethod
    def generate(
        self,
        model: Any,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        params: Any,
        *,
        eos_token_ids: Sequence[int] = (),
        pad_token_id: int = 0,
    ) -> torch.Tensor:
        """Sample one completion per left-padded prompt row with the recipe's ``generation`` params
        (temperature, top_p, top_k, max_new_tokens); stop at any of ``eos_token_ids``. Return the
        completion ids (B, T), right-padded with ``pad_token_id``."""
