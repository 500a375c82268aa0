"""The UniSD cache directory (converted models and other derived artefacts)."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

CACHE_ENV = "UNISD_CACHE"


def cache_root(override: str | os.PathLike[str] | None = None) -> Path:
    """The cache root: ``override``, else ``$UNISD_CACHE``, else ``~/.cache/unisd``."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "unisd"


def models_root(override: str | os.PathLike[str] | None = None) -> Path:
    """Where converted model directories live: ``<cache root>/models``."""
    return cache_root(override) / "models"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The hex SHA-256 of a file, memoised per (path, size, mtime) within the process."""
    p = Path(path).resolve()
    st = p.stat()
    return _sha256(str(p), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # size/mtime key the memo only
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()
