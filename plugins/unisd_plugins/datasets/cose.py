"""CoS-E v1.11 (Salesforce/cos_e): CommonsenseQA questions with abstractive explanations.

Local ``path`` accepts (a) a JSONL file in the hub export layout (``id, question, choices, answer,
abstractive_explanation``) or a folder with ``{split}.jsonl``; (b) the raw salesforce/cos-e layout:
a CoS-E file or folder (``cose_{train,dev}_v1.11.jsonl``: ``id, explanation.open-ended``) joined by
id with CommonsenseQA question files (``{train,dev}_rand_split.jsonl``) found at ``cqa_path`` or
in a ``commonsenseqa*`` folder next to ``path``. Only ids present in both are kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar
from collections.abc import Iterable

from pydantic import Field

from unisd.components.kinds import DatasetConfig
from unisd_plugins.datasets.base import (
    BaseAdapter,
    DatasetSourceError,
    load_hub_split,
    local_path,
    mcqa_record,
    read_json_or_jsonl,
    split_alias,
)

HUB_ID, HUB_CONFIG = "Salesforce/cos_e", "v1.11"
_SPLITS = {"dev": "validation", "val": "validation", "test": "validation"}


class CoSEConfig(DatasetConfig):
    """CoS-E v1.11 (train / validation)."""

    type: str = "cose"
    seed: int = Field(42, description="option shuffling uses Random(seed + index)")
    cqa_path: str | None = Field(
        None, description="CommonsenseQA question files (folder or file) for the raw CoS-E layout"
    )


class CoSEAdapter(BaseAdapter):
    """Commonsense MCQA; reasoning = the abstractive (open-ended) explanation."""

    task: ClassVar[str] = "mcqa"
    Config: ClassVar[type[DatasetConfig]] = CoSEConfig
    config: CoSEConfig

    def _split(self) -> str:
        split = split_alias(self.config.split, _SPLITS)
        if split not in ("train", "validation"):
            raise DatasetSourceError(f"dataset 'cose': unknown split {self.config.split!r}; use train or validation")
        return split

    def rows(self) -> list[dict[str, Any]]:
        """Rows in the hub layout (``question``, ``choices``, ``answer``, ``abstractive_explanation``)."""
        split = self._split()
        if self.config.path is None:
            return load_hub_split("cose", HUB_ID, HUB_CONFIG, split)
        path = local_path("cose", self.config.path)
        file = _pick_file(path, split)
        rows = read_json_or_jsonl(file)
        if rows and isinstance(rows[0].get("explanation"), dict):
            return _join_raw(rows, _questions(self._cqa_file(path, split)))
        if rows and not {"question", "choices", "answer"} <= rows[0].keys():
            raise DatasetSourceError(
                f"dataset 'cose': {file} is neither the hub export layout nor the raw CoS-E layout"
            )
        return rows

    def _cqa_file(self, path: Path, split: str) -> Path:
        name = "train_rand_split.jsonl" if split == "train" else "dev_rand_split.jsonl"
        if self.config.cqa_path is not None:
            cqa = local_path("cose", self.config.cqa_path)
            return cqa if cqa.is_file() else _must_exist(cqa / name)
        base = path if path.is_dir() else path.parent
        for folder in (base, base.parent, base.parent.parent):
            for cand in [folder, *sorted(folder.glob("commonsenseqa*"))]:
                if (cand / name).is_file():
                    return cand / name
        raise DatasetSourceError(
            f"dataset 'cose': the raw CoS-E layout needs CommonsenseQA question files ({name}); "
            "pass data.dataset.cqa_path"
        )

    def build(self) -> Iterable[dict[str, Any]]:
        split = self._split()
        for index, row in enumerate(self.rows()):
            choices = [str(c) for c in row["choices"]]
            if row["answer"] not in choices:
                raise DatasetSourceError(
                    f"dataset 'cose': row {index} (id {row.get('id')}) answer {row['answer']!r} is not among its choices"
                )
            yield mcqa_record(
                rid=f"cose/{row.get('id') or f'{split}-{index}'}",
                question=row["question"],
                choices=choices,
                correct_index=choices.index(row["answer"]),
                explanation=row.get("abstractive_explanation"),
                index=index,
                seed=self.config.seed,
                meta={"dataset": "cose", "source_id": row.get("id", "")},
            )


def _pick_file(path: Path, split: str) -> Path:
    if path.is_file():
        return path
    short = "train" if split == "train" else "dev"
    for name in (f"cose_{short}_v1.11.jsonl", f"cose_{short}_v1.0.jsonl", f"{split}.jsonl", f"{short}.jsonl"):
        if (path / name).is_file():
            return path / name
    raise DatasetSourceError(
        f"dataset 'cose': no {split} file in {path} (expected cose_{short}_v1.11.jsonl or {split}.jsonl)"
    )


def _must_exist(path: Path) -> Path:
    if not path.is_file():
        raise DatasetSourceError(f"dataset 'cose': {path} not found")
    return path


def _questions(file: Path) -> dict[str, dict[str, Any]]:
    with file.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return {r["id"]: r for r in rows}


def _join_raw(cose_rows: list[dict[str, Any]], questions: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Raw CoS-E explanations joined with CommonsenseQA questions, in CoS-E file order."""
    out = []
    for row in cose_rows:
        q = questions.get(row["id"])
        if q is None or "answerKey" not in q:
            continue
        choices = sorted(q["question"]["choices"], key=lambda c: c["label"])
        labels = [c["label"] for c in choices]
        out.append(
            {
                "id": row["id"],
                "question": q["question"]["stem"],
                "choices": [c["text"] for c in choices],
                "answer": choices[labels.index(q["answerKey"])]["text"],
                "abstractive_explanation": row["explanation"].get("open-ended", ""),
                "extractive_explanation": row["explanation"].get("selected", ""),
            }
        )
    return out
