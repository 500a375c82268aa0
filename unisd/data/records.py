"""The training-record schema and its validated loading.

A record is one training item (a plain dict once validated):

``id``             unique string
``prompt``         the student user-turn text
``teacher_prompt`` the privileged teacher user-turn text (student prompt + reference + instruction)
``gold``           the gold completion (SFT target, gold-completion fit)
``answer``         the short gold answer (letter, number, code…)
``meta``           free-form metadata (``task``, ``correct_letter``, ``choices``, ``tests``, …)
``demo``           this item's donor demo block, shown to OTHER items by context builders
``retrieval_text`` the text a retrieval context builder embeds
``reference``      the privileged reference the teacher sees (default: ``gold``); what a recipe's
                   ``data.teacher_template`` puts in ``{reference}``

Components declare the further slots that records bring for them (``Component.record_slots``: the
contrastive loss's ``negative_prompt`` and ``negative_reference``); loading validates those too
when it is given them (``slots=``), and keeps any other field as it is.

Bad input never disappears silently: in ``error`` mode the first bad record raises
:class:`BadRecordError` naming the source, the line (or index) and the field; in ``skip`` mode each
rejected record is written with its reason to a rejects JSONL and counted.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple, TextIO
from collections.abc import Iterable, Mapping

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from unisd.components.base import RecordSlot
from unisd.errors import UserError

log = logging.getLogger(__name__)

OnBadRecord = Literal["error", "skip"]
#: Fields that must be non-empty strings.
NON_EMPTY = ("id", "prompt", "teacher_prompt", "gold", "answer")


#: what a text field may not hold: control characters other than tab, newline and carriage return,
#: and lone surrogates (valid JSON escapes, but not text: a tokenizer cannot encode them)
_NOT_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def text_problem(value: Any, path: str = "") -> tuple[str, str] | None:
    """``(field, reason)`` for the first string in ``value`` (nested dicts and lists too) that is not
    valid text, else None."""
    if isinstance(value, str):
        m = _NOT_TEXT.search(value)
        if m is None:
            return None
        ch = m.group()
        kind = "a lone surrogate" if "\ud800" <= ch <= "\udfff" else "a control character"
        return path, f"character {m.start() + 1} is U+{ord(ch):04X}, {kind}: not text"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = text_problem(
            item, f"{path}.{key}" if path and isinstance(key, str) else f"{path}[{key}]" if path else str(key)
        )
        if found:
            return found
    return None


class BadRecordError(ValueError):
    """A record that fails validation; the message names source, line/index and field."""

    def __init__(self, message: str, *, source: str = "", where: str = "", field: str | None = None) -> None:
        super().__init__(message)
        self.source, self.where, self.field = source, where, field


class TrainingRecord(BaseModel):
    """One training record. Core fields are strictly typed; extra fields are kept as they are."""

    model_config = ConfigDict(extra="allow")

    id: StrictStr
    prompt: StrictStr
    teacher_prompt: StrictStr
    gold: StrictStr
    answer: StrictStr
    meta: dict[str, Any] = Field(default_factory=dict)
    demo: StrictStr | None = Field(None, description="donor demo block; default: question + gold")
    retrieval_text: StrictStr | None = Field(None, description="text to embed; default: the prompt")
    reference: StrictStr | None = Field(None, description="privileged reference for the teacher; default: gold")
    #: the components' slots this model validates (optional fields, left out of the dict when unset)
    slots: ClassVar[tuple[str, ...]] = ()

    @field_validator(*NON_EMPTY)
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("meta", mode="before")
    @classmethod
    def _meta_is_dict(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError(f"expected an object (dict), got {type(value).__name__}")
        return value

    @model_validator(mode="after")
    def _defaults(self) -> TrainingRecord:
        if self.demo is None:
            self.demo = f"Reference Question:\n{self.prompt.strip()}\n\nReference Answer:\n{self.gold.strip()}"
        if self.retrieval_text is None:
            self.retrieval_text = self.prompt
        if self.reference is None:
            self.reference = self.gold
        return self

    def to_dict(self) -> dict[str, Any]:
        """The plain dict form; unset component slots are left out."""
        out = self.model_dump()
        for key in self.slots:
            if out.get(key) is None:
                out.pop(key, None)
        return out


def record_model(slots: Mapping[str, RecordSlot] | None = None) -> type[TrainingRecord]:
    """:class:`TrainingRecord` extended with the optional, typed ``slots`` components declare."""
    return _record_model(tuple(sorted((slots or {}).items())))


@functools.lru_cache(maxsize=32)
def _record_model(slots: tuple[tuple[str, RecordSlot], ...]) -> type[TrainingRecord]:
    if not slots:
        return TrainingRecord
    clash = [name for name, _ in slots if name in TrainingRecord.model_fields]
    if clash:
        raise ValueError(f"record slot(s) {clash} are core record fields; a component must name a slot of its own")
    fields: dict[str, Any] = {
        name: (slot.type | None, Field(None, description=slot.description)) for name, slot in slots
    }
    model = create_model("TrainingRecordWithSlots", __base__=TrainingRecord, **fields)
    model.slots = tuple(name for name, _ in slots)
    return model


class LoadedRecords(NamedTuple):
    """Validated records and the number of rejected ones (always 0 in ``error`` mode)."""

    records: list[dict[str, Any]]
    rejected: int


def _describe_error(exc: ValidationError) -> tuple[str, str]:
    """(field, message) of the first pydantic error, phrased for people."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or "<record>"
    kind, value = err.get("type", ""), err.get("input")
    if kind == "missing":
        return loc, "missing required field"
    if kind.endswith("_type") or kind in ("model_type", "dict_type", "list_type"):
        expected = kind.removesuffix("_type").replace("model", "object").replace("dict", "object")
        return loc, f"wrong type: expected {expected}, got {type(value).__name__}"
    msg = err.get("msg", "invalid").removeprefix("Value error, ")
    return loc, msg


class RecordsFileNotFound(UserError, FileNotFoundError):
    """A records file (``--data``, a jsonl dataset path) that does not exist."""


class _Checker:
    """Shared validation state: duplicate ids, reject sink, counts."""

    def __init__(
        self,
        source: str,
        on_bad_record: OnBadRecord,
        rejects_path: str | Path | None,
        slots: Mapping[str, RecordSlot] | None = None,
    ) -> None:
        if on_bad_record not in ("error", "skip"):
            raise ValueError(f"on_bad_record must be 'error' or 'skip', got {on_bad_record!r}")
        self.source, self.mode = source, on_bad_record
        self.model = record_model(slots)
        self.rejects_path = Path(rejects_path) if rejects_path is not None else None
        self.seen: dict[str, str] = {}
        self.records: list[dict[str, Any]] = []
        self.rejected = 0
        self._sink: TextIO | None = None

    def bad(self, where: str, field: str | None, message: str, raw: Any) -> None:
        text = f"{self.source}, {where}: " + (f"field '{field}': " if field else "") + message
        if self.mode == "error":
            raise BadRecordError(text, source=self.source, where=where, field=field)
        self.rejected += 1
        log.warning("skipping bad record: %s", text)
        if self.rejects_path is not None:
            if self._sink is None:
                self.rejects_path.parent.mkdir(parents=True, exist_ok=True)
                self._sink = self.rejects_path.open("a", encoding="utf-8")
            entry = {"source": self.source, "where": where, "field": field, "reason": text, "raw": raw}
            self._sink.write(
                json.dumps(entry, ensure_ascii=text_problem(raw) is not None) + "\n"
            )  # escaped if not text

    def check(self, obj: Any, where: str, raw: Any) -> None:
        if not isinstance(obj, dict):
            self.bad(where, None, f"a record must be a JSON object, got {type(obj).__name__}", raw)
            return
        try:
            rec = self.model.model_validate(obj)
        except ValidationError as exc:
            field, message = _describe_error(exc)
            self.bad(where, field, message, raw)
            return
        found = text_problem(obj)
        if found:
            self.bad(where, *found, raw)
            return
        first = self.seen.get(rec.id)
        if first is not None:
            self.bad(where, "id", f"duplicate id {rec.id!r} (first seen at {first})", raw)
            return
        self.seen[rec.id] = where
        self.records.append(rec.to_dict())

    def close(self) -> LoadedRecords:
        if self._sink is not None:
            self._sink.close()
        return LoadedRecords(self.records, self.rejected)


def read_jsonl_records(
    path: str | Path,
    on_bad_record: OnBadRecord = "error",
    rejects_path: str | Path | None = None,
    slots: Mapping[str, RecordSlot] | None = None,
) -> LoadedRecords:
    """Read and validate a JSONL file of training records (one JSON object per line).

    Checks each line for UTF-8, JSON syntax, required fields, types, empty texts and duplicate
    ids. ``error``: raise :class:`BadRecordError` (``file, line N: field 'x': reason``) at the first
    bad line. ``skip``: write each bad raw line and its reason to ``rejects_path`` (JSONL; a
    warning is logged as well) and return the count. Blank lines are ignored. ``slots``: the
    components' record slots to validate as well (:func:`record_model`).
    """
    path = Path(path)
    if not path.is_file():
        raise RecordsFileNotFound(f"records file not found: {path}")
    checker = _Checker(str(path), on_bad_record, rejects_path, slots)
    try:
        with path.open("rb") as fh:
            for lineno, raw_bytes in enumerate(fh, 1):
                where = f"line {lineno}"
                try:
                    line = raw_bytes.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raw = raw_bytes.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
                    checker.bad(
                        where,
                        None,
                        f"not valid UTF-8 (byte {exc.start}: {raw_bytes[exc.start : exc.start + 1]!r})",
                        raw,
                    )
                    continue
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    checker.bad(where, None, f"malformed JSON: {exc.msg} (column {exc.colno})", line.rstrip("\r\n"))
                    continue
                checker.check(obj, where, line.rstrip("\r\n"))
    finally:
        result = checker.close()
    return result


def validate_records(
    records: Iterable[Any],
    source: str = "records",
    on_bad_record: OnBadRecord = "error",
    rejects_path: str | Path | None = None,
    slots: Mapping[str, RecordSlot] | None = None,
) -> LoadedRecords:
    """Validate in-memory records (e.g. a dataset adapter's output) like :func:`read_jsonl_records`.

    Errors name ``source`` and the record's index (``record 12``) instead of a line.
    """
    checker = _Checker(source, on_bad_record, rejects_path, slots)
    try:
        for index, obj in enumerate(records):
            raw = obj if _jsonable(obj) else repr(obj)
            checker.check(obj, f"record {index}", raw)
    finally:
        result = checker.close()
    return result


def _jsonable(obj: Any) -> bool:
    try:
        json.dumps(obj)
        return True
    except (TypeError, ValueError):
        return False


def write_jsonl_records(records: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write records as UTF-8 JSONL; returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n
