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

    ``model`` is the trainable student (peft-wrapped under LoRA, not DDP-wrapped; under FSDP2 it is
    sharded in place after the components' ``setup``);
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
    #: the student is sharded across processes (``distributed.strategy: fsdp2`` with several processes)
    sharded: bool = False
    shard_frozen: Any = None

    def place_frozen(self, module: "torch.nn.Module") -> "torch.nn.Module":
        """Put a frozen model that a component holds (a teacher copy) where the student runs: on its
        device, and sharded like it under FSDP2 (so no process holds a whole second copy)."""
        module = module.to(self.device)
        return self.shard_frozen(module) if self.shard_frozen is not None else module

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
