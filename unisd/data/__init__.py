"""Training data: the record schema and its validated loading."""

from unisd.data.records import (
    BadRecordError,
    LoadedRecords,
    TrainingRecord,
    read_jsonl_records,
    validate_records,
    write_jsonl_records,
)

__all__ = [
    "BadRecordError",
    "LoadedRecords",
    "TrainingRecord",
    "read_jsonl_records",
    "validate_records",
    "write_jsonl_records",
]
