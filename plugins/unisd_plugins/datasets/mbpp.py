"""MBPP (google-research-datasets/mbpp): ``full`` config for training, ``sanitized`` for eval."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal
from collections.abc import Iterable

from pydantic import Field

from unisd.components.kinds import DatasetConfig
from unisd_plugins.datasets import prompts
from unisd_plugins.datasets.base import (
    BaseAdapter,
    DatasetSourceError,
    load_hub_split,
    local_path,
    read_json_or_jsonl,
    split_alias,
)

HUB_ID = "google-research-datasets/mbpp"
#: Standard task-id ranges of the splits (both configs use them).
SPLIT_IDS: dict[str, range] = {
    "prompt": range(1, 11),
    "test": range(11, 511),
    "validation": range(511, 601),
    "train": range(601, 975),
}
LOCAL_FILES = {"full": "mbpp.jsonl", "sanitized": "sanitized-mbpp.json"}


class MBPPConfig(DatasetConfig):
    """MBPP. ``path``: ``mbpp.jsonl`` / ``sanitized-mbpp.json`` or a folder holding them."""

    type: str = "mbpp"
    variant: Literal["full", "sanitized"] | None = Field(
        None, description="hub config; default: 'full' for train, 'sanitized' otherwise"
    )


class MBPPAdapter(BaseAdapter):
    """Python programming problems; gold = the reference code with its name fixed to the asserts'."""

    task: ClassVar[str] = "code"
    Config: ClassVar[type[DatasetConfig]] = MBPPConfig
    config: MBPPConfig

    def _split(self) -> str:
        split = split_alias(self.config.split, {"dev": "validation", "val": "validation", "eval": "test"})
        if split not in SPLIT_IDS:
            raise DatasetSourceError(
                f"dataset 'mbpp': unknown split {self.config.split!r}; use one of {', '.join(SPLIT_IDS)}"
            )
        return split

    def _variant(self) -> str:
        return self.config.variant or ("full" if self._split() == "train" else "sanitized")

    def rows(self) -> list[dict[str, Any]]:
        split, variant = self._split(), self._variant()
        if self.config.path is None:
            return load_hub_split("mbpp", HUB_ID, variant, split)
        path = local_path("mbpp", self.config.path)
        if path.is_dir():
            path = path / LOCAL_FILES[variant]
            if not path.is_file():
                raise DatasetSourceError(
                    f"dataset 'mbpp': {path} not found (variant {variant!r} expects {LOCAL_FILES[variant]})"
                )
        ids = SPLIT_IDS[split]
        return [r for r in read_json_or_jsonl(Path(path)) if int(r["task_id"]) in ids]

    def build(self) -> Iterable[dict[str, Any]]:
        for row in self.rows():
            yield mbpp_record(row)


def mbpp_record(row: dict[str, Any]) -> dict[str, Any]:
    """A training record from an MBPP row (either config's field names)."""
    text = (row.get("prompt") or row.get("text") or "").strip()
    tests = list(row["test_list"])
    code = row["code"].replace("\r\n", "\n")
    fixed = prompts.fix_function_name(code, tests)
    defined = prompts.function_names_in_code(fixed)
    entry = prompts.function_name_from_tests(tests, defined) or (defined[0] if defined else "")
    student = prompts.mbpp_student_prompt(text, fixed, tests)
    setup = row.get("test_setup_code") or "\n".join(row.get("test_imports") or [])
    return {
        "id": f"mbpp/{row['task_id']}",
        "prompt": student,
        "teacher_prompt": prompts.render_teacher_prompt(student, fixed),
        "gold": prompts.sft_gold_code(fixed),
        "answer": fixed,
        "meta": {
            "task": "code",
            "task_id": int(row["task_id"]),
            "text": text,
            "tests": tests,
            "test_setup": setup,
            "entry_point": entry,
            "signature": prompts.function_signature(fixed, entry or None),
            "renamed": fixed != code,
        },
        "demo": prompts.mbpp_demo_block(student, tests, fixed),
        "retrieval_text": student,
    }
