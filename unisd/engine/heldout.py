"""The held-out check of a run: greedy answers to records of another split, scored by the dataset
adapter's own ``is_correct``, before and after training."""

from __future__ import annotations

import logging
from typing import Any

import torch

from unisd.engine.batching import pad_token_id, tokenize_prompts
from unisd.engine.rollout import eos_ids
from unisd.engine.sharding import is_sharded

log = logging.getLogger("unisd.heldout")


def heldout_records(recipe, registries) -> tuple[Any, list[dict[str, Any]]]:
    """The adapter and ``evaluation.heldout`` records of ``evaluation.heldout_split``."""
    cfg = recipe.data.dataset.model_copy(update={"split": recipe.evaluation.heldout_split, "limit": recipe.evaluation.heldout})
    adapter = registries.datasets.get(cfg.type)(cfg)
    return adapter, list(adapter.load())[: recipe.evaluation.heldout]


@torch.no_grad()
def greedy_answers(model, tokenizer, records, max_new_tokens: int, batch_size: int = 8, device=None) -> list[str]:
    was = model.training
    model.eval()
    out: list[str] = []
    try:
        for i in range(0, len(records), batch_size):
            enc = tokenize_prompts(tokenizer, [r["prompt"] for r in records[i:i + batch_size]])
            ids = model.generate(input_ids=enc.ids.to(device), attention_mask=enc.mask.to(device), do_sample=False,
                                 max_new_tokens=max_new_tokens, pad_token_id=pad_token_id(tokenizer),
                                 eos_token_id=eos_ids(tokenizer, model), synced_gpus=is_sharded(model))
            out += tokenizer.batch_decode(ids[:, enc.ids.shape[1]:], skip_special_tokens=True)
    finally:
        model.train(was)
    return out


def heldout_accuracy(model, tokenizer, adapter, records, max_new_tokens: int, device=None, batch_size: int = 8) -> dict[str, Any]:
    """Accuracy over the records the adapter can score, plus the answers (for inspection)."""
    answers = greedy_answers(model, tokenizer, records, max_new_tokens, batch_size=batch_size, device=device)
    verdicts = [adapter.is_correct(r, a) for r, a in zip(records, answers)]
    scored = [v for v in verdicts if v is not None]
    return {"accuracy": sum(scored) / len(scored) if scored else None, "n": len(scored), "max_new_tokens": max_new_tokens,
            "answers": [{"id": r["id"], "answer": a, "correct": v} for r, a, v in zip(records, answers, verdicts)]}


def heldout_max_new_tokens(recipe) -> int:
    """The generation budget of ``recipe``'s held-out check."""
    return recipe.evaluation.heldout_max_new_tokens or recipe.generation.max_new_tokens


def recipe_heldout_accuracy(model, tokenizer, adapter, records, recipe, device=None) -> dict[str, Any]:
    """:func:`heldout_accuracy` with ``recipe``'s budget, batch size and MCQA rule (one rule for the
    trainer's check and the replication's shared base check)."""
    from unisd.evaluation.spec import eval_settings

    with eval_settings(mcqa_rule=recipe.evaluation.mcqa_rule):
        return heldout_accuracy(model, tokenizer, adapter, records, heldout_max_new_tokens(recipe), device=device,
                                batch_size=recipe.evaluation.heldout_batch_size)

