"""Helpers for tests across UniSD: tiny random causal LMs with a real (small) BPE tokenizer.

``make_tiny_model_dir`` writes a directory that ``AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` load offline in well under a second. The tokenizer is a byte-level
BPE trained with the ``tokenizers`` library on a small built-in English + code corpus, with ChatML
special tokens and a ChatML chat template. Everything is deterministic for a given seed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

BOS_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|pad|>"
SPECIAL_TOKENS = [BOS_TOKEN, IM_START, EOS_TOKEN, PAD_TOKEN]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_ENGLISH = """\
The quick brown fox jumps over the lazy dog. A student learns from a teacher, and the teacher
learns from the student in turn. What is the answer? The answer is 42. Let us think step by step.
First, we add the two numbers. Then we multiply the result by three. Finally, we subtract one.
Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.
How many clips did Natalia sell altogether in April and May? She sold 48 / 2 = 24 clips in May.
Altogether she sold 48 + 24 = 72 clips. #### 72
Question: Which of these is a mammal? Choices: (A) shark (B) whale (C) trout (D) frog. Answer: B
The sun rises in the east and sets in the west. Water boils at 100 degrees Celsius at sea level.
You are a helpful assistant. Please answer the question clearly and briefly.
I think the correct option is C because the evidence supports it. Explain your reasoning.
Self-distillation trains a model on its own outputs, scored by a better-informed copy of itself.
The weather today is sunny with a light breeze, and tomorrow it may rain in the afternoon.
One, two, three, four, five, six, seven, eight, nine, ten. 0 1 2 3 4 5 6 7 8 9 10 11 12 100 1000
"""

_CODE = """\
def add(a, b):
    \"\"\"Return the sum of a and b.\"\"\"
    return a + b


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    for i in range(2, int(n ** 0.5) + 1):
        if n % i == 0:
            return False
    return True


class Counter:
    def __init__(self):
        self.counts = {}

    def update(self, items):
        for item in items:
            self.counts[item] = self.counts.get(item, 0) + 1


assert add(2, 3) == 5
print([x * x for x in range(10) if x % 2 == 0])
import json
data = json.loads('{"tool": "search", "args": {"query": "weather"}}')
"""


def tiny_corpus() -> list[str]:
    """The built-in training corpus of the tiny tokenizer (English + Python lines)."""
    return [line for line in (_ENGLISH + _CODE).splitlines() if line.strip()] * 4


def make_tiny_tokenizer(
    vocab_size: int = 512, *, pad_token: bool = True, chat_template: bool = True, model_max_length: int = 512
):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on :func:`tiny_corpus` (~0.1 s).

    ``pad_token=False`` leaves the pad token unset (the ``<|pad|>`` token still exists in the
    vocabulary); ``chat_template=False`` leaves the chat template unset.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tiny_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN if pad_token else None,
        model_max_length=model_max_length,
    )
    if chat_template:
        fast.chat_template = CHATML_TEMPLATE
    return fast


def make_tiny_model_dir(
    path: str | os.PathLike[str],
    arch: Literal["llama", "qwen2"] = "llama",
    vocab_size: int = 512,
    seed: int = 0,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    pad_token: bool = True,
    chat_template: bool = True,
) -> Path:
    """Write a tiny random causal LM + tokenizer to ``path`` (created if needed); return it.

    The model's vocabulary equals the tokenizer's length. Weights are drawn with ``seed``.
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, PretrainedConfig, Qwen2Config

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tok = make_tiny_tokenizer(vocab_size, pad_token=pad_token, chat_template=chat_template)
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    common = dict(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        max_position_embeddings=512,
        bos_token_id=ids[BOS_TOKEN],
        eos_token_id=ids[EOS_TOKEN],
        pad_token_id=ids[PAD_TOKEN] if pad_token else None,
        tie_word_embeddings=True,
    )
    config: PretrainedConfig
    if arch == "llama":
        config = LlamaConfig(**common)
    elif arch == "qwen2":
        config = Qwen2Config(**common)
    else:
        raise ValueError(f"arch must be 'llama' or 'qwen2', not {arch!r}")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
    )
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def randomize_lora(model, seed: int, std: float, *, names: str = "lora_") -> None:
    """Overwrite the LoRA parameters of ``model`` (those whose name contains ``names``) with
    N(0, std²) draws from a generator seeded with ``seed`` (a fresh adapter's B is zero, so it
    changes nothing until trained)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if names in n:
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32).to(p.dtype) * std)
