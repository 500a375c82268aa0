"""Retention and fit metrics (spec §5.3): teacher-forced, batched, fp32 log-softmax.

- gold-completion fit: PPL of the gold completion under a model;
- base-distribution retention (PPLret): log p_base of the trained model's completions,
  PPL = mean over examples of exp(−mean_t log p);
- per-token symmetric JSD(p_base, p_ft) (½KL(p‖m) + ½KL(q‖m), m = mean; ≤ log 2), averaged over the
  completion, then over examples;
- reverse versions on base-model completions, and paired statistics against a reference run (SFT).

Prompts are rendered with the chat template (one user turn + generation prompt) and front-truncated
to ``max_prompt_tokens``; completions are never truncated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from unisd.engine.decoding import generate_texts, prompt_ids

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


@dataclass
class Scored:
    """Per-example results of one teacher-forced pass."""

    mean_logp: list[float]  # per example, over completion tokens (model A)
    jsd: list[float] | None = None  # per example mean JSD(A, B), when a second model was given
    mean_logp_b: list[float] | None = None


def _batches(
    prompts: Sequence[str],
    completions: Sequence[str],
    tokenizer: Any,
    batch_size: int,
    max_prompt_tokens: int | None,
    chat: bool,
):
    for start in range(0, len(prompts), batch_size):
        seqs, spans = [], []
        chunk = prompts[start : start + batch_size]  # the prompts as generate_texts encodes them
        for p_ids, c in zip(
            prompt_ids(tokenizer, chunk, chat=chat), completions[start : start + batch_size], strict=True
        ):
            if max_prompt_tokens:
                p_ids = p_ids[-max_prompt_tokens:]
            c_ids = tokenizer(c, add_special_tokens=False)["input_ids"]
            seqs.append(p_ids + c_ids)
            spans.append((len(p_ids), len(c_ids)))
        width = max(len(s) for s in seqs)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):  # right padding: positions of real tokens start at 0
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, : len(s)] = 1
        yield ids, mask, spans


def _completion_logps(
    model: Any, ids: torch.Tensor, mask: torch.Tensor, spans: list[tuple[int, int]]
) -> list[torch.Tensor]:
    """Per example: fp32 log-softmax rows [T_c, V] predicting each completion token."""
    device = next(model.parameters()).device
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    rows = []
    for i, (p_len, c_len) in enumerate(spans):
        if c_len == 0:
            rows.append(torch.empty(0, logits.shape[-1]))
            continue
        rows.append(F.log_softmax(logits[i, p_len - 1 : p_len - 1 + c_len].float(), dim=-1).cpu())
    return rows


def token_jsd(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """Symmetric Jensen–Shannon divergence per row of two log-distributions (fp32, in nats)."""
    logp, logq = logp.float(), logq.float()
    logm = torch.logsumexp(torch.stack([logp, logq]), dim=0) - math.log(2.0)
    kl_pm = (logp.exp() * (logp - logm)).sum(-1)
    kl_qm = (logq.exp() * (logq - logm)).sum(-1)
    return (0.5 * (kl_pm + kl_qm)).clamp(min=0.0, max=math.log(2.0))


@torch.no_grad()
def score_completions(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    completions: Sequence[str],
    other: Any | None = None,
    *,
    batch_size: int = 2,
    max_prompt_tokens: int | None = None,
    chat: bool = True,
    progress: str | None = "retention scores",
) -> Scored:
    """Mean log p_model(completion | prompt) per example; with ``other``, also JSD and its log p.
    ``progress``: a progress bar's description (shown on a terminal; None: none)."""
    from tqdm.auto import tqdm

    if len(prompts) != len(completions):
        raise ValueError("prompts and completions must have the same length")
    out = Scored([], [] if other is not None else None, [] if other is not None else None)
    bar = tqdm(
        total=len(prompts), desc=progress, unit="example", dynamic_ncols=True, disable=None if progress else True
    )
    for ids, mask, spans in _batches(prompts, completions, tokenizer, batch_size, max_prompt_tokens, chat):
        bar.update(len(spans))
        rows_a = _completion_logps(model, ids, mask, spans)
        rows_b = _completion_logps(other, ids, mask, spans) if other is not None else None
        for i, (p_len, c_len) in enumerate(spans):
            target = ids[i, p_len : p_len + c_len]
            lp = rows_a[i].gather(-1, target[:, None]).squeeze(-1) if c_len else torch.empty(0)
            out.mean_logp.append(float(lp.mean()) if c_len else float("nan"))
            if rows_b is not None:
                lq = rows_b[i].gather(-1, target[:, None]).squeeze(-1) if c_len else torch.empty(0)
                out.mean_logp_b.append(float(lq.mean()) if c_len else float("nan"))  # type: ignore[union-attr]
                out.jsd.append(float(token_jsd(rows_a[i], rows_b[i]).mean()) if c_len else float("nan"))  # type: ignore[union-attr]
    bar.close()
    return out


def _clean(values: Sequence[float]) -> list[float]:
    return [v for v in values if not math.isnan(v)]


def logp_stats(mean_logps: Sequence[float]) -> dict[str, float]:
    """Mean, std and quantiles of per-example mean log-probs, and PPL = mean_i exp(−mean log p_i)."""
    vals = _clean(mean_logps)
    if not vals:
        return {"n": 0}
    t = torch.tensor(vals, dtype=torch.float64)
    stats = {
        "n": len(vals),
        "mean_logp": float(t.mean()),
        "std_logp": float(t.std(unbiased=False)),
        "ppl": float(torch.exp(-t).mean()),
    }
    stats.update({f"q{int(q * 100)}": float(torch.quantile(t, q)) for q in QUANTILES})
    return stats


def jsd_stats(values: Sequence[float]) -> dict[str, float]:
    vals = _clean(values)
    if not vals:
        return {"n": 0}
    t = torch.tensor(vals, dtype=torch.float64)
    return {"n": len(vals), "mean": float(t.mean()), "std": float(t.std(unbiased=False)), "max": float(t.max())}


def retention_report(
    model: Any,
    base_model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    completions: Sequence[str],
    gold: Sequence[str] | None = None,
    *,
    base_completions: Sequence[str] | None = None,
    batch_size: int = 2,
    max_prompt_tokens: int | None = None,
    chat: bool = True,
) -> dict[str, Any]:
    """Fit and retention of a trained ``model`` relative to ``base_model`` (same tokenizer).

    ``completions`` are the trained model's outputs for ``prompts``; ``gold`` the reference
    completions (gold fit, under the trained and the base model); ``base_completions`` the base
    model's outputs (reverse retention: log p_model(y_base | x) and JSD on y_base).
    """
    kw: dict[str, Any] = {"batch_size": batch_size, "max_prompt_tokens": max_prompt_tokens, "chat": chat}
    fwd = score_completions(base_model, tokenizer, prompts, completions, other=model, **kw)
    report: dict[str, Any] = {
        "n": len(prompts),
        "retention": logp_stats(fwd.mean_logp),
        "jsd": jsd_stats(fwd.jsd or []),
        "per_example": {"base_logp_of_model_completion": fwd.mean_logp, "jsd": fwd.jsd},
    }
    if gold is not None:
        fit = score_completions(model, tokenizer, prompts, gold, other=base_model, **kw)
        fit_base = logp_stats(fit.mean_logp_b or [])
        report["gold_fit"] = logp_stats(fit.mean_logp)
        report["gold_fit_base"] = fit_base
        report["per_example"]["model_logp_of_gold"] = fit.mean_logp
    if base_completions is not None:
        rev = score_completions(model, tokenizer, prompts, base_completions, other=base_model, **kw)
        report["reverse_retention"] = logp_stats(rev.mean_logp)
        report["reverse_jsd"] = jsd_stats(rev.jsd or [])
        report["per_example"]["model_logp_of_base_completion"] = rev.mean_logp
    return report


def paired_stats(method: dict[str, Any], reference: dict[str, Any]) -> dict[str, float]:
    """Per-example comparison of two reports on the same prompts (e.g. a UniSD run vs SFT).

    ``jsd_lower_pct``: % of samples whose JSD to the base is lower than the reference's;
    ``base_logp_higher_pct``: % of samples where the base gives the method's completion a higher
    mean log-prob than the reference's completion.
    """

    def pct(a: Sequence[float] | None, b: Sequence[float] | None, lower: bool) -> float:
        pairs = [(x, y) for x, y in zip(a or [], b or [], strict=False) if not (math.isnan(x) or math.isnan(y))]
        if not pairs:
            return float("nan")
        return 100.0 * sum((x < y) if lower else (x > y) for x, y in pairs) / len(pairs)

    m, r = method["per_example"], reference["per_example"]
    return {
        "jsd_lower_pct": pct(m.get("jsd"), r.get("jsd"), lower=True),
        "base_logp_higher_pct": pct(
            m.get("base_logp_of_model_completion"), r.get("base_logp_of_model_completion"), lower=False
        ),
    }


def retention_for_tasks(
    model: Any,
    base_model: Any,
    tokenizer: Any,
    tasks: str | Sequence[str] | None = None,
    data_dir: str | None = None,
    limit: int | None = 50,
    *,
    max_new_tokens: int = 256,
    batch_size: int = 2,
    max_prompt_tokens: int | None = 2048,
    registries: Any = None,
) -> dict[str, Any]:
    """:func:`retention_report` per task: greedy completions of both models on the first
    ``limit`` test prompts, gold = the task's ``gold_completion`` (SFT-style). Per-example lists are
    kept. Log-likelihood tasks are left out; a task without ``docs`` or ``gold_completion`` in its
    :class:`~unisd.components.evaluators.TaskSpec` is reported as skipped."""
    from unisd.components.evaluators import DataUnavailable
    from unisd.evaluation.tasks import get_task, resolve_tasks

    out: dict[str, Any] = {}
    for task in resolve_tasks(tasks, registries):
        spec = get_task(task, registries)
        if spec.loglikelihood:
            continue
        if spec.gold_completion is None:
            out[task] = {"skipped": f"{task}: the task registers no gold_completion"}
            continue
        try:
            docs = spec.load_docs(data_dir)[:limit]
        except DataUnavailable as exc:
            out[task] = {"skipped": str(exc)}
            continue
        prompts = [d["prompt"] for d in docs]
        ys = generate_texts(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
        ys_base = generate_texts(base_model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
        out[task] = retention_report(
            model,
            base_model,
            tokenizer,
            prompts,
            ys,
            [spec.gold(d) for d in docs],
            base_completions=ys_base,
            batch_size=batch_size,
            max_prompt_tokens=max_prompt_tokens,
        )
    return out
