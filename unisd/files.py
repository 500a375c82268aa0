"""Small file-system helpers shared by the engine and the plugins."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Callable, Iterator

from unisd.errors import UserError


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


class DirectoryBusy(UserError):
    """Another process holds the directory (a second ``unisd train`` on the same ``-o``)."""


#: directories this process holds (path → depth): holding one again from the same process is a no-op
_held: dict[Path, int] = {}


def lock_path(path: Path) -> Path:
    """The lock file of a directory: a hidden sibling, so that it survives renaming the directory
    aside (``--overwrite``) and needs no directory to exist yet."""
    path = Path(path).absolute()
    return path.with_name(f".{path.name}.lock")


@contextmanager
def hold_directory(path: Path, what: str = "run") -> Iterator[None]:
    """Hold an exclusive lock on ``path`` while the block runs; a second process asking for it is
    refused at once with the holder's pid, host, start time and command.

    An OS lock (``flock``) on :func:`lock_path`, removed when the block ends. The kernel releases
    the lock when its process dies, so a killed run leaves at most an unlocked file behind, which
    the next run takes over."""
    key = Path(path).absolute()
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    try:
        import fcntl
    except ImportError:  # no flock on this platform: nothing to hold
        yield
        return
    lock = lock_path(key)
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DirectoryBusy(
                f"{key} is in use by another {what}: {_holder(lock)}; wait for it to end "
                "or choose another output directory"
            ) from None
        try:  # the holder before us may have removed the file between our open and our lock
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(
            fd,
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "command": " ".join(sys.argv)[:500],
                }
            ).encode(),
        )
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
            lock.unlink(missing_ok=True)  # still locked: whoever opens it now retries on the new file
    finally:
        os.close(fd)  # releases the lock


def _holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "a process that has not yet said which (it is starting)"
    return f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')} ({info.get('command')})"
