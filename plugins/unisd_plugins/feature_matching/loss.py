"""Feature matching: hidden states of student (x ⊕ y) and teacher (c ⊕ y) at the same completion
positions, captured by forward hooks addressed by module path (spec §2d).

``layers`` takes module paths (``"model.norm"``), decoder-layer indices (``-1`` = last block) or
``"lm_head_input"`` (default: the final post-norm state, what the reference matches). The teacher
side is detached. An optional learned linear projection (initialised to identity) maps student
features before matching; its weights are trained with the student and saved in checkpoints.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from unisd.components.base import Requirements
from unisd.components.kinds import AuxiliaryLoss, LossTerm
from unisd.api import masked_mean
from unisd.api import base_model
from unisd_plugins.feature_matching.config import FeatureMatchingConfig


def decoder_layer_paths(model: torch.nn.Module) -> list[str]:
    """Module paths of the decoder blocks (the longest ModuleList of the model)."""
    base = base_model(model)
    lists = [(n, m) for n, m in base.named_modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise ValueError(f"cannot find decoder layers in {type(base).__name__}; give module paths instead")
    name, mod = max(lists, key=lambda nm: len(nm[1]))
    return [f"{name}.{i}" for i in range(len(mod))]


class FeatureMatching(AuxiliaryLoss):
    """Per-token feature distance, per-sequence mean over completion tokens, averaged over layers."""

    Config: ClassVar = FeatureMatchingConfig
    activity_metrics: ClassVar = ("distance",)

    def setup(self, run) -> None:
        paths = []
        blocks = None
        for layer in self.config.layers:
            if isinstance(layer, int):
                blocks = blocks or decoder_layer_paths(run.model)
                try:
                    paths.append(blocks[layer])
                except IndexError:
                    raise ValueError(
                        f"feature_matching.layers: index {layer} out of range ({len(blocks)} decoder layers)"
                    ) from None
            else:
                paths.append(layer)
        self.paths = paths
        self.projections = torch.nn.ModuleDict()
        if self.config.projection:
            hidden = base_model(run.model).config.hidden_size
            for i, _ in enumerate(paths):
                lin = torch.nn.Linear(hidden, hidden, bias=False)
                torch.nn.init.eye_(lin.weight)
                self.projections[str(i)] = lin.to(run.device)

    def requirements(self) -> Requirements:
        return Requirements(feature_layers=frozenset(getattr(self, "paths", [])))

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.projections.parameters())

    def compute(self, batch) -> LossTerm:
        mask = batch.completion_mask
        total = 0.0
        logs = {}
        for i, path in enumerate(self.paths):
            hs = batch.student.features[path].float()
            ht = batch.teacher.features[path].detach().float()
            if self.config.projection:
                hs = self.projections[str(i)](hs)
            if self.config.metric == "mse":
                e = (hs - ht).pow(2).mean(-1)
            else:
                e = 1.0 - torch.nn.functional.cosine_similarity(hs, ht, dim=-1)
            term = masked_mean(e, mask)
            logs[f"{path}"] = float(term.detach())
            total = total + term
        logs["distance"] = float(total.detach()) / len(self.paths)  # the term itself: the mean over layers
        return LossTerm(self.name, total / len(self.paths), logs)

    def unisd_checkpoint_state(self, run):
        return {self.name: self.projections.state_dict()} if self.config.projection else None

    def unisd_load_checkpoint_state(self, run, state) -> None:
        if self.config.projection and self.name in state:
            self.projections.load_state_dict(state[self.name])
