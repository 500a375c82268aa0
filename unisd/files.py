"""Small file-system helpers shared by the engine and the plugins."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Create ``path`` by calling ``write(tmp)`` on a process-unique temporary sibling, then
    renaming it into place: readers (and a run resumed after a kill) see the old file or the new
    one, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def free_name(path: Path, label: str = "") -> Path:
    """A sibling of ``path`` named ``<name><label>-<time>`` (``-2``, ``-3`` … if taken): where a
    command puts what it replaces, so that nothing is deleted."""
    stamp = f"{path.name}{label}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, n = path.with_name(stamp), 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{stamp}-{n}")
    return candidate
