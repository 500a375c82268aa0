"""Tensors that flow through one micro-batch of self-distillation.

Shapes: ``B`` rows, ``T`` padded completion length, ``V`` vocabulary, ``H`` hidden size. Every
tensor is aligned to completion positions: index ``t`` holds what predicts completion token ``t``.
Log-probabilities are fp32.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from collections.abc import Sequence

if TYPE_CHECKING:  # pragma: no cover  (annotations only: importing the component API costs no torch)
    import torch


#: the feature-layer name of the LM head's input (the last hidden state, after the final norm)
LM_HEAD_INPUT = "lm_head_input"


@dataclass
class Tokenized:
    """Left-padded prompt ids and mask of shape (B, P)."""

    ids: torch.Tensor
    mask: torch.Tensor

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(-1)


@dataclass
class Rollout:
    """Completions: ids (B, T) right-padded, ``present`` (tokens that exist, incl. EOS),
    ``loss_mask`` (present, minus truncated rows when masking them), and ``truncated`` (B,)."""

    ids: torch.Tensor
    present: torch.Tensor
    loss_mask: torch.Tensor
    truncated: torch.Tensor


@dataclass
class Scores:
    """A model's view of ``context ⊕ completion`` at the completion positions."""

    token_logps: torch.Tensor  # (B, T) log p(y_t | context, y_<t) at the scoring temperature
    logprobs: torch.Tensor | None = None  # (B, T, V) full log-softmax, when requested
    features: dict[str, torch.Tensor] = field(default_factory=dict)  # layer path -> (B, T, H)
    # the LM head's input at the completion positions and the head's (weight, bias) as the forward
    # used them: set when log-probs are computed in blocks of tokens (``training.logit_chunk``)
    hidden: torch.Tensor | None = None  # (B, T, H)
    head: tuple[torch.Tensor, torch.Tensor | None] | None = None


class ContextScorer(Protocol):
    """Scores the batch's completions under other contexts with the teacher (no gradient)."""

    def __call__(
        self,
        contexts: Sequence[str],
        *,
        temperature: float,
        full_logprobs: bool = False,
        feature_layers: Sequence[str] = (),
    ) -> Scores:
        """``contexts`` holds ``R·B`` user-turn texts laid out context-major (row ``r·B + b`` is
        context ``r`` of batch row ``b``); the completions are repeated ``R`` times and scored in one
        batched forward. Returns scores of shape ``(R·B, T, …)``."""
        ...


@dataclass
class DistillBatch:
    """Everything components may read for one micro-batch."""

    records: list[dict[str, Any]]  # the source records (extra slots: aux contexts, negatives…)
    completion_ids: torch.Tensor  # (B, T) long, right-padded
    completion_mask: torch.Tensor  # (B, T) float, 1 on scored completion tokens (incl. EOS)
    student: Scores  # with gradient
    teacher: Scores  # no gradient
    temperature: float
    step: int
    score_contexts: ContextScorer
    logs: dict[str, float] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return int(self.completion_ids.shape[0])

    def record_field(self, name: str) -> list[Any]:
        """The value of ``name`` for every row; a clear error names the first record lacking it."""
        out = []
        for i, rec in enumerate(self.records):
            if name not in rec or rec[name] is None:
                rid = rec.get("id", f"#{i}")
                raise KeyError(f"record {rid} has no field {name!r}, which a component of this recipe needs")
            out.append(rec[name])
        return out


@dataclass
class MicroResult:
    """A micro-batch's total loss (before dividing by grad_accum), its named terms, values to log
    and the number of completion tokens it trained on."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    logs: dict[str, float] = field(default_factory=dict)
    tokens: int = 0
