"""The final model: the adapter (under LoRA) and a merged directory loadable with
``AutoModelForCausalLM.from_pretrained``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch


def save_final(model: torch.nn.Module, tokenizer, out_dir: Path, *, merged: bool = True) -> dict[str, Path]:
    """Write ``out_dir/adapter`` (LoRA only) and ``out_dir/merged``; returns the written paths.

    Merging happens on the live model (``merge_and_unload``), so call this after training; the
    returned merged module is what an in-process evaluation should use.
    """
    paths: dict[str, Path] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    is_peft = hasattr(model, "merge_and_unload")
    if is_peft:
        paths["adapter"] = _atomic_save(out_dir / "adapter", lambda d: (model.save_pretrained(d), tokenizer.save_pretrained(d)))
    if merged:
        merged_model = model.merge_and_unload() if is_peft else model
        paths["merged"] = _atomic_save(out_dir / "merged", lambda d: (merged_model.save_pretrained(d), tokenizer.save_pretrained(d)))
        paths["_model"] = merged_model  # type: ignore[assignment]
    return paths


def _atomic_save(final: Path, write) -> Path:
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    write(str(tmp))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final
