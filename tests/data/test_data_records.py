"""Record schema and validated loading: every bad-record kind is named by file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import StrictStr

from unisd.components.base import RecordSlot
from unisd.data.records import BadRecordError, TrainingRecord, read_jsonl_records, record_model, validate_records

GOOD = {"id": "a", "prompt": "p", "teacher_prompt": "t", "gold": "g", "answer": "x"}


def _line(**changes: object) -> bytes:
    rec = {**GOOD, "id": "b", **changes}
    return json.dumps({k: v for k, v in rec.items() if v is not _DROP}).encode()


_DROP = object()

BAD_LINES = {
    "malformed JSON": (b'{"id": "b", "prompt": ', None, "malformed JSON"),
    "non-UTF-8": (b'{"id": "b\xff\xfe"}', None, "not valid UTF-8"),
    "missing field": (_line(gold=_DROP), "gold", "missing required field"),
    "wrong type": (_line(prompt=7), "prompt", "wrong type: expected string, got int"),
    "wrong meta type": (_line(meta=[1]), "meta", "expected an object"),
    "empty answer": (_line(answer="  "), "answer", "must not be empty"),
    "empty prompt": (_line(prompt=""), "prompt", "must not be empty"),
    "duplicate id": (_line(id="a"), "id", "duplicate id 'a' (first seen at line 1)"),
    "not an object": (b"[1, 2]", None, "must be a JSON object"),
    # valid JSON escapes that are not text: the tokenizer would fail on them far from the file
    "lone surrogate": (_line(prompt="a\ud800b"), "prompt", "character 2 is U+D800, a lone surrogate: not text"),
    "NUL": (_line(gold="1\x00"), "gold", "character 2 is U+0000, a control character: not text"),
    "control character in an extra field": (
        _line(meta={"notes": ["ok", "\x1b[31m"]}),
        "meta.notes[1]",
        "character 1 is U+001B, a control character",
    ),
}


def _write(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_record_names_file_line_field(tmp_path: Path, case: str) -> None:
    raw, field, message = BAD_LINES[case]
    path = _write(tmp_path / "recs.jsonl", json.dumps(GOOD).encode(), b"", raw)
    with pytest.raises(BadRecordError) as info:
        read_jsonl_records(path)
    text = str(info.value)
    assert text.startswith(f"{path}, line 3: ")
    assert message in text
    assert info.value.field == field
    if field:
        assert f"field '{field}'" in text


def test_skip_mode_writes_rejects_and_counts(tmp_path: Path) -> None:
    bad = [raw for raw, _, _ in BAD_LINES.values()]
    path = _write(tmp_path / "recs.jsonl", json.dumps(GOOD).encode(), *bad, _line(id="c"))
    rejects = tmp_path / "out" / "rejects.jsonl"
    loaded = read_jsonl_records(path, on_bad_record="skip", rejects_path=rejects)
    assert [r["id"] for r in loaded.records] == ["a", "c"]
    assert loaded.rejected == len(bad)
    entries = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert len(entries) == len(bad)
    assert [e["where"] for e in entries] == [f"line {i}" for i in range(2, 2 + len(bad))]
    assert all(e["reason"] and e["source"] == str(path) and isinstance(e["raw"], str) for e in entries)
    assert entries[0]["raw"] == bad[0].decode()


def test_validate_records_uses_index_and_defaults() -> None:
    with pytest.raises(BadRecordError, match=r"adapter 'x', record 1: field 'answer': must not be empty"):
        validate_records([GOOD, {**GOOD, "id": "b", "answer": ""}], source="adapter 'x'")
    out = validate_records([{**GOOD, "extra": {"k": 1}}]).records[0]
    assert out["demo"] == "Reference Question:\np\n\nReference Answer:\ng"
    assert out["retrieval_text"] == "p" and out["meta"] == {} and out["extra"] == {"k": 1}
    assert "aux_contexts" not in out and "negative_prompt" not in out
    skipped = validate_records([GOOD, GOOD], on_bad_record="skip")
    assert skipped.rejected == 1 and len(skipped.records) == 1


def test_component_slots_are_typed_when_declared(tmp_path: Path) -> None:
    slots = {"contexts": RecordSlot(list[StrictStr]), "negative_prompt": RecordSlot(StrictStr)}
    rec = record_model(slots).model_validate({**GOOD, "contexts": ["c1", "c2"]})
    assert rec.to_dict()["contexts"] == ["c1", "c2"] and "negative_prompt" not in rec.to_dict()
    with pytest.raises(BadRecordError, match=r"field 'contexts.1': wrong type"):
        validate_records([{**GOOD, "contexts": ["c1", 3]}], slots=slots)
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "id": "b", "negative_prompt": 7}) + "\n")
    with pytest.raises(BadRecordError, match=r"r\.jsonl, line 2: field 'negative_prompt': wrong type"):
        read_jsonl_records(path, slots=slots)
    # undeclared, the same fields are the user's own and kept as they are
    assert read_jsonl_records(path).records[1]["negative_prompt"] == 7
    assert TrainingRecord.slots == () and "negative_prompt" not in TrainingRecord.model_fields
    with pytest.raises(ValueError, match=r"\['gold'\] are core record fields"):
        record_model({"gold": RecordSlot(StrictStr)})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_jsonl_records(tmp_path / "nope.jsonl")


def test_tabs_newlines_and_any_script_are_text() -> None:
    text = "a\tb\nc\r\nd — é 漢字 😀 \u200b"
    loaded = validate_records([{**GOOD, "prompt": text, "meta": {"k": [text]}}])
    assert loaded.records[0]["prompt"] == text
