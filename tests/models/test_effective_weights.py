"""effective_weights: the student's weights with LoRA merged, as merge_and_unload would write them."""

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from unisd.models.wrapping import effective_weights
from unisd.testing import randomize_lora


@pytest.fixture
def peft_model(tiny_model_dir):
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    randomize_lora(model, 0, 0.5, names="lora_B")  # B starts at zero: make the adapter change something
    return model


def test_matches_merge_and_unload(peft_model):
    got = dict(effective_weights(peft_model))
    want = copy.deepcopy(peft_model).merge_and_unload().state_dict()
    assert set(got) == set(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-6, msg=k)
    assert not torch.equal(
        got["model.layers.0.self_attn.q_proj.weight"],
        peft_model.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight,
    )


def test_disabled_adapter_gives_the_base_weights(peft_model, tiny_model_dir):
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).state_dict()
    with peft_model.disable_adapter():
        got = dict(effective_weights(peft_model))
    assert set(got) == set(base)
    for k in base:
        assert torch.equal(got[k], base[k]), k


def test_live_model_untouched_and_plain_model_passes_through(peft_model, tiny_model_dir):
    before = {k: v.clone() for k, v in peft_model.state_dict().items()}
    dict(effective_weights(peft_model))
    for k, v in peft_model.state_dict().items():
        assert torch.equal(v, before[k]), k
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert list(dict(effective_weights(plain))) == list(plain.state_dict())
