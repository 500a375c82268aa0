"""Training records: load through the dataset adapter, validate, filter, order, and slice into
micro-batches deterministically (so a resumed or multi-process run visits the same rows)."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Sequence

from unisd.data.templates import apply_teacher_template
from unisd.engine.batching import token_lengths
from unisd.errors import UserError

log = logging.getLogger("unisd.data")

PROMPT_FIELDS = ("prompt", "teacher_prompt")


def record_slots(recipe, registries) -> dict[str, Any]:
    """The record slots (:class:`~unisd.components.base.RecordSlot`) the recipe's components read,
    by name; two components declaring one slot must agree on it."""
    slots: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for cfg in recipe.components:
        who = cfg.name or cfg.type
        for name, slot in registries.component_class(cfg.type).record_slots.items():
            if name in slots and slots[name] != slot:
                raise UserError(
                    f"components {owner[name]!r} and {who!r} declare record slot {name!r} "
                    f"differently ({slots[name]} vs {slot})"
                )
            slots[name], owner[name] = slot, who
    return slots


def load_records(recipe, registries, rejects_path=None) -> tuple[Any, list[dict[str, Any]]]:
    """Instantiate the dataset adapter of ``recipe.data.dataset`` and return (adapter, records).

    Malformed records, in the core fields or in the slots the recipe's components read, stop the
    run, or with ``data.on_bad_record: skip`` go to ``rejects_path`` (counted and logged, never
    dropped silently). ``data.teacher_template`` renders ``teacher_prompt`` and the components'
    prompt slots that have a reference slot.
    """
    cfg = recipe.data.dataset
    slots = record_slots(recipe, registries)
    adapter = registries.datasets.get(cfg.type)(cfg)
    adapter.on_bad_record = recipe.data.on_bad_record
    adapter.rejects_path = rejects_path
    adapter.slots = slots
    if rejects_path is not None:  # this run's own file: a resumed run rewrites it instead of appending twice
        Path(rejects_path).unlink(missing_ok=True)
    records = list(adapter.load())
    if not records:
        where = f" from {cfg.path}" if getattr(cfg, "path", None) else ""
        raise UserError(
            f"dataset {cfg.type!r} produced no records{where}: the file is empty or every record was "
            f"rejected (see {rejects_path})"
            if rejects_path and Path(rejects_path).exists()
            else f"dataset {cfg.type!r} produced no records{where} (config: {cfg.model_dump(exclude_none=True)})"
        )
    if recipe.data.teacher_template is not None:
        rendered = {name: slot.rendered_from for name, slot in slots.items() if slot.rendered_from}
        apply_teacher_template(records, recipe.data.teacher_template, rendered)
    return adapter, records


def filter_long_prompts(
    records: list[dict[str, Any]], tokenizer, max_len: int, fields: Sequence[str] = PROMPT_FIELDS
) -> tuple[list[dict[str, Any]], dict[str, int], int]:
    """Drop rows whose chat-rendered student/teacher/auxiliary prompts exceed ``max_len`` tokens.

    Teacher context is never truncated: a row that does not fit is dropped and counted by field.
    Returns the kept rows, the drop counts by field, and the longest kept prompt (tokens).
    """
    texts: list[str] = []
    owners: list[tuple[int, str]] = []
    for i, rec in enumerate(records):
        for f in fields:
            val = rec.get(f)
            for t in val if isinstance(val, list) else [val] if val else []:
                texts.append(t)
                owners.append((i, f))
    too_long: dict[int, str] = {}
    lengths = token_lengths(tokenizer, texts) if texts else []
    for (i, f), n in zip(owners, lengths, strict=True):
        if n > max_len and i not in too_long:
            too_long[i] = f
    longest = max((n for (i, _), n in zip(owners, lengths, strict=True) if i not in too_long), default=0)
    counts: dict[str, int] = {}
    for f in too_long.values():
        counts[f] = counts.get(f, 0) + 1
    kept = [r for i, r in enumerate(records) if i not in too_long]
    if too_long:
        log.warning(
            "dropped %d of %d records whose prompts exceed max_prompt_length=%d tokens (by field: %s)",
            len(too_long),
            len(records),
            max_len,
            counts,
        )
    return kept, counts, longest


@dataclass
class Schedule:
    """Which records each micro-batch of each step uses.

    A step consumes ``batch_size · grad_accum · world_size`` records; micro-batch ``g`` (global
    index, 0 ≤ g < grad_accum · world_size) of step ``s`` holds rows ``[g·B, (g+1)·B)`` of that
    slice. Process ``r`` runs micro-batches ``r·grad_accum … (r+1)·grad_accum − 1``. Each epoch uses
    its own permutation drawn from ``seed + epoch``.
    """

    n_records: int
    batch_size: int
    grad_accum: int
    world_size: int
    epochs: int
    seed: int
    shuffle: bool
    max_steps: int | None = None

    @property
    def records_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.world_size

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.n_records // self.records_per_step)

    @property
    def total_steps(self) -> int:
        total = self.steps_per_epoch * self.epochs
        return min(total, self.max_steps) if self.max_steps else total

    def order(self, epoch: int) -> list[int]:
        idx = list(range(self.n_records))
        if self.shuffle:
            random.Random(self.seed + epoch).shuffle(idx)
        return idx

    def micro_batch(self, step: int, global_micro: int) -> list[int]:
        """Record indices of micro-batch ``global_micro`` of optimizer step ``step`` (0-based)."""
        epoch, within = divmod(step, self.steps_per_epoch)
        order = self.order(epoch)
        start = within * self.records_per_step + global_micro * self.batch_size
        rows = order[start : start + self.batch_size]
        if len(rows) < self.batch_size:  # fewer records than one step needs: wrap around
            rows = [order[(start + k) % len(order)] for k in range(self.batch_size)]
        return rows
