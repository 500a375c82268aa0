"""Token-level contrastive loss (spec §2c).

pos = |ℓS − ℓT|, neg = |ℓS − ℓN| on the sampled tokens, h = max(0, μ + pos − neg), averaged per
sequence over completion tokens. ℓN is the teacher's log-prob under a negative context: the
teacher template filled with a plausible-but-wrong demonstration (one template for positives and
negatives, spec §7.10). Records may bring their own ``negative_prompt``; otherwise negatives are
generated once per (model, training split, prompts) and cached.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import torch
from pydantic import StrictStr

from unisd.components.base import RecordSlot, Requirements
from unisd.components.kinds import AuxiliaryLoss, LossTerm
from unisd.api import series
from unisd.api import masked_mean
from unisd_plugins.contrastive.negatives import NegativesCache, cache_key, choose, generate_negatives, hf_generator
from unisd_plugins.contrastive.config import ContrastiveConfig

log = logging.getLogger("unisd.contrastive")


class TokenContrastive(AuxiliaryLoss):
    """Hinge on the distance to the good teacher versus a bad teacher, per token."""

    Config: ClassVar = ContrastiveConfig
    activity_metrics: ClassVar = ("active", "margin", "pos_dist", "neg_dist")
    record_slots: ClassVar = {
        "negative_prompt": RecordSlot(
            StrictStr,
            rendered_from="negative_reference",
            description="the bad teacher's user turn (generated when absent)",
        ),
        "negative_reference": RecordSlot(
            StrictStr, description="a wrong reference; data.teacher_template renders it into negative_prompt"
        ),
    }

    def requirements(self) -> Requirements:
        return Requirements(
            record_fields=frozenset({"negative_prompt"}),
            prompt_fields=frozenset({"negative_prompt"}),
            token_logp_grad=True,
        )

    def setup(self, run) -> None:
        records = run.records
        missing = [r for r in records if not r.get("negative_prompt")]
        if not missing:
            return
        adapter = run.dataset_adapter
        if not (hasattr(adapter, "negative_requests") and hasattr(adapter, "render_negative")):
            raise ValueError(
                f"contrastive: {len(missing)} records have no negative_prompt and dataset "
                f"{run.recipe.data.dataset.type!r} cannot generate negatives"
            )
        c = self.config
        requests = [list(adapter.negative_requests(r))[: c.negatives_per_item] for r in missing]
        params = {"max_new_tokens": c.max_new_tokens, "temperature": c.temperature, "seed": c.seed}
        key = cache_key(run.recipe.model.name_or_path, missing, requests, params)
        cache = NegativesCache(run.cache_dir / "negatives" / f"{key}.json")
        gen = hf_generator(
            run.model,
            run.tokenizer,
            run.device,
            temperature=c.temperature,
            max_new_tokens=c.max_new_tokens,
            seed=c.seed,
        )
        negatives = generate_negatives(missing, requests, gen, cache, progress=run.recipe.logging.progress_bar)
        picks = choose(missing, negatives, c.seed)
        dropped = []
        for rec, pick in zip(missing, picks, strict=True):
            if pick is None:
                dropped.append(rec["id"])
            else:
                rec["negative_prompt"] = adapter.render_negative(rec, pick[1], pick[0])
        if dropped:
            log.warning(
                "contrastive: %d records without any usable negative were dropped (first: %s)",
                len(dropped),
                dropped[:3],
            )
            keep = set(dropped)
            run.records[:] = [r for r in records if r["id"] not in keep]
        self.dropped = len(dropped)  # records left out for want of a negative (also logged above)

    def compute(self, batch) -> LossTerm:
        neg = batch.score_contexts(batch.record_field("negative_prompt"), temperature=batch.temperature)
        ls = batch.student.token_logps
        lt = batch.teacher.token_logps.detach()
        ln = neg.token_logps.detach()
        pos_d = (ls - lt).abs()
        neg_d = (ls - ln).abs()
        hinge = torch.relu(self.config.margin + pos_d - neg_d)
        mask = batch.completion_mask
        denom = mask.sum().clamp(min=1)
        return LossTerm(
            self.name,
            masked_mean(hinge, mask),
            {
                "pos_dist": float((pos_d.detach() * mask).sum() / denom),
                "neg_dist": float((neg_d.detach() * mask).sum() / denom),
                "margin": float(
                    ((neg_d - pos_d).detach() * mask).sum() / denom
                ),  # achieved: neg − pos, the hinge wants ≥ μ
                "active": float(((hinge.detach() > 0).float() * mask).sum() / denom),
            },
        )

    def inert_reason(self, history, steps):
        active = series(history, f"{self.name}/active")
        if active and max(active) == 0:
            return (
                f"the hinge was never active: on every token the student sat closer to the good teacher than to "
                f"the bad one by more than margin {self.config.margin:g}"
            )
        return None
