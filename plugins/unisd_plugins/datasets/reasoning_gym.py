"""Procedurally generated tasks from the ``reasoning-gym`` package (installs from PyPI, no hub).

The embedded default's task data: any reasoning-gym dataset by name (default ``chain_sum``,
short integer sums). ``train`` and ``test`` are drawn with different seeds; ``validation`` is carved
from the train generator (the ``validation_size`` items that follow train's ``size``), for choosing
settings without touching test. Validation and test items whose question occurs in an earlier
split (train; train or validation) are removed. Tasks that state an expression (``chain_sum``,
``basic_arithmetic``, ``products`` …) get a worked reference (``73 - 37 = 36`` then ``Answer: 36``)
and ask the student to write out the calculation. Numeric answers are checked like GSM8K's flexible
match (the last number), others with the dataset's own scorer. Numeric tasks carry a ready
``negative_prompt`` for the contrastive loss: the teacher template with a near-miss answer, so no
negatives need generating.
"""

from __future__ import annotations

import enum
import json
import re
import types
import typing
from typing import Any, ClassVar
from collections.abc import Iterable

from pydantic import Field

from unisd.components.kinds import DatasetConfig
from unisd_plugins.datasets import negatives, prompts
from unisd_plugins.datasets.base import BaseAdapter, DatasetSourceError

INSTRUCTION = 'Give only the final answer on the last line, as "Answer: <answer>".'
#: The instruction for tasks that state an expression (the reference works it out the same way).
WORKED_INSTRUCTION = 'Write out the calculation, then give the final answer on the last line, as "Answer: <answer>".'
_ANSWER = re.compile(r"answer\s*[:：]\s*(.+)", re.IGNORECASE)
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


class ReasoningGymConfig(DatasetConfig):
    """A reasoning-gym dataset."""

    type: str = "reasoning_gym"
    task: str = Field(
        "chain_sum", description="reasoning-gym dataset name (e.g. chain_sum, basic_arithmetic, letter_counting)"
    )
    size: int = Field(512, ge=1, description="items generated per split")
    seed: int = Field(42, description="generation seed of the train split (test uses seed + 1_000_003)")
    validation_size: int = Field(
        128,
        ge=1,
        description="items of the validation split, drawn from the train generator after its first `size` items",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="extra keyword arguments of the reasoning-gym dataset config"
    )
    instruction: str | None = Field(
        None,
        description="line appended to each question; default: write out the calculation "
        "(tasks that state an expression) or give only the final answer (others)",
    )


def _gym():
    try:
        import reasoning_gym
    except ImportError as exc:
        raise DatasetSourceError(
            "dataset 'reasoning_gym' needs the reasoning-gym package: pip install 'unisd[embedded]'"
        ) from exc
    return reasoning_gym


def final_answer(text: str) -> str:
    """The text after the last ``Answer:`` (or the last non-empty line)."""
    found = _ANSWER.findall(text)
    if found:
        return found[-1].strip().rstrip(".")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def reference(entry: dict[str, Any], answer: str) -> str:
    """The reference answer: worked (``4 - 1 = 3``) where the task states its expression, then
    the ``Answer:`` line. A 135M student that writes the expression out before answering is right
    far more often than one that answers directly, and this is what its answer-aware self shows it."""
    expression = _expression(entry)
    return f"{expression} = {answer}\nAnswer: {answer}" if expression else f"Answer: {answer}"


def _expression(entry: dict[str, Any]) -> str | None:
    expression = (entry.get("metadata") or {}).get("expression")
    return expression.strip() if isinstance(expression, str) and expression.strip() else None


def _coerce(hint: Any, value: Any) -> Any:
    """``value`` (from YAML: strings, lists) as the type a reasoning-gym config field expects;
    only enum members need converting (``"siblings"`` -> ``TaskType.SIBLINGS``)."""
    if value is None:
        return value
    if isinstance(hint, type) and issubclass(hint, enum.Enum) and not isinstance(value, hint):
        try:
            return hint(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in hint)
            raise ValueError(f"{value!r} is not one of {allowed}") from None
    if typing.get_origin(hint) in (list, tuple) and isinstance(value, (list, tuple)):
        (inner, *_) = typing.get_args(hint) or (Any,)
        return type(value)(_coerce(inner, v) for v in value)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arm in typing.get_args(hint):
            if isinstance(arm, type) and issubclass(arm, enum.Enum):
                return _coerce(arm, value)
    return value


def task_options(task: str, options: dict[str, Any]) -> dict[str, Any]:
    """Recipe options for ``task``, converted to the field types of its reasoning-gym config."""
    from reasoning_gym.factory import DATASETS

    if task not in DATASETS:
        return options
    hints = typing.get_type_hints(DATASETS[task][1])
    out = {}
    for key, value in options.items():
        try:
            out[key] = _coerce(hints[key], value) if key in hints else value
        except ValueError as exc:
            raise DatasetSourceError(f"dataset 'reasoning_gym': option {key!r} of task {task!r}: {exc}") from exc
    return out


class ReasoningGymAdapter(BaseAdapter):
    """Questions, answers and scoring from a reasoning-gym procedural dataset."""

    Config: ClassVar[type[DatasetConfig]] = ReasoningGymConfig
    config: ReasoningGymConfig

    def _dataset(self, split: str):
        c = self.config
        seed = c.seed + 1_000_003 if split == "test" else c.seed
        size = c.size + c.validation_size if split == "validation" else c.size
        try:
            return _gym().create_dataset(c.task, size=size, seed=seed, **task_options(c.task, c.options))
        except (KeyError, ValueError, TypeError) as exc:
            raise DatasetSourceError(
                f"dataset 'reasoning_gym': cannot create task {c.task!r} with options {c.options}: {exc}"
            ) from exc

    def _entries(self, split: str) -> Iterable[tuple[int, dict[str, Any]]]:
        """(index, entry) of ``split``; validation indices continue train's."""
        ds = self._dataset(split)
        first = self.config.size if split == "validation" else 0
        return ((i, ds[i]) for i in range(first, len(ds)))

    def build(self) -> Iterable[dict[str, Any]]:
        split = self.config.split if self.config.split in ("train", "validation") else "test"
        earlier = {"train": (), "validation": ("train",), "test": ("train", "validation")}[split]
        seen = {e["question"] for s in earlier for _, e in self._entries(s)}
        for index, entry in self._entries(split):
            if entry["question"] in seen:
                continue
            question, answer = entry["question"].strip(), str(entry["answer"]).strip()
            student = f"{question}\n{self._instruction(entry)}"
            numeric = bool(_NUMBER.match(answer))
            gold = reference(entry, answer)
            record = {
                "id": f"{self.config.task}-{split}-{index}",
                "prompt": student,
                "teacher_prompt": prompts.render_teacher_prompt(student, gold),
                "gold": gold,
                "answer": answer,
                "meta": {
                    "task": "math" if numeric else "qa",
                    "question": question,
                    "source": "reasoning_gym",
                    "dataset": self.config.task,
                    "entry": json.loads(json.dumps(entry, default=str)),
                },
                "demo": prompts.qa_demo_block(question, f"Answer: {answer}"),
                "retrieval_text": question,
                "reference": gold,
            }
            if numeric:  # the bad teacher: the same template with a near-miss answer (no generation needed)
                wrong = negatives.wrong_numbers(record, 1)[0]
                record["negative_reference"] = reference(entry, wrong)
                record["negative_prompt"] = prompts.render_teacher_prompt(student, record["negative_reference"])
            yield record

    def _instruction(self, entry: dict[str, Any]) -> str:
        if self.config.instruction is not None:
            return self.config.instruction
        return WORKED_INSTRUCTION if _expression(entry) else INSTRUCTION

    def is_correct(self, record: dict[str, Any], completion: str) -> bool | None:
        """Numeric answers: the last number after the last ``Answer:``, or of the whole completion
        when it has none (small models write "12 + 5 = 17" or "The final answer is 17." and stop
        or ramble on); others: the dataset's own scorer on the text after ``Answer:``."""
        if record["meta"].get("task") == "math":
            from unisd_plugins.datasets.answers import last_number

            stated = _ANSWER.findall(completion)
            return last_number(stated[-1] if stated else completion) == last_number(record["answer"])
        try:
            return self._scorer().score_answer(answer=final_answer(completion), entry=record["meta"]["entry"]) >= 1.0
        except (ValueError, TypeError, KeyError, IndexError, ArithmeticError, AttributeError):
            # the task's own scorer parses the answer and raises on text it cannot read ("12 = 2" for a
            # prime factorisation): an answer it cannot read is not a correct one
            return False

    def _scorer(self):
        if not hasattr(self, "_scoring_ds"):
            self._scoring_ds = self._dataset("test")
        return self._scoring_ds
