"""The final model: the adapter (under LoRA) and a merged directory loadable with
``AutoModelForCausalLM.from_pretrained``."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from peft import PeftModel
    from transformers import PreTrainedModel


@dataclass
class FinalModel:
    """What :func:`save_final` wrote (``paths``: ``adapter`` under LoRA, ``merged``) and the merged
    module itself (``None`` without ``merged``), for an in-process evaluation."""

    paths: dict[str, Path] = field(default_factory=dict)
    model: torch.nn.Module | None = None


def save_final(model: PreTrainedModel | PeftModel, tokenizer, out_dir: Path, *, merged: bool = True) -> FinalModel:
    """Write ``out_dir/adapter`` (LoRA only) and ``out_dir/merged``.

    Merging happens on the live model (``merge_and_unload``), so call this after training.
    """
    final = FinalModel()
    out_dir.mkdir(parents=True, exist_ok=True)
    merge_and_unload = getattr(model, "merge_and_unload", None)  # a LoRA model under peft has it
    if merge_and_unload is not None:
        final.paths["adapter"] = _atomic_save(
            out_dir / "adapter", lambda d: (model.save_pretrained(d), tokenizer.save_pretrained(d))
        )
    if merged:
        merged_model = merge_and_unload() if merge_and_unload is not None else model
        merged_model.config.use_cache = True  # training turns the cache off; a loaded model generates with it
        final.paths["merged"] = _atomic_save(
            out_dir / "merged", lambda d: (merged_model.save_pretrained(d), tokenizer.save_pretrained(d))
        )
        final.model = merged_model
    return final


def _atomic_save(final: Path, write) -> Path:
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    write(str(tmp))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def _base_model_id(name: str) -> str | None:
    """The base model as a hub id for a card's metadata (None for a local path or the embedded model)."""
    from unisd.models.embedded import EMBEDDED_MODEL

    if name == EMBEDDED_MODEL or Path(name).exists() or name.count("/") != 1:
        return None
    return name


def model_card(recipe, summary: dict, kind: str) -> str:
    """A hub model card (``README.md``) for ``final/merged`` or ``final/adapter``: what the model is,
    the recipe that made it (embedded), its data, its held-out result and the UniSD version."""
    import json

    import yaml

    from unisd.version import __version__
    from unisd.recipe import dump_recipe

    base = recipe.model.name_or_path
    meta = {
        "library_name": "peft" if kind == "adapter" else "transformers",
        "tags": ["unisd", "self-distillation", recipe.name],
        "pipeline_tag": "text-generation",
    }
    if hub_id := _base_model_id(base):
        meta["base_model"] = hub_id
    ds = recipe.data.dataset.model_dump(mode="json")
    data = ", ".join(f"{k}={json.dumps(v)}" for k, v in ds.items() if v not in (None, {}, []) and k != "name")
    h = summary.get("heldout")
    result = (
        f"{100 * h['accuracy_before']:.1f}% → {100 * h['accuracy_after']:.1f}% greedy accuracy on {h['n']} held-out "
        f"records ({h.get('split', 'held-out')} split), before → after training"
        if h
        else "not measured (evaluation.heldout = 0)"
    )
    load = (
        'from peft import AutoPeftModelForCausalLM\nmodel = AutoPeftModelForCausalLM.from_pretrained("PATH")'
        if kind == "adapter"
        else 'from transformers import AutoModelForCausalLM, AutoTokenizer\nmodel = AutoModelForCausalLM.from_pretrained("PATH")\n'
        'tokenizer = AutoTokenizer.from_pretrained("PATH")'
    )
    what = (
        "A LoRA adapter"
        if kind == "adapter"
        else "A model (LoRA merged into the base weights)"
        if recipe.lora.enabled
        else "A fully fine-tuned model"
    )
    return (
        f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n\n# {recipe.name}\n\n"
        f"{what} trained with UniSD {__version__}, self-distillation: the model learns from "
        f"its own samples scored by a copy of itself that sees the reference answer.\n\n"
        f"- **Base model**: `{base}`\n- **Recipe**: `{recipe.name}` — {recipe.description.strip().splitlines()[0] if recipe.description.strip() else ''}\n"
        f"- **Data**: {ds.get('type')} ({data})\n- **Training**: {summary.get('steps')} optimizer steps, "
        f"{summary.get('records')} records\n- **Held-out result**: {result}\n\n"
        f"## Load it\n\n```python\n{load}\n```\n\n## The recipe\n\nEvery setting of the run (`unisd train --recipe "
        f"this.yaml` repeats it):\n\n```yaml\n{dump_recipe(recipe).rstrip()}\n```\n"
    )


def write_model_cards(final_dir: Path, recipe, summary: dict) -> list[Path]:
    """``README.md`` in ``final/merged`` and ``final/adapter`` (replacing the adapter card peft writes,
    which names a local cache path as its base)."""
    written = []
    for kind in ("merged", "adapter"):
        folder = Path(final_dir) / kind
        if folder.is_dir():
            (folder / "README.md").write_text(model_card(recipe, summary, kind), encoding="utf-8")
            written.append(folder / "README.md")
    return written


def push_to_hub(
    run_dir: Path, repo_id: str, *, adapter: bool = False, private: bool = False, token: str | None = None
) -> str:
    """Upload ``run_dir/final/merged`` (or ``final/adapter``) with its model card; returns the repo URL.
    Offline, without a token, or refused by the Hub: one :class:`~unisd.errors.UserError` saying so."""
    from unisd.errors import UserError

    kind = "adapter" if adapter else "merged"
    folder = Path(run_dir) / "final" / kind
    if not (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file():
        hint = (
            " (train with checkpoint.save_merged=true, or push the adapter with --adapter)" if kind == "merged" else ""
        )
        raise UserError(f"{folder} holds no model to push{hint}")
    import huggingface_hub as hub

    if hub.constants.HF_HUB_OFFLINE:
        raise UserError(
            "cannot push: the Hugging Face Hub is off (HF_HUB_OFFLINE=1); unset it on a machine with network"
        )
    try:
        api = hub.HfApi(token=token)
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(
            repo_id=repo_id, folder_path=str(folder), commit_message=f"UniSD: {kind} model of {Path(run_dir).name}"
        )
    except Exception as exc:  # noqa: BLE001 - network, authentication and Hub refusals alike are the user's to fix
        raise UserError(
            f"cannot push {folder} to {repo_id!r}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
            "(network reachable? logged in: `hf auth login` or HF_TOKEN?)"
        ) from None
    return str(url)
