"""Temporarily changed environment variables."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping


def _apply(values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextlib.contextmanager
def patched_environ(changes: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for ``None``, unset) ``changes`` for the length of the block; restore them after."""
    saved = {key: os.environ.get(key) for key in changes}
    _apply(changes)
    try:
        yield
    finally:
        _apply(saved)
