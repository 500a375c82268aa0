"""ScienceQA (derek-thomas/ScienceQA), text-only questions, lecture as ``Context:``.

Local ``path`` = the official lupantech/ScienceQA layout: a folder with ``problems.json`` (pid →
problem) and ``pid_splits.json`` (split → pids), or the ``problems.json`` file itself;
``pid_splits`` overrides where the split file is.
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
    split_alias,
)

HUB_ID = "derek-thomas/ScienceQA"
_OFFICIAL = {"validation": "val"}  # hub split name → official pid_splits key


class ScienceQAConfig(DatasetConfig):
    """ScienceQA (train / validation / test)."""

    type: str = "scienceqa"
    seed: int = Field(42, description="option shuffling uses Random(seed + index)")
    text_only: bool = Field(True, description="keep only questions without an image")
    include_lecture: bool = Field(True, description="prepend the lecture as 'Context:' in the student prompt")
    pid_splits: str | None = Field(None, description="official pid_splits.json (default: next to problems.json)")


class ScienceQAAdapter(BaseAdapter):
    """Science MCQA; reasoning = the ``solution`` field."""

    task: ClassVar[str] = "mcqa"
    Config: ClassVar[type[DatasetConfig]] = ScienceQAConfig
    config: ScienceQAConfig

    def _split(self) -> str:
        return split_alias(self.config.split, {"val": "validation", "dev": "validation"})

    def rows(self) -> list[dict[str, Any]]:
        """Rows in the hub layout (``question, choices, answer, lecture, solution, image, …``)."""
        split = self._split()
        if self.config.path is None:
            rows = load_hub_split("scienceqa", HUB_ID, None, split)
        else:
            rows = self._local_rows(split)
        if self.config.text_only:
            rows = [r for r in rows if r.get("image") is None]
        return rows

    def _local_rows(self, split: str) -> list[dict[str, Any]]:
        path = local_path("scienceqa", self.config.path or "")
        problems_file = path / "problems.json" if path.is_dir() else path
        splits_file = (
            Path(self.config.pid_splits).expanduser()
            if self.config.pid_splits
            else problems_file.parent / "pid_splits.json"
        )
        for f in (problems_file, splits_file):
            if not f.is_file():
                raise DatasetSourceError(
                    f"dataset 'scienceqa': {f} not found (the official layout needs problems.json and pid_splits.json)"
                )
        problems = json.loads(problems_file.read_text(encoding="utf-8"))
        splits = json.loads(splits_file.read_text(encoding="utf-8"))
        key = _OFFICIAL.get(split, split)
        if key not in splits:
            raise DatasetSourceError(
                f"dataset 'scienceqa': split {split!r} not in {splits_file} (has {', '.join(splits)})"
            )
        missing = [pid for pid in splits[key] if pid not in problems]
        if missing and len(missing) == len(splits[key]):
            raise DatasetSourceError(f"dataset 'scienceqa': none of the {key} pids are in {problems_file}")
        return [{**problems[pid], "pid": pid} for pid in splits[key] if pid in problems]

    def build(self) -> Iterable[dict[str, Any]]:
        split = self._split()
        for index, row in enumerate(self.rows()):
            lecture = (row.get("lecture") or "").strip()
            pid = row.get("pid", f"{split}-{index}")
            yield mcqa_record(
                rid=f"scienceqa/{pid}",
                question=row["question"],
                choices=[str(c) for c in row["choices"]],
                correct_index=int(row["answer"]),
                explanation=row.get("solution"),
                index=index,
                seed=self.config.seed,
                context=lecture if self.config.include_lecture and lecture else None,
                meta={
                    "dataset": "scienceqa",
                    "lecture": lecture,
                    "domain": row.get("subject", ""),
                    "subdomain": row.get("topic", ""),
                    "grade": str(row.get("grade", "")),
                },
            )
