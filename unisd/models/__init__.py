"""Model location, GGUF conversion, loading and memory checks."""

from unisd.models.embedded import EMBEDDED_MODEL, embedded_gguf_path, embedded_model_dir
from unisd.models.errors import (
    ChatTemplateMissingError,
    EmbeddedModelUnavailable,
    InsufficientMemoryError,
    ModelLoadError,
    ModelNotFoundError,
    VocabularyMismatchError,
)
from unisd.models.loading import check_same_vocabulary, load_model_and_tokenizer, load_tokenizer, resolve_model_path
from unisd.models.memory import available_memory, check_fits, estimate_memory, memory_breakdown

__all__ = [
    "EMBEDDED_MODEL",
    "ChatTemplateMissingError",
    "EmbeddedModelUnavailable",
    "InsufficientMemoryError",
    "ModelLoadError",
    "ModelNotFoundError",
    "VocabularyMismatchError",
    "available_memory",
    "check_fits",
    "check_same_vocabulary",
    "embedded_gguf_path",
    "embedded_model_dir",
    "estimate_memory",
    "load_model_and_tokenizer",
    "load_tokenizer",
    "memory_breakdown",
    "resolve_model_path",
]
