"""Resolve what ``unisd eval --model`` names and load it for evaluation.

Accepted: a model directory (``config.json``), a hub id, the embedded alias
``smollm2-135m-instruct``, a LoRA adapter directory (merged into its base), or a UniSD run
directory (``final/merged`` if present, else ``final/adapter`` merged into the recipe's base model,
else the first model directory found inside).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from: ``path`` (dir, hub id or alias) and an optional adapter."""

    path: str
    adapter: str | None = None
    run_dir: str | None = None
    base: str | None = None  # the run's base model (recipe model.name_or_path), if known

    def describe(self) -> str:
        return self.path if not self.adapter else f"{self.path} + adapter {self.adapter}"


def _is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def _recipe_base(run_dir: Path) -> str | None:
    recipe = run_dir / "recipe.yaml"
    if not recipe.is_file():
        return None
    from unisd.recipe.loading import safe_yaml

    data = safe_yaml(recipe.read_text(encoding="utf-8"), str(recipe)) or {}
    return ((data.get("model") or {}).get("name_or_path")) or None


def _adapter_base(adapter: Path) -> str | None:
    cfg = adapter / "adapter_config.json"
    if not cfg.is_file():
        return None
    return json.loads(cfg.read_text(encoding="utf-8")).get("base_model_name_or_path")


def resolve_model_source(spec: str) -> ModelSource:
    """Map ``--model`` to a :class:`ModelSource` (no weights are read)."""
    path = Path(spec).expanduser()
    if not path.is_dir():
        return ModelSource(spec)  # hub id or alias, resolved by unisd.models.loading
    path = path.resolve()
    if _is_model_dir(path):
        return ModelSource(str(path))
    if (path / "adapter_config.json").is_file():
        base = _adapter_base(path)
        if not base:
            raise ValueError(f"{path}: adapter_config.json names no base_model_name_or_path")
        return ModelSource(base, adapter=str(path), base=base)
    base = _recipe_base(path)
    final = path / "final"
    if _is_model_dir(final / "merged"):
        return ModelSource(str(final / "merged"), run_dir=str(path), base=base)
    if (final / "adapter" / "adapter_config.json").is_file():
        base_model = base or _adapter_base(final / "adapter")
        if not base_model:
            raise ValueError(f"{path}: final/adapter found but no base model (recipe.yaml or adapter_config.json)")
        return ModelSource(base_model, adapter=str(final / "adapter"), run_dir=str(path), base=base_model)
    found = sorted(p.parent for p in path.glob("**/config.json") if p.parent != path and "checkpoints" not in p.parts)
    merged = [p for p in found if p.name == "merged"]
    if merged or found:
        return ModelSource(str((merged or found)[0]), run_dir=str(path), base=base)
    raise ValueError(f"{path} is neither a model directory, an adapter, nor a run directory with final/merged")


def load_for_eval(source: ModelSource | str, dtype: str = "float32", device: str | None = None) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` in eval mode; adapters are merged into the base weights."""
    from unisd.models.loading import load_model_and_tokenizer
    from unisd.recipe.sections import ModelConfig

    src = resolve_model_source(source) if isinstance(source, str) else source
    model, tokenizer = load_model_and_tokenizer(ModelConfig(name_or_path=src.path, dtype=dtype), device=device)
    if src.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, src.adapter).merge_and_unload()
    model.eval()
    return model, tokenizer
