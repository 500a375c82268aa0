"""Atomic checkpoints with a checksummed manifest, and discovery of the latest complete one.

A checkpoint is a directory ``step-NNNNNNNN`` written first as ``.tmp-step-…`` and renamed only
after every file is fsynced and ``manifest.json`` (size and SHA-256 of each file) is written. A
directory whose manifest is missing or does not match its files is never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unisd.engine.faults import maybe_kill

MANIFEST = "manifest.json"
PREFIX = "step-"
SHARDED_STATE = "state"  # the subdirectory of a sharded checkpoint that DCP writes


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


def _check_space(root: Path, step: int, need: int) -> None:
    try:
        free = shutil.disk_usage(root).free
    except OSError:
        return
    if free < need:
        raise CheckpointError(
            f"checkpoint of step {step}: {root} has {free / 2**20:.1f} MiB free, the checkpoint needs "
            f"at least {need / 2**20:.1f} MiB; free space there (or lower checkpoint.keep_last) and resume"
        )


def _start(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f".tmp-{PREFIX}*"):  # torn writes of a killed run: reclaim their space first
        shutil.rmtree(stale, ignore_errors=True)


def save_checkpoint(root: Path, step: int, payload: dict[str, Any], meta: dict[str, Any], keep_last: int) -> Path:
    """Write ``payload`` (name → torch-saveable object) and ``meta`` (JSON) atomically.

    The free space is checked first (when the file system reports it); any failure removes the
    partial write, so a later resume is never blocked by it, and raises :class:`CheckpointError`
    naming the directory and the bytes needed."""
    _start(root)
    need = _payload_bytes(payload)
    _check_space(root, step, need)
    tmp = root / f".tmp-{PREFIX}{step:08d}-{os.getpid()}"
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        _write_payload(tmp, step, payload, meta)
        return _seal(root, tmp, step, keep_last)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"checkpoint of step {step} could not be written to {root}: {exc.strerror or exc} "
            f"(it needs at least {need / 2**20:.1f} MiB); the partial write was removed"
        ) from None


def save_sharded_checkpoint(
    root: Path,
    step: int,
    payload: dict[str, Any],
    meta: dict[str, Any],
    keep_last: int,
    write_shards,
    *,
    main: bool,
    barrier,
) -> Path:
    """A checkpoint that every process writes part of (collective).

    The main process prepares one temporary directory; ``write_shards(tmp)`` runs on every process
    (DCP's sharded save, per-process files); after a barrier the main process writes ``payload``
    and ``meta`` (state that is the same on every process), the manifest over every file of every
    process, and renames. A process killed on the way leaves no manifest, so the directory is
    never loaded (a shared file system across nodes is assumed)."""
    tmp = root / f".tmp-{PREFIX}{step:08d}-shared"
    if main:
        _start(root)
        _check_space(root, step, _payload_bytes(payload))
        tmp.mkdir()
    barrier()
    write_shards(tmp)
    barrier()
    final = root / f"{PREFIX}{step:08d}"
    if main:
        _write_payload(tmp, step, payload, meta)
        _seal(root, tmp, step, keep_last)
    barrier()
    return final


def _write_payload(tmp: Path, step: int, payload: dict[str, Any], meta: dict[str, Any]) -> None:
    for name, obj in payload.items():
        write_torch(tmp / f"{name}.pt", obj)
    meta_path = tmp / "trainer_state.json"
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True))
    maybe_kill("checkpoint_write", step)


def _numpy_array_globals() -> list[Any]:
    """What a pickled numpy array (numpy's RNG state) names: constructors of plain data, no code."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]  # mypy: one name, two imports
    return [_reconstruct, np.ndarray, np.dtype, *{type(np.dtype(t)) for t in ("uint32", "int64", "float64")}]


def read_torch(path: Path) -> Any:
    """``torch.load`` that never runs code: ``weights_only`` (tensors, containers, numbers, strings)
    plus numpy arrays' constructors; a file naming anything else is refused with the names."""
    try:
        with torch.serialization.safe_globals(_numpy_array_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # noqa: BLE001 - not even a readable archive
            names = []
        what = f" it names {', '.join(names[:5])}" if names else ""
        raise CheckpointError(
            f"{path} is not plain state:{what or ' ' + str(exc).splitlines()[0]}; checkpoints "
            "hold tensors, numbers and strings only, and nothing in them is executed"
        ) from None


#: what torch.distributed.checkpoint's ``.metadata`` pickle names (torch 2.13): data classes of the
#: checkpoint's layout, and values (paths, sizes, dtypes, layouts) built from plain data
_DCP_MODULES = ("torch.distributed.checkpoint.metadata",)
_DCP_NAMES = {
    ("pathlib", "PosixPath"),
    ("pathlib", "PurePosixPath"),
    ("torch", "Size"),
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch.serialization", "_get_layout"),
}


class _LayoutOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        obj = super().find_class(module, name) if module.split(".")[0] in ("torch", "pathlib") else None
        if (
            module in _DCP_MODULES
            or (module, name) in _DCP_NAMES
            or (module == "torch" and isinstance(obj, torch.dtype))
        ):
            return obj
        raise pickle.UnpicklingError(f"{module}.{name}")


def check_sharded_metadata(state_dir: Path) -> None:
    """Read a DCP checkpoint's ``.metadata`` (a pickle DCP loads with plain ``pickle.load``) with an
    unpickler that builds nothing but the checkpoint's layout; anything else is refused before DCP
    reads it."""
    path = Path(state_dir) / ".metadata"
    try:
        with path.open("rb") as fh:
            _LayoutOnly(fh).load()
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} is not a checkpoint layout: it names {exc}; nothing in a checkpoint is executed"
        ) from None
    except (OSError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path} cannot be read as a checkpoint layout: {exc}") from None


def write_torch(path: Path, obj: Any) -> None:
    """``torch.save`` to ``path``, flushed to the disk."""
    with path.open("wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())


def _seal(root: Path, tmp: Path, step: int, keep_last: int) -> Path:
    """Checksum every file under ``tmp`` into the manifest, then rename ``tmp`` to its final name."""
    final = root / f"{PREFIX}{step:08d}"
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
        files[path.relative_to(tmp).as_posix()] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    for sub in (p for p in tmp.rglob("*") if p.is_dir()):
        _fsync_dir(sub)
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
    dirs = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX) :].isdigit()]
    return sorted(dirs, key=lambda p: int(p.name[len(PREFIX) :]))


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
    """Verify, then load every top-level payload file and the trainer state (sharded state, in a
    subdirectory, is read by :mod:`unisd.engine.sharding`)."""
    manifest = verify(path)
    payload = {
        name[:-3]: read_torch(path / name) for name in manifest["files"] if name.endswith(".pt") and "/" not in name
    }
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
