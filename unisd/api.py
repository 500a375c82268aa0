"""The helpers a plugin may use beyond the component API (``unisd``, ``unisd.components``).

Everything else under ``unisd`` is internal and may move between releases; these names stay. They
are loaded on first use, so ``import unisd.api`` costs nothing (docs/plugins.md lists them):

Losses and metrics
    ``masked_mean(values, mask, token_weights=None, normalization="sequence")``: the mean over a
    mask's tokens, per sequence then over the batch, or over all tokens; ``series(history, key)``:
    one metric's values over a run's logged steps (for ``activity``).
Models
    ``base_model(model)``: the transformer under peft and DDP wrappers; ``adapter_merged(model)``:
    decode with the LoRA deltas folded in (a context manager); ``adapters_disabled(model)`` and
    ``effective_weights(model)``: the weights a forward would use; ``block_logprobs(hidden,
    weight, bias, temperature)``: the LM head and log-softmax in fp32; ``LM_HEAD_INPUT``: the
    feature-layer name of the LM head's input; ``generate_texts(model, tokenizer, prompts, …)``:
    chat-rendered greedy or sampled completions as text.
Sharding (FSDP2)
    ``is_sharded(model)``, ``local(tensor)``: a DTensor's local shard (a plain tensor as is).
Records
    ``validate_records(records, …)``, ``read_jsonl_records(path, …)``: the training-record schema
    with the slots a recipe's components declare.
Files and errors
    ``write_atomically(path, text_or_bytes)``: a file written whole or not at all (caches);
    ``UserError``: an error in what the user gave (exit code 2, no traceback).
Evaluation
    ``TaskSpec``, ``GroupSpec``, ``DataUnavailable``, ``current_settings()``: lm-eval task specs;
    ``CheckedProgram``, ``SandboxLimits``, ``run_many``, ``require_isolation``,
    ``unsafe_code_allowed``: the code sandbox and its judge.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "masked_mean": "unisd.engine.reduction",
    "series": "unisd.runs.activity",
    "base_model": "unisd.models.wrapping",
    "adapter_merged": "unisd.models.wrapping",
    "adapters_disabled": "unisd.models.wrapping",
    "effective_weights": "unisd.models.wrapping",
    "block_logprobs": "unisd.engine.vocab_chunks",
    "LM_HEAD_INPUT": "unisd.components.batch",
    "generate_texts": "unisd.engine.decoding",
    "is_sharded": "unisd.engine.sharding",
    "local": "unisd.engine.sharding",
    "validate_records": "unisd.data.records",
    "read_jsonl_records": "unisd.data.records",
    "TaskSpec": "unisd.components.evaluators",
    "GroupSpec": "unisd.components.evaluators",
    "DataUnavailable": "unisd.components.evaluators",
    "current_settings": "unisd.components.evaluators",
    "CheckedProgram": "unisd.sandbox",
    "SandboxLimits": "unisd.sandbox",
    "run_many": "unisd.sandbox",
    "require_isolation": "unisd.sandbox",
    "unsafe_code_allowed": "unisd.sandbox",
    "write_atomically": "unisd.files",
    "UserError": "unisd.errors",
}

__all__ = [
    "CheckedProgram",
    "DataUnavailable",
    "GroupSpec",
    "LM_HEAD_INPUT",
    "SandboxLimits",
    "TaskSpec",
    "UserError",
    "adapter_merged",
    "adapters_disabled",
    "base_model",
    "block_logprobs",
    "current_settings",
    "effective_weights",
    "generate_texts",
    "is_sharded",
    "local",
    "masked_mean",
    "read_jsonl_records",
    "require_isolation",
    "run_many",
    "series",
    "unsafe_code_allowed",
    "validate_records",
    "write_atomically",
]

if TYPE_CHECKING:  # pragma: no cover  (for type checkers and editors; at run time names load lazily)
    from unisd.data.records import read_jsonl_records, validate_records
    from unisd.runs.activity import series
    from unisd.engine.decoding import generate_texts
    from unisd.models.wrapping import adapter_merged, base_model
    from unisd.engine.reduction import masked_mean
    from unisd.components.batch import LM_HEAD_INPUT
    from unisd.engine.sharding import is_sharded, local
    from unisd.engine.vocab_chunks import block_logprobs
    from unisd.sandbox import CheckedProgram, SandboxLimits, require_isolation, run_many, unsafe_code_allowed
    from unisd.errors import UserError
    from unisd.components.evaluators import DataUnavailable, GroupSpec, TaskSpec, current_settings
    from unisd.files import write_atomically
    from unisd.models.wrapping import adapters_disabled, effective_weights


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'unisd.api' has no attribute {name!r} (the plugin API: {', '.join(__all__)})")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
