"""Multi-teacher agreement: weights from the spread of the teacher's log-probs of the sampled
tokens under K auxiliary contexts (spec §2a).

Token level: d = stat_k(A) → scale by the masked ``quantile`` of d (floored at 1e-6), cap at
``cap`` → w = max(floor, 1/(1 + γ·d̃)). Sequence level: S_k = length-normalised log-likelihood per
context → D = stat_k(S) → w_b = max(1e-6, exp(−γ·D)).

``normalization: fixed`` (default) applies sequence weights across the batch so they act;
``reference`` folds them into the per-sequence normalisation, where they cancel exactly as in the
reference implementation (spec §7.2).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from unisd.components.base import Requirements
from unisd.components.batch import DistillBatch
from unisd.components.kinds import DisagreementMeasure, Weights
from unisd.api import series
from unisd_plugins.agreement.config import AgreementConfig


class Agreement(DisagreementMeasure):
    """Weights from the disagreement of K auxiliary teacher contexts; subclass and override
    :meth:`token_statistic` / :meth:`sequence_statistic` for a new disagreement statistic."""

    Config: ClassVar = AgreementConfig
    activity_metrics: ClassVar = ("weight_mean", "weight_std", "weight_min", "below_0.9", "disagreement_mean")

    def inert_reason(self, history, steps):
        c = self.config
        if c.granularity == "sequence" and c.normalization == "reference":
            return "normalization: reference — sequence weights cancel in the per-sequence mean (spec §7.2)"
        if c.gamma == 0:
            return "gamma 0: every weight is 1"
        lowest = series(history, f"{self.name}/weight_min")
        if lowest and min(lowest) >= INERT_WEIGHT:
            why = f"every {c.granularity} weight stayed ≥ {min(lowest):.3f}"
            if c.granularity == "token":  # the smallest weight the formula can give, floor aside
                why += f" (gamma {c.gamma:g} bounds them at ≥ 1/(1 + gamma·cap) = {1 / (1 + c.gamma * c.cap):.3f})"
            return why
        return None

    def requirements(self) -> Requirements:
        return Requirements(record_fields=frozenset({"aux_contexts"}), prompt_fields=frozenset({"aux_contexts"}))

    def setup(self, run) -> None:
        builders = run.registries.context_builders
        cfg = builders.get(self.config.contexts["type"]).Config.model_validate(self.config.contexts)
        builder = run.adopt(builders.get(cfg.type)(cfg))
        builder.setup(run)
        contexts = builder.build(run.records, run=run)
        for rec, ctx in zip(run.records, contexts, strict=True):
            rec["aux_contexts"] = list(ctx)
        self.k = cfg.k

    # -- statistics over the context axis (dim 0) ---------------------------------------------------------
    def token_statistic(self, logps: torch.Tensor) -> torch.Tensor:
        """(K, B, T) log-probs → (B, T) disagreement (0 = full agreement)."""
        return _spread(logps, self.config.statistic, unbiased=True)

    def sequence_statistic(self, seq_logps: torch.Tensor) -> torch.Tensor:
        """(K, B) length-normalised log-likelihoods → (B,) disagreement."""
        return _spread(seq_logps, self.config.statistic, unbiased=False)

    # -- weights -------------------------------------------------------------------------------------------
    def context_logps(self, batch: DistillBatch) -> torch.Tensor:
        """A (K, B, T): teacher log-probs of the sampled tokens under each auxiliary context,
        from one batched forward of K·B rows."""
        ctxs = batch.record_field("aux_contexts")
        k = len(ctxs[0])
        if any(len(c) != k for c in ctxs):
            raise ValueError("records carry different numbers of aux_contexts")
        texts = [ctxs[b][j] for j in range(k) for b in range(batch.batch_size)]  # context-major
        scores = batch.score_contexts(texts, temperature=self.config.temperature)
        return scores.token_logps.view(k, batch.batch_size, -1)

    def weights(self, batch: DistillBatch) -> Weights:
        A = self.context_logps(batch).float()
        mask = batch.completion_mask
        valid = mask > 0
        if self.config.granularity == "token":
            d = self.token_statistic(A)
            if valid.any():
                scale = torch.quantile(d[valid], self.config.quantile).clamp(min=1e-6)
                d_tilde = (d / scale).clamp(max=self.config.cap)
                w = (1.0 / (1.0 + self.config.gamma * d_tilde)).clamp(min=self.config.floor)
            else:
                w = torch.ones_like(d)
            return Weights(token=w, logs={"disagreement_mean": _avg(d, mask), **_spread_logs(w[valid])})
        seq = (A * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)  # (K, B)
        D = self.sequence_statistic(seq)
        w_b = torch.exp(-self.config.gamma * D).clamp(min=1e-6)
        logs = {"disagreement_mean": float(D.mean()), **_spread_logs(w_b)}
        if self.config.normalization == "reference":
            return Weights(token=w_b.unsqueeze(-1) * mask, logs=logs)
        return Weights(sequence=w_b, logs=logs)


def _spread(x: torch.Tensor, statistic: str, unbiased: bool) -> torch.Tensor:
    if statistic == "variance":
        return x.var(dim=0, unbiased=unbiased)
    if statistic == "std":
        return x.std(dim=0, unbiased=unbiased)
    if statistic == "range":
        return x.max(dim=0).values - x.min(dim=0).values
    if statistic == "entropy":
        q = torch.softmax(x, dim=0)  # normalised probabilities across the K contexts
        ent = -(q * torch.log(q.clamp(min=1e-30))).sum(0)
        return math.log(x.shape[0]) - ent
    raise ValueError(f"unknown statistic {statistic!r}")


#: weights that never fall below this leave the loss as it was: the measure is inert
INERT_WEIGHT = 0.99


def _spread_logs(w: torch.Tensor) -> dict[str, float]:
    """Mean, standard deviation, minimum and share below 0.9 of the weights given (token or sequence)."""
    if w.numel() == 0:
        return {"weight_mean": 1.0, "weight_std": 0.0, "weight_min": 1.0, "below_0.9": 0.0}
    w = w.detach().float()
    return {
        "weight_mean": float(w.mean()),
        "weight_std": float(w.std(unbiased=False)),
        "weight_min": float(w.min()),
        "below_0.9": float((w < 0.9).float().mean()),
    }


def _avg(x: torch.Tensor, mask: torch.Tensor) -> float:
    return float((x * mask).sum() / mask.sum().clamp(min=1.0))
