"""FSDP2: the student (and frozen teacher copies) sharded with PyTorch's ``fully_shard``, and their
sharded state for ``torch.distributed.checkpoint`` (DCP).

Each transformer block (the classes in the model's ``_no_split_modules``) becomes one FSDP unit and
the transformers model itself the root unit (embeddings, final norm and LM head, so tied weights stay
in one unit). Under peft the root is the model *under* the adapter wrapper: peft forwards
``generate`` to it, so every forward, sampling included, runs the root's gather hooks.

Sharded state is keyed by parameter name (``get_state_dict``), not by optimizer index, which is what
lets DCP load a checkpoint into another number of processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from unisd.models.wrapping import base_model, trainable_parameters, unwrap
from unisd.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from torch.distributed.fsdp import FSDPModule


def strategy_of(recipe, accelerator) -> str:
    """``'ddp'`` or ``'fsdp2'``: the recipe's ``distributed.strategy``, or FSDP2 when accelerate's
    launcher is configured for it (``accelerate launch`` with an FSDP2 config). UniSD then applies
    ``fully_shard`` itself (the same path as on CPU, where accelerate refuses FSDP)."""
    kind = str(accelerator.distributed_type).rsplit(".", 1)[-1]
    if kind in ("DEEPSPEED", "MEGATRON_LM"):
        raise UserError(
            f"accelerate is configured for {kind}, which UniSD does not support (untested here); use "
            "distributed.strategy: fsdp2 for sharded training, or DDP (accelerate's MULTI_GPU / MULTI_CPU)"
        )
    if kind == "FSDP":
        plugin = getattr(accelerator.state, "fsdp_plugin", None)
        version = int(getattr(plugin, "fsdp_version", 1) or 1)
        if version != 2:
            raise UserError(
                "accelerate is configured for FSDP version 1; UniSD shards with FSDP2 (fully_shard): set "
                "fsdp_version: 2 in the accelerate config, or use a multi-GPU config with "
                "distributed.strategy: fsdp2 in the recipe"
            )
        return "fsdp2"
    return recipe.distributed.strategy


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether ``model`` (or the transformers model under its wrappers) is an FSDP2 module."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule) or isinstance(base_model(model), FSDPModule)


def local(t: torch.Tensor) -> torch.Tensor:
    """This process's shard of a DTensor; a plain tensor as it is."""
    return t.to_local() if hasattr(t, "to_local") else t


def shard(
    model: torch.nn.Module, *, reshard_after_forward: bool = True, mixed_precision: str = "no"
) -> torch.nn.Module:
    """Apply ``fully_shard`` in place to every transformer block of ``model`` and then to its root
    (the transformers model under peft); returns ``model``. Frozen modules shard the same way."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    root = base_model(model)
    kwargs: dict[str, Any] = {"reshard_after_forward": reshard_after_forward}
    if mixed_precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if mixed_precision == "bf16" else torch.float16
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
    blocks = set(getattr(root, "_no_split_modules", None) or ())
    units = [m for m in root.modules() if type(m).__name__ in blocks and m is not root]
    for unit in units:
        fully_shard(unit, **kwargs)
    fully_shard(root, **kwargs)
    return model


def gradient_sync(model: torch.nn.Module, enabled: bool) -> None:
    """Reduce-scatter gradients after this backward (``enabled``) or keep accumulating locally."""
    cast("FSDPModule", base_model(model)).set_requires_gradient_sync(enabled)  # fully_shard made it one


def _plain_optimizer(optimizer):
    return getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper holds the torch optimizer


def _options(**kwargs):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(ignore_frozen_params=True, **kwargs)


def state(model: torch.nn.Module, optimizer, components: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trainable weights and the optimizer state by parameter name (this process's shards), and
    the components' state (DTensors are sharded, other tensors and objects are the same everywhere)."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model = unwrap(model)  # parameter names as the model has them (no DDP "module." prefix)
    msd, osd = get_state_dict(model, _plain_optimizer(optimizer), options=_options())
    msd = _trainable_only(model, msd)
    if not msd:
        raise RuntimeError(f"{type(model).__name__} has no trainable weights to checkpoint")
    return {"model": msd, "optimizer": osd, "components": components or {}}


def _trainable_only(model: torch.nn.Module, state_dict: dict[str, Any]) -> dict[str, Any]:
    """Drop what ``ignore_frozen_params`` lets through for a tied weight (the LM head tied to the
    frozen embeddings has a name of its own in the state dict)."""
    names = trainable_parameters(model)
    return {k: v for k, v in state_dict.items() if k in names}


def save_state(path: Path, model: torch.nn.Module, optimizer, components: dict[str, Any] | None = None) -> None:
    """Every process writes its shards into ``path`` (collective; the main process writes the metadata)."""
    import torch.distributed.checkpoint as dcp

    dcp.save(state(model, optimizer, components), checkpoint_id=str(path))


def load_state(path: Path, model: torch.nn.Module, optimizer, components: dict[str, Any] | None = None) -> None:
    """Load ``path`` into this process's shards, resharding when it was written by another number of
    processes (collective). ``components`` (the components' current state) is loaded in place:
    tensors are filled, other values replaced."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    from unisd.engine.checkpoint import check_sharded_metadata

    check_sharded_metadata(path)  # DCP unpickles it unrestricted
    target = state(model, optimizer, components)
    dcp.load(target, checkpoint_id=str(path))  # raises when the checkpoint lacks a key of the target
    set_state_dict(
        model,
        _plain_optimizer(optimizer),
        model_state_dict=target["model"],
        optim_state_dict=target["optimizer"],
        options=_options(strict=False),
    )


def full_trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable weights gathered whole, on the CPU of every process (collective under FSDP2)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    model = unwrap(model)
    if not is_sharded(model):
        return {n: p.detach().cpu() for n, p in trainable_parameters(model).items()}
    return _trainable_only(model, get_model_state_dict(model, options=_options(full_state_dict=True, cpu_offload=True)))
