"""load_model_and_tokenizer on tiny models: round trip, dtype, pad token, chat template, vocabularies."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from unisd.models.errors import ChatTemplateMissingError, VocabularyMismatchError
from unisd.models.loading import check_same_vocabulary, load_model_and_tokenizer
from unisd.recipe.sections import ModelConfig
from unisd.testing import CHATML_TEMPLATE, make_tiny_model_dir


def _cfg(path: Path, **kw) -> ModelConfig:
    return ModelConfig(name_or_path=str(path), **kw)


def test_round_trip_and_generation(tiny_model_dir: Path) -> None:
    model, tok = load_model_and_tokenizer(_cfg(tiny_model_dir), device="cpu")
    assert model.config.model_type == "llama" and model.dtype == torch.float32
    assert tok.padding_side == "left" and tok.pad_token == "<|pad|>"
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    prompts = [
        tok.apply_chat_template([{"role": "user", "content": c}], add_generation_prompt=True, tokenize=False)
        for c in ("Hi", "What is the answer to the question?")
    ]
    assert prompts[0].endswith("<|im_start|>assistant\n")
    batch = tok(prompts, return_tensors="pt", padding=True)
    assert batch.attention_mask[0, 0] == 0 and batch.attention_mask[0, -1] == 1  # left padding
    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert out.shape == (2, batch.input_ids.shape[1] + 4)


def test_qwen2_and_dtype_and_attention(tiny_qwen_dir: Path) -> None:
    model, _ = load_model_and_tokenizer(_cfg(tiny_qwen_dir, dtype="bfloat16", attn_implementation="eager"))
    assert model.config.model_type == "qwen2" and model.dtype == torch.bfloat16
    assert model.config._attn_implementation == "eager"


def test_missing_pad_token_uses_eos(tmp_path: Path) -> None:
    path = make_tiny_model_dir(tmp_path / "nopad", pad_token=False)
    model, tok = load_model_and_tokenizer(_cfg(path))
    assert tok.pad_token == tok.eos_token == "<|im_end|>"
    assert model.config.pad_token_id == tok.eos_token_id == model.generation_config.pad_token_id


def test_missing_chat_template_fails_before_loading_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    path = make_tiny_model_dir(tmp_path / "notemplate", chat_template=False)

    def no_weights(*a, **k):
        raise AssertionError("weights must not be loaded before the template check")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_weights)
    with pytest.raises(ChatTemplateMissingError, match="model.chat_template"):
        load_model_and_tokenizer(_cfg(path))


def test_chat_template_override(tmp_path: Path) -> None:
    path = make_tiny_model_dir(tmp_path / "notemplate", chat_template=False)
    template = CHATML_TEMPLATE.replace("assistant", "bot")
    _, tok = load_model_and_tokenizer(_cfg(path, chat_template=template))
    text = tok.apply_chat_template([{"role": "user", "content": "x"}], add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>bot\n")


def test_vocabulary_check(tiny_model_dir: Path, tiny_qwen_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    a = AutoTokenizer.from_pretrained(tiny_model_dir)
    check_same_vocabulary(a, AutoTokenizer.from_pretrained(tiny_qwen_dir))
    other = AutoTokenizer.from_pretrained(make_tiny_model_dir(tmp_path / "v600", vocab_size=600))
    with pytest.raises(VocabularyMismatchError, match="sizes 512 vs 600.*same tokenizer"):
        check_same_vocabulary(a, other)


def test_tiny_model_dir_is_deterministic(tmp_path: Path) -> None:
    a = make_tiny_model_dir(tmp_path / "a", seed=1)
    b = make_tiny_model_dir(tmp_path / "b", seed=1)
    c = make_tiny_model_dir(tmp_path / "c", seed=2)
    for name in ("tokenizer.json", "model.safetensors", "config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()


@pytest.mark.slow
def test_real_model_loads_with_defaults(real_model_dir: Path) -> None:
    model, tok = load_model_and_tokenizer(ModelConfig())
    assert tok.padding_side == "left" and tok.pad_token == "<|im_end|>" and tok.chat_template
    assert model.config.num_hidden_layers == 30 and model.dtype == torch.float32
