"""The user's own training records: a JSONL file in the schema of :mod:`unisd.data.records`."""

from __future__ import annotations

import itertools
from typing import Any, ClassVar
from collections.abc import Iterable

from unisd.components.kinds import DatasetConfig
from unisd.api import read_jsonl_records
from unisd_plugins.datasets.base import BaseAdapter, DatasetSourceError


class JsonlConfig(DatasetConfig):
    """A records file (``path`` is required; ``split`` is ignored)."""

    type: str = "jsonl"


class JsonlAdapter(BaseAdapter):
    """Reads and validates a JSONL records file (bad lines: error, or skip into the rejects file)."""

    Config: ClassVar[type[DatasetConfig]] = JsonlConfig

    def build(self) -> Iterable[dict[str, Any]]:
        if not self.config.path:
            raise DatasetSourceError("dataset 'jsonl' needs data.dataset.path: a JSONL file of training records")
        return read_jsonl_records(self.config.path, self.on_bad_record, self.rejects_path, self.slots).records

    def load(self) -> list[dict[str, Any]]:
        records = list(self.build())  # already validated line by line
        return records if self.config.limit is None else list(itertools.islice(records, self.config.limit))
