"""Shared machinery of the built-in dataset adapters: hub/local sources, validation, limits,
the MCQA record builder and contrastive-negative support."""

from __future__ import annotations

import abc
import itertools
import json
import os
from pathlib import Path
from typing import Any, ClassVar
from collections.abc import Iterable, Iterator, Sequence

from unisd.components.kinds import DatasetAdapter
from unisd.api import validate_records
from unisd.api import UserError
from unisd_plugins.datasets import negatives, prompts


class DatasetSourceError(UserError, RuntimeError):
    """The source data cannot be read (hub offline, file missing, unknown layout)."""


def hub_offline() -> bool:
    """Whether the environment forbids Hugging Face hub access."""
    return any(
        os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
        for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def load_hub_split(adapter: str, repo_id: str, name: str | None, split: str) -> list[dict[str, Any]]:
    """Rows of ``repo_id`` (config ``name``) split ``split`` via ``datasets.load_dataset``.

    Any failure (offline, no network, unknown split) becomes a :class:`DatasetSourceError` that
    tells the user to pass local files with ``data.dataset.path``.
    """
    hint = (
        f"Download the upstream files and pass their location as data.dataset.path "
        f"(see `unisd plugins list`), e.g. data: {{dataset: {{type: {adapter}, path: /data/{adapter}}}}}."
    )
    try:
        import datasets  # heavy: imported only when the hub is used
    except ImportError as exc:  # pragma: no cover - datasets is a core dependency
        raise DatasetSourceError(f"dataset '{adapter}': the 'datasets' package is missing; {hint}") from exc
    offline = hub_offline()
    try:
        ds = datasets.load_dataset(repo_id, name, split=split)
    except Exception as exc:
        why = (
            "the Hugging Face hub is offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set) and no cached copy was found"
            if offline
            else f"loading it failed: {type(exc).__name__}: {exc}"
        )
        raise DatasetSourceError(
            f"dataset '{adapter}' needs {repo_id}"
            + (f" ({name})" if name else "")
            + f" split '{split}' from the Hugging Face hub, but {why}. {hint}"
        ) from exc
    return [dict(row) for row in ds]


def local_path(adapter: str, path: str) -> Path:
    """``path`` expanded and checked to exist."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetSourceError(f"dataset '{adapter}': data.dataset.path {str(p)!r} does not exist")
    return p


def read_json_or_jsonl(path: Path) -> list[Any]:
    """A JSON list/dict file or a JSONL file (one value per line), UTF-8."""
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if path.suffix == ".jsonl" or not stripped.startswith(("[", "{")):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return data if isinstance(data, list) else [data]


class BaseAdapter(DatasetAdapter):
    """Base of the built-in adapters.

    Subclasses implement :meth:`build` (all records of the configured split, deterministic, in
    dataset order). :meth:`load` applies ``limit`` and validates with
    :func:`unisd.data.records.validate_records`. The engine may set ``on_bad_record``,
    ``rejects_path`` and ``slots`` before calling :meth:`load`. Contrastive negatives: :meth:`negative_requests`
    and :meth:`render_negative` (spec §2c), dispatched on ``record["meta"]["task"]``.
    """

    task: ClassVar[str] = "qa"

    @abc.abstractmethod
    def build(self) -> Iterable[dict[str, Any]]:
        """Yield the split's records (before ``limit`` and validation)."""

    def load(self) -> list[dict[str, Any]]:
        records: Iterator[dict[str, Any]] = iter(self.build())
        if self.config.limit is not None:
            records = itertools.islice(records, self.config.limit)
        source = f"dataset '{self.config.type}' (split {self.config.split})"
        return validate_records(
            records, source=source, on_bad_record=self.on_bad_record, rejects_path=self.rejects_path, slots=self.slots
        ).records

    def is_correct(self, record: dict[str, Any], completion: str) -> bool | None:
        """Answer check by ``meta.task`` (see :mod:`unisd_plugins.datasets.answers`)."""
        from unisd_plugins.datasets.answers import is_correct

        return is_correct(record, completion)

    # -- contrastive negatives (spec §2c) -----------------------------------------------------
    def negative_requests(self, record: dict[str, Any], num: int = negatives.NUM_NEGATIVES) -> list[str]:
        """Prompts asking the model for ``num`` plausible-but-wrong demonstrations of ``record``."""
        return negatives.negative_requests(record, num)

    def render_negative(self, record: dict[str, Any], generated_text: str, index: int) -> str:
        """The bad-teacher prompt for the ``index``-th generated negative (same template as the teacher)."""
        return negatives.render_negative(record, generated_text, index)


def mcqa_record(
    *,
    rid: str,
    question: str,
    choices: Sequence[str],
    correct_index: int,
    explanation: str | None,
    index: int,
    seed: int,
    context: str | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A multiple-choice record with options shuffled by ``Random(seed + index)`` (spec §5.1)."""
    options, letter = prompts.shuffle_options(list(choices), correct_index, seed, index)
    student = prompts.mcqa_student_prompt(question, options, context)
    explanation = (explanation or "").strip() or None
    return {
        "id": rid,
        "prompt": student,
        "teacher_prompt": prompts.render_teacher_prompt(student, letter, explanation),
        "gold": prompts.sft_gold_mcqa(letter, explanation),
        "answer": letter,
        "meta": {
            "task": "mcqa",
            "question": question,
            "choices": options,
            "correct_letter": letter,
            "correct_answer": choices[correct_index],
            "num_choices": len(choices),
            "explanation": explanation or "",
            **(meta or {}),
        },
        "demo": prompts.mcqa_demo_block(question, options, letter, explanation),
        "retrieval_text": question,
    }


def split_alias(split: str, aliases: dict[str, str]) -> str:
    """The split name after aliases (e.g. ``dev`` → ``validation``)."""
    return aliases.get(split, split)
