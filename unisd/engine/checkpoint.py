"""Atomic checkpoints with a checksummed manifest, and discovery of the latest complete one.

A checkpoint is a directory ``step-NNNNNNNN`` written first as ``.tmp-step-…`` and renamed only
after every file is fsynced and ``manifest.json`` (size and SHA-256 of each file) is written. A
directory whose manifest is missing or does not match its files is never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unisd.engine.faults import maybe_kill

MANIFEST = "manifest.json"
PREFIX = "step-"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or corrupt."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _payload_bytes(obj: Any) -> int:
    """A lower bound on what ``torch.save`` writes for ``obj`` (its tensors' bytes)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_payload_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_payload_bytes(v) for v in obj)
    return 0


def save_checkpoint(root: Path, step: int, payload: dict[str, Any], meta: dict[str, Any], keep_last: int) -> Path:
    """Write ``payload`` (name → torch-saveable object) and ``meta`` (JSON) atomically.

    The free space is checked first (when the file system reports it); any failure removes the
    partial write, so a later resume is never blocked by it, and raises :class:`CheckpointError`
    naming the directory and the bytes needed."""
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f".tmp-{PREFIX}*"):  # torn writes of a killed run: reclaim their space first
        shutil.rmtree(stale, ignore_errors=True)
    need = _payload_bytes(payload)
    try:
        free = shutil.disk_usage(root).free
    except OSError:
        free = None
    if free is not None and free < need:
        raise CheckpointError(f"checkpoint of step {step}: {root} has {free / 2**20:.1f} MiB free, the checkpoint needs "
                              f"at least {need / 2**20:.1f} MiB; free space there (or lower checkpoint.keep_last) and resume")
    tmp = root / f".tmp-{PREFIX}{step:08d}-{os.getpid()}"
    try:
        return _write(root, step, payload, meta, keep_last, tmp)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"checkpoint of step {step} could not be written to {root}: {exc.strerror or exc} "
                              f"(it needs at least {need / 2**20:.1f} MiB); the partial write was removed") from None


def _write(root: Path, step: int, payload: dict[str, Any], meta: dict[str, Any], keep_last: int, tmp: Path) -> Path:
    final = root / f"{PREFIX}{step:08d}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    files: dict[str, dict[str, Any]] = {}
    for name, obj in payload.items():
        path = tmp / f"{name}.pt"
        with path.open("wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
    meta_path = tmp / "trainer_state.json"
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True))
    maybe_kill("checkpoint_write", step)
    for path in sorted(tmp.iterdir()):
        files[path.name] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    manifest = tmp / MANIFEST
    with manifest.open("w") as fh:
        json.dump({"step": step, "files": files}, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    _fsync_dir(tmp)
    if final.exists():  # a re-run of the same step after a resume: replace atomically
        old = root / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    prune(root, keep_last)
    return final


def verify(path: Path) -> dict[str, Any]:
    """Return the manifest if every listed file exists with its size and checksum; else raise."""
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise CheckpointError(f"{path}: no {MANIFEST} (incomplete checkpoint)")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable {MANIFEST}: {exc}") from None
    for name, info in manifest.get("files", {}).items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{path}: missing {name}")
        if f.stat().st_size != info["bytes"] or _sha256(f) != info["sha256"]:
            raise CheckpointError(f"{path}: {name} does not match its checksum (corrupt)")
    return manifest


def list_checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    dirs = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit()]
    return sorted(dirs, key=lambda p: int(p.name[len(PREFIX):]))


def latest_complete(root: Path) -> Path | None:
    """The newest checkpoint under ``root`` that passes :func:`verify` (corrupt ones are skipped)."""
    for path in reversed(list_checkpoints(root)):
        try:
            verify(path)
        except CheckpointError as exc:
            import warnings

            warnings.warn(f"skipping checkpoint: {exc}", stacklevel=2)
            continue
        return path
    return None


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify, then load every payload file and the trainer state."""
    manifest = verify(path)
    payload = {name[:-3]: torch.load(path / name, map_location="cpu", weights_only=False)
               for name in manifest["files"] if name.endswith(".pt")}
    meta = json.loads((path / "trainer_state.json").read_text())
    return payload, meta


def prune(root: Path, keep_last: int) -> None:
    """Delete all but the ``keep_last`` newest complete checkpoints and stale temporary dirs."""
    for p in root.glob(f".tmp-{PREFIX}*"):
        try:
            pid = int(p.name.rsplit("-", 1)[-1])
        except ValueError:
            continue
        if pid != os.getpid():
            shutil.rmtree(p, ignore_errors=True)
    ckpts = list_checkpoints(root)
    for p in ckpts[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(p, ignore_errors=True)
