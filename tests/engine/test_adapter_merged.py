"""Decoding with the LoRA deltas folded into the base weights: the same model, and exactly undone."""

from __future__ import annotations

import torch

from unisd.engine.modeling import build_student

from unisd.models.wrapping import adapter_merged
from unisd.models.loading import load_model_and_tokenizer
from unisd.recipe import load_recipe


def _student(tiny_model_dir):
    recipe = load_recipe("vanilla", [f"model.name_or_path={tiny_model_dir}", "lora.r=4", "lora.alpha=8"])
    model, tok = load_model_and_tokenizer(recipe.model)
    model = build_student(model, recipe)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval(), tok


def test_merged_decoding_is_the_same_model_and_is_exactly_undone(tiny_model_dir):
    model, tok = _student(tiny_model_dir)
    ids = torch.tensor([[5, 9, 13, 2, 7, 11]])
    base = {n: (p.data_ptr(), p.detach().clone()) for n, p in model.named_parameters() if "base_layer" in n}
    with torch.no_grad():
        before = model(input_ids=ids).logits
        with adapter_merged(model) as merged:
            assert merged
            inside = model(input_ids=ids).logits
            changed = [n for n, p in model.named_parameters() if "base_layer" in n and not torch.equal(p, base[n][1])]
            greedy_merged = model.generate(input_ids=ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
        after = model(input_ids=ids).logits
        greedy = model.generate(input_ids=ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert changed  # the deltas really were folded in (and the adapter path switched off)
    torch.testing.assert_close(inside, before, rtol=1e-5, atol=1e-5)
    assert torch.equal(after, before) and torch.equal(greedy_merged, greedy)
    for n, p in model.named_parameters():  # the very same tensors, bit for bit: no W + ΔW − ΔW drift
        if "base_layer" in n:
            assert p.data_ptr() == base[n][0] and torch.equal(p, base[n][1])


def test_nothing_is_merged_while_the_adapter_is_off_or_without_one(tiny_model_dir):
    model, _ = _student(tiny_model_dir)
    with model.disable_adapter(), adapter_merged(model) as merged:  # SSD samples from the base weights
        assert not merged
    plain, _ = load_model_and_tokenizer(load_recipe("vanilla", [f"model.name_or_path={tiny_model_dir}"]).model)
    with adapter_merged(plain) as merged:
        assert not merged
