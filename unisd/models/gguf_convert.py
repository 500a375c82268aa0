"""One-time conversion of a GGUF checkpoint into a plain Hugging Face model directory.

transformers can read GGUF directly but de-quantizes every tensor on every load. UniSD converts
once into ``<cache>/models/<name>-<sha12>`` (sha of the GGUF file) and loads that directory
afterwards. The conversion writes into a temporary sibling directory and publishes it with
``os.replace``, under a file lock, so concurrent callers never see a half-written directory and
convert at most once.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from unisd.models.cache import file_sha256, models_root

COMPLETE_MARKER = "unisd_conversion.json"


def _log(msg: str) -> None:
    print(f"[unisd] {msg}", file=sys.stderr, flush=True)


def converted_dir(gguf_path: str | os.PathLike[str], name: str, cache: str | os.PathLike[str] | None = None) -> Path:
    """The directory the conversion of ``gguf_path`` lives in (whether or not it exists yet)."""
    return models_root(cache) / f"{name}-{file_sha256(gguf_path)[:12]}"


def is_complete(directory: Path) -> bool:
    """Whether ``directory`` holds a finished conversion."""
    return (directory / COMPLETE_MARKER).is_file()


def convert_gguf(gguf_path: str | os.PathLike[str], name: str, cache: str | os.PathLike[str] | None = None) -> Path:
    """Convert ``gguf_path`` to an HF directory once; return the directory.

    ``name`` is the directory stem (e.g. ``smollm2-135m-instruct``); ``cache`` overrides the cache
    root. Safe to call concurrently from several processes.
    """
    from filelock import FileLock

    gguf_path = Path(gguf_path)
    target = converted_dir(gguf_path, name, cache)
    if is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if is_complete(target):  # another process finished while we waited
            return target
        _log(f"converting {gguf_path.name} to a Hugging Face directory (one time, ~30 s) ...")
        start = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            _write_hf_dir(gguf_path, tmp)
            marker = {"source": str(gguf_path), "sha256": file_sha256(gguf_path), "name": name}
            (tmp / COMPLETE_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.exists():  # leftover without a marker: not ours to trust
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _log(f"converted in {time.monotonic() - start:.0f} s -> {target}")
    return target


def _write_hf_dir(gguf_path: Path, out: Path) -> None:
    """Load the GGUF with transformers, rebuild a clean fp32 model from its config, save both."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, fname = str(gguf_path.parent), gguf_path.name
    _log("reading tokenizer ...")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
    _log("reading and de-quantizing weights ...")
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # weights are plain fp32 from now on
    config._name_or_path = ""
    _log("rebuilding the model from its config ...")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    _log("writing safetensors and tokenizer ...")
    max_pos = getattr(config, "max_position_embeddings", None)
    if max_pos and tokenizer.model_max_length > max_pos:  # GGUF carries no model_max_length
        tokenizer.model_max_length = max_pos
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    _clean_tokenizer_config(out / "tokenizer_config.json")
    _share_permissions(out)


def _clean_tokenizer_config(path: Path) -> None:
    """Drop load-time flags that transformers records from the GGUF read (they are not properties)."""
    if not path.is_file():
        return
    data = json.loads(path.read_text())
    for key in ("is_local", "local_files_only", "gguf_file"):
        data.pop(key, None)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _share_permissions(directory: Path) -> None:
    """Give the (mkdtemp-private) directory and its files the permissions the umask allows."""
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for f in directory.iterdir():
        if f.is_file():
            f.chmod(0o666 & ~umask)
