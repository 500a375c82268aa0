"""GSM8K (openai/gsm8k, config ``main``): grade-school math with ``#### n`` final answers.

Local ``path`` = a JSONL file (``question``, ``answer``) or a folder with ``{split}.jsonl``.
Teacher: the generic template with a = ``#### n`` and r = the chain of thought.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar
from collections.abc import Iterable

from pydantic import Field

from unisd.components.kinds import DatasetConfig
from unisd_plugins.datasets import prompts
from unisd_plugins.datasets.base import BaseAdapter, DatasetSourceError, load_hub_split, local_path, read_json_or_jsonl

HUB_ID, HUB_CONFIG = "openai/gsm8k", "main"
_CALC = re.compile(r"<<[^<>]*>>")


class GSM8KConfig(DatasetConfig):
    """GSM8K (train / test)."""

    type: str = "gsm8k"
    strip_calculator: bool = Field(True, description="remove the <<a*b=c>> calculator annotations from the solutions")


def split_answer(answer: str) -> tuple[str, str]:
    """``(chain of thought, final number)`` of a GSM8K answer; commas are removed from the number."""
    if "####" not in answer:
        raise ValueError("GSM8K answer has no '####' final-answer marker")
    cot, _, final = answer.rpartition("####")
    return cot.strip(), final.strip().replace(",", "")


class GSM8KAdapter(BaseAdapter):
    """Math word problems; answer = the number after ``####``."""

    task: ClassVar[str] = "math"
    Config: ClassVar[type[DatasetConfig]] = GSM8KConfig
    config: GSM8KConfig

    def rows(self) -> list[dict[str, Any]]:
        split = {"validation": "test", "eval": "test"}.get(self.config.split, self.config.split)
        if self.config.path is None:
            return load_hub_split("gsm8k", HUB_ID, HUB_CONFIG, split)
        path = local_path("gsm8k", self.config.path)
        if path.is_dir():
            path = path / f"{split}.jsonl"
            if not path.is_file():
                raise DatasetSourceError(f"dataset 'gsm8k': {path} not found")
        return read_json_or_jsonl(path)

    def build(self) -> Iterable[dict[str, Any]]:
        split = self.config.split
        for index, row in enumerate(self.rows()):
            cot, number = split_answer(row["answer"])
            if self.config.strip_calculator:
                cot = _CALC.sub("", cot)
            question = row["question"].strip()
            student = prompts.gsm8k_student_prompt(question)
            yield {
                "id": f"gsm8k/{split}/{index}",
                "prompt": student,
                "teacher_prompt": prompts.render_teacher_prompt(student, f"#### {number}", cot or None),
                "gold": prompts.sft_gold_math(cot, number),
                "answer": number,
                "meta": {"task": "math", "question": question},
                "demo": prompts.qa_demo_block(question, prompts.sft_gold_math(cot, number)),
                "retrieval_text": question,
            }
