"""Rollouts with ``transformers`` ``generate``."""

from __future__ import annotations

from contextlib import nullcontext
from typing import ClassVar
from collections.abc import Sequence

import torch

from unisd.components.kinds import GenerationBackend
from unisd.api import adapter_merged
from unisd.api import is_sharded
from unisd_plugins.generation.config import HFGenerateConfig


class HFGenerate(GenerationBackend):
    """Sampling (or greedy at temperature 0) with the model's own ``generate``."""

    Config: ClassVar = HFGenerateConfig

    def generate(
        self,
        model,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        params,
        *,
        eos_token_ids: Sequence[int] = (),
        pad_token_id: int = 0,
    ) -> torch.Tensor:
        sampling = params.temperature > 0
        kwargs = dict(
            max_new_tokens=params.max_new_tokens,
            do_sample=sampling,
            pad_token_id=pad_token_id,
            eos_token_id=list(eos_token_ids) or None,
        )
        if sampling:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k or 0)
        sharded = is_sharded(model)
        if sharded:  # every process runs forwards until all have finished (FSDP2 gathers in each one)
            kwargs["synced_gpus"] = True
        with adapter_merged(model) if self.config.merge_adapter and not sharded else nullcontext():
            out = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, **kwargs)
        return out[:, prompt_ids.shape[1] :]
