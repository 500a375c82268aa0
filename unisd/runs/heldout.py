"""The held-out check of a run: greedy answers to records of another split, scored by the dataset
adapter's own ``is_correct``, before and after training."""

from __future__ import annotations

import logging
from typing import Any


from unisd.engine.decoding import generate_texts

log = logging.getLogger("unisd.heldout")


def heldout_records(recipe, registries) -> tuple[Any, list[dict[str, Any]]]:
    """The adapter and ``evaluation.heldout`` records of ``evaluation.heldout_split``."""
    cfg = recipe.data.dataset.model_copy(
        update={"split": recipe.evaluation.heldout_split, "limit": recipe.evaluation.heldout}
    )
    adapter = registries.datasets.get(cfg.type)(cfg)
    return adapter, list(adapter.load())[: recipe.evaluation.heldout]


def heldout_accuracy(
    model,
    tokenizer,
    adapter,
    records,
    max_new_tokens: int,
    device=None,
    batch_size: int = 8,
    progress: str | None = None,
) -> dict[str, Any]:
    """Accuracy over the records the adapter can score, plus the answers (for inspection);
    ``progress``: a progress bar's description (on a terminal)."""
    answers = generate_texts(
        model,
        tokenizer,
        [r["prompt"] for r in records],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    verdicts = [adapter.is_correct(r, a) for r, a in zip(records, answers, strict=True)]
    scored = [v for v in verdicts if v is not None]
    return {
        "accuracy": sum(scored) / len(scored) if scored else None,
        "n": len(scored),
        "max_new_tokens": max_new_tokens,
        "answers": [
            {"id": r["id"], "answer": a, "correct": v} for r, a, v in zip(records, answers, verdicts, strict=True)
        ],
    }


def heldout_max_new_tokens(recipe) -> int:
    """The generation budget of ``recipe``'s held-out check."""
    return recipe.evaluation.heldout_max_new_tokens or recipe.generation.max_new_tokens


def recipe_heldout_accuracy(
    model, tokenizer, adapter, records, recipe, device=None, when: str | None = None
) -> dict[str, Any]:
    """:func:`heldout_accuracy` with ``recipe``'s budget, batch size and MCQA rule (one rule for the
    trainer's check and the replication's shared base check), with a progress bar where the recipe
    shows one and ``when`` names the check ("before", "after"; none inside the training bar)."""
    from unisd.components.evaluators import eval_settings

    desc = f"held-out check {when}" if when and recipe.logging.progress_bar else None
    with eval_settings(mcqa_rule=recipe.evaluation.mcqa_rule):
        return heldout_accuracy(
            model,
            tokenizer,
            adapter,
            records,
            heldout_max_new_tokens(recipe),
            device=device,
            batch_size=recipe.evaluation.heldout_batch_size,
            progress=desc,
        )
