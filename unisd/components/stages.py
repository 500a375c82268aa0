"""What an objective may call: the stages of a micro-batch that the engine offers.

An :class:`~unisd.components.kinds.Objective` builds its loss from these calls, in any order, on the
``step`` its ``loss`` receives. The engine's micro-step implements the protocol; a test checks that
it does, method by method.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol
from collections.abc import Sequence

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from unisd.components.batch import MicroResult, Rollout, Scores, Tokenized
    from unisd.components.context import RunContext


class Stages(Protocol):
    """The micro-step as an objective sees it."""

    run: RunContext  #: the run (recipe, model, tokenizer, device, …)
    step: int  #: the optimizer step of the micro-batch (0-based)
    diagnose: bool  #: the components' costly diagnostics run on this micro-batch
    temperature: float  #: the scoring temperature of student and teacher log-probs

    def sample(self, prompt: Tokenized, *, use_base: bool = False) -> Rollout:
        """One sampled completion per prompt row from the student (``use_base``: its base weights)."""
        ...

    def gold(self, records: list[dict[str, Any]]) -> Rollout:
        """The records' reference completions (ending with EOS) as a rollout."""
        ...

    def rollout(self, seqs: list[list[int]], truncated: torch.Tensor) -> Rollout:
        """Token sequences (one per row, EOS included where present) as a right-padded rollout."""
        ...

    def score_student(
        self,
        prompt: Tokenized,
        roll: Rollout,
        *,
        temperature: float | None = None,
        full_logprobs: bool = False,
        feature_layers: Sequence[str] = (),
        keep_hidden: bool = False,
    ) -> Scores:
        """The student's teacher-forced scores of ``roll`` after ``prompt`` (with gradient)."""
        ...

    def score_teacher(
        self,
        texts: Sequence[str],
        completion_ids: torch.Tensor,
        present: torch.Tensor,
        *,
        temperature: float,
        full_logprobs: bool,
        feature_layers: Sequence[str] = (),
        keep_hidden: bool = False,
    ) -> Scores:
        """The teacher's scores of the completions after each of ``texts`` (no gradient)."""
        ...

    @staticmethod
    def rollout_logs(roll: Rollout) -> dict[str, float]:
        """``completion/length`` and ``completion/truncated`` of a rollout, for a ``MicroResult``'s logs."""
        ...

    def nll(self, prompt: Tokenized, roll: Rollout) -> MicroResult:
        """Cross-entropy of ``roll`` under the student at temperature 1."""
        ...

    def distill(self, records: list[dict[str, Any]], prompt: Tokenized, roll: Rollout) -> MicroResult:
        """The divergence from the teacher on ``roll`` through the recipe's guards, weights and
        auxiliary terms."""
        ...
