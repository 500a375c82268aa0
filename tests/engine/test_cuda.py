"""Checks that need a GPU (marker ``cuda``), run by ``benchmarks/gpu_check.py`` on a GPU machine and
skipped elsewhere. ``UNISD_CUDA_TESTS_ON_CPU=1`` runs them on the CPU instead (the check's
``--dry-run``): the same code paths, so CI keeps them working before a GPU is ever lent.

What they check on the device: the block-wise divergence at a real vocabulary (151,936) equals the
full-vocabulary one, values and gradients; whole training steps of a vanilla and of the UniSD*
recipe, in fp32 and in bf16 mixed precision, give finite losses and move the adapters; the memory
estimate checked before a run bounds the peak the GPU allocator saw; greedy decoding on the device
gives the logits the CPU gives.
"""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from unisd.runs.launch import train
from unisd.engine.vocab_chunks import block_logprobs, divergence_and_token_logprobs
from unisd_plugins.divergences.functions import reverse_kl

pytestmark = pytest.mark.cuda
ON_CPU = "UNISD_CUDA_TESTS_ON_CPU"


@pytest.fixture
def device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if os.environ.get(ON_CPU) == "1":
        return torch.device("cpu")
    pytest.skip(f"no CUDA device ({ON_CPU}=1 runs these on the CPU)")


def test_vocab_blocks_equal_the_full_vocabulary_at_151936(device):
    g = torch.Generator().manual_seed(0)
    tokens, hidden, vocab = 48, 64, 151_936
    hs = torch.randn(1, tokens, hidden, generator=g).to(device).requires_grad_()
    ht = torch.randn(1, tokens, hidden, generator=g).to(device)
    w = (torch.randn(vocab, hidden, generator=g) / 4).to(device)
    wt = (torch.randn(vocab, hidden, generator=g) / 4).to(device)
    ids = torch.randint(0, vocab, (1, tokens), generator=g).to(device)
    s, t = block_logprobs(hs, w, None, 0.7), block_logprobs(ht, wt, None, 0.7)
    ref = reverse_kl(t, s)
    (ref_grad,) = torch.autograd.grad(ref.sum(), hs)
    div, student_tokens, _ = divergence_and_token_logprobs(
        reverse_kl, hs, (w, None), ht, (wt, None), ids, 0.7, chunk=16
    )
    (grad,) = torch.autograd.grad(div.sum(), hs)
    torch.testing.assert_close(div, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(student_tokens, s.gather(-1, ids[..., None])[..., 0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("precision", ["no", "bf16"])
@pytest.mark.parametrize("recipe_name", ["vanilla", "unisd-star"])
def test_training_steps_on_the_device(make_recipe, tmp_path, device, recipe_name, precision):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    recipe = make_recipe(
        recipe_name, f"precision.mixed_precision={precision}", "checkpoint.every_steps=100", "training.max_steps=2"
    )
    summary = train(recipe, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss/total"] for r in rows if "loss/total" in r]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses), losses
    assert summary["steps"] == 2
    if device.type == "cuda":
        assert torch.cuda.max_memory_allocated() > 0


def test_memory_estimate_bounds_the_gpu_peak(make_recipe, tmp_path, device):
    from unisd.models.memory import estimate_memory

    if device.type != "cuda":
        pytest.skip("the GPU allocator's peak is only measured on a GPU")
    recipe = make_recipe("vanilla", "training.max_steps=2", "checkpoint.every_steps=100")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    train(recipe, tmp_path / "run")
    peak = torch.cuda.max_memory_allocated()
    seq = recipe.data.max_prompt_length + recipe.generation.max_new_tokens
    estimate = estimate_memory(recipe.model, recipe.training.batch_size, seq, recipe.lora, teacher_copies=0)
    assert 0 < peak <= estimate, (peak, estimate)


def test_greedy_logits_on_the_device_match_the_cpu(tiny_model_dir, device):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    ids = torch.tensor([[5, 17, 42, 9, 3, 77]])
    with torch.no_grad():
        cpu = model(ids).logits
        on_device = model.to(device)(ids.to(device)).logits.cpu()
    torch.testing.assert_close(on_device, cpu, rtol=1e-4, atol=1e-4)
