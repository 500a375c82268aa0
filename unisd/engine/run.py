"""The live state of a training run that components and hooks see."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from accelerate import Accelerator

    from unisd.plugins import PluginHost
    from unisd.recipe.model import RecipeBase


@dataclass
class Run:
    """What a component's ``setup`` and the runtime hooks receive.

    ``model`` is the trainable student (peft-wrapped under LoRA, not DDP-wrapped);
    ``records`` the prepared training records; ``step`` the number of completed optimizer steps.
    """

    recipe: "RecipeBase"
    model: "torch.nn.Module"
    tokenizer: Any
    accelerator: "Accelerator"
    output_dir: Path
    host: "PluginHost"
    records: list[dict[str, Any]] = field(default_factory=list)
    components: list[Any] = field(default_factory=list)
    step: int = 0
    dataset_adapter: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> "torch.device":
        return self.accelerator.device

    @property
    def is_main_process(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def cache_dir(self) -> Path:
        """Where components cache derived data (negatives, embeddings) across runs."""
        import os

        root = Path(os.environ.get("UNISD_CACHE", Path.home() / ".cache" / "unisd"))
        return root / "components"
