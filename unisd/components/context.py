"""What a component sees of a run: its ``setup`` argument and the ``run`` of every runtime hook.

The context is typed and small. It names the run's own objects (model, tokenizer, records, the
divergence, the registries the recipe was built from), not the plugin host or the trainer, so a
component cannot reach around it. It sits at the bottom of the package: it imports nothing from
``unisd`` (the annotations that name upper layers are strings).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass
class RunContext:
    """The live state of one training run, as components see it.

    ``model`` is the trainable student (peft-wrapped under LoRA, not DDP-wrapped; under FSDP2 it is
    sharded in place after the components' ``setup``). ``records`` are the records the run trains
    on, ``record_pool`` every usable record (donors for auxiliary contexts), ``step`` the number of
    completed optimizer steps.
    """

    recipe: Any  #: the validated recipe (``unisd.recipe.RecipeBase``)
    model: torch.nn.Module
    tokenizer: Any
    device: torch.device
    output_dir: Path
    registries: Any = None  #: the registries the recipe was built from (``unisd.registries.Registries``)
    divergence: Any = None  #: the run's per-token divergence (a ``Divergence`` component)
    dataset_adapter: Any = None  #: the adapter the records came from (a ``DatasetAdapter``)
    records: list[dict[str, Any]] = field(default_factory=list)
    record_pool: list[dict[str, Any]] = field(default_factory=list)
    components: list[Any] = field(default_factory=list)
    step: int = 0
    is_main_process: bool = True
    #: the student is sharded across processes (``distributed.strategy: fsdp2`` with several processes)
    sharded: bool = False
    shard_frozen: Callable[[Any], Any] | None = None
    #: registers a component with the run's plugin manager (set by the engine; see :meth:`adopt`)
    register: Callable[[Any], None] | None = None

    def adopt(self, component: Any) -> Any:
        """Let a component that another one built (an agreement's context builder) receive the run's
        hooks, as the recipe's own components do, until the run ends. Returns it."""
        if self.register is not None:
            self.register(component)
        return component

    def place_frozen(self, module: torch.nn.Module) -> torch.nn.Module:
        """Put a frozen model that a component holds (a teacher copy) where the student runs: on its
        device, and sharded like it under FSDP2 (so no process holds a whole second copy)."""
        module = module.to(self.device)
        return self.shard_frozen(module) if self.shard_frozen is not None else module

    @property
    def cache_dir(self) -> Path:
        """Where components cache derived data (negatives, embeddings) across runs."""
        root = Path(os.environ.get("UNISD_CACHE", Path.home() / ".cache" / "unisd"))
        return root / "components"
