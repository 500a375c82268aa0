"""Config models of the generation plugin's components: importing them needs no torch, so a recipe
validates without importing the components themselves (registered with ``config=``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, PositiveInt

from unisd.components.kinds import GeneratorConfig


class VLLMConfig(GeneratorConfig):
    """vLLM engine options. The rest of the sampling parameters come from the ``generation`` section."""

    gpu_memory_utilization: float = Field(
        0.3,
        gt=0.0,
        lt=1.0,
        description="GPU: share of the device's memory vLLM takes for weights and KV cache; training keeps the rest",
    )
    cpu_kv_cache_gib: float = Field(
        1.0,
        gt=0.0,
        description="CPU: GiB of memory for vLLM's KV cache (its "
        "kv_cache_memory_bytes); it must hold one prompt + "
        "completion of max_model_len tokens at least",
    )
    max_model_len: PositiveInt | None = Field(
        None,
        description="longest prompt + completion the engine holds; "
        "default: data.max_prompt_length + "
        "generation.max_new_tokens",
    )
    enforce_eager: bool = Field(False, description="skip CUDA-graph capture: faster start, slower decoding")
    enable_prefix_caching: bool = Field(
        True,
        description="reuse the KV cache of a prompt across its num_generations samples (reset after every weight update)",
    )
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="further vllm.LLM arguments, passed as they are"
    )

    def reserved_memory(self, device) -> int:
        """The engine's share: ``gpu_memory_utilization`` of the whole GPU, or the CPU KV cache."""
        import torch

        device = torch.device(device)
        if device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            return int(self.gpu_memory_utilization * torch.cuda.get_device_properties(index).total_memory)
        return int(self.cpu_kv_cache_gib * 2**30)


class HFGenerateConfig(GeneratorConfig):
    """Options of the ``hf`` backend."""

    merge_adapter: bool = Field(
        True,
        description="decode with the LoRA deltas folded into the base weights, exactly "
        "undone afterwards (one matmul per layer instead of three; "
        "benchmarks/step_throughput.py); not under FSDP2, whose weights are shards",
    )
