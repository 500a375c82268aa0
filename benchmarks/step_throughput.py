"""Seconds per optimizer step, completion tokens per second and peak memory of whole training steps.

Each configuration trains ``--steps`` optimizer steps in a fresh process (so peak resident memory is
its own) on the same model, prompts, batch and budget: SmolLM2-135M-Instruct (embedded), LoRA
r16/α32, batch 4, one micro-batch per step, the first 16 GSM8K train prompts from ``../shared/data``
with TRL SDFT's teacher template (``{prompt}\n\n{reference}``, the reference being the gold
solution), ≤ ``--max-new-tokens`` new tokens, τ = 0.7, fp32. The first step is a
warm-up and is not counted. Configurations:

- ``vanilla``, ``sdft`` (reverse KL) and ``unisd-star`` with the defaults (divergence in blocks of
  ``training.logit_chunk`` tokens, LoRA merged for decoding, gradient checkpointing, rows scored
  in length groups),
- ``sdft-naive``: ``training.logit_chunk=0``, ``generation.backend.merge_adapter=false`` and no
  gradient checkpointing (the path before all three),
- ``sdft-no-gc``: ``sdft`` with ``training.gradient_checkpointing=false``,
- ``sdft-jsd-gc``: ``sdft-gc`` with the generalized JSD(β = 0.5) over the full vocabulary (TRL SDFT's
  ``distillation_alpha = 0.5``, which TRL computes on the top-100 logits),
- ``sdft-jsd-gc-unmerged``: ``sdft-jsd-gc`` decoding through the unmerged LoRA layers (no merged
  copy of the weights during ``generate``), and ``sdft-jsd-gc-vllm`` with the vLLM backend (needs
  ``vllm``; not in the default list),
- ``unisd-star-4096``: ``unisd-star`` with ``training.score_max_tokens=4096`` (the default before
  1024), ``unisd-star-unshared``: ``unisd-star`` with ``training.share_prompt_prefix=false`` (the teacher
  runs every row's whole prompt), and ``unisd-star-one-forward``: that, with
  ``training.score_max_tokens=0`` too (each scoring call in one forward, every row padded to the
  longest),
- ``sdft-jsd-gc-ga2-rollout`` and ``sdft-ga2-rollout``: ``sdft-jsd-gc`` and ``sdft`` with the 4 prompts
  of a step as 2 micro-batches of 2 sampled in one ``generate`` call (``generation.rollout_per_step``),
- ``trl-sdft``: TRL's ``SDFTTrainer`` on the same model, prompts and batch, when ``trl`` is
  importable (not a dependency; ``pip install trl``), else reported as not run.

Ratios are against ``sdft-naive`` and, when it ran, ``trl-sdft``. Nothing is asserted::

    python benchmarks/step_throughput.py --steps 4
    python benchmarks/step_throughput.py --quick     # every column in a few minutes (a smoke run)
    python benchmarks/step_throughput.py --device cuda --model qwen2.5-1.5b --data synthetic --max-new-tokens 512

``--model`` names the embedded model (the default), a shape of ``benchmarks/random_models.py``
(randomly initialised, built once for every configuration: for GPU machines, which have no hub
access) or a local model folder. ``--data synthetic`` uses synthetic records instead of GSM8K
(a random model's samples are noise either way). With ``--device cuda`` the peak is
``torch.cuda.max_memory_allocated``; on CPU it is the process's maximum resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from random_models import SHAPES, build_model, write_records  # benchmarks/random_models.py

CONFIGS = {
    "sdft-naive": (
        "sdft",
        [
            "training.logit_chunk=0",
            "generation.backend={type: hf, merge_adapter: false}",
            "training.gradient_checkpointing=false",
        ],
    ),
    "sdft": ("sdft", []),
    "sdft-no-gc": ("sdft", ["training.gradient_checkpointing=false"]),
    # TRL SDFT's loss family and memory setting: JSD(β = 0.5) (exact, over the full vocabulary), checkpointing
    "sdft-jsd-gc": ("sdft", ["divergence={type: jsd, beta: 0.5}", "training.gradient_checkpointing=true"]),
    "sdft-jsd-gc-chunk64": (
        "sdft",
        ["divergence={type: jsd, beta: 0.5}", "training.gradient_checkpointing=true", "training.logit_chunk=64"],
    ),
    "sdft-jsd-gc-unmerged": (
        "sdft",
        [
            "divergence={type: jsd, beta: 0.5}",
            "training.gradient_checkpointing=true",
            "generation.backend={type: hf, merge_adapter: false}",
        ],
    ),
    "sdft-jsd-gc-vllm": (
        "sdft",
        ["divergence={type: jsd, beta: 0.5}", "training.gradient_checkpointing=true", "generation.backend=vllm"],
    ),
    "sdft-jsd-gc-vllm-kv256m": (
        "sdft",
        [
            "divergence={type: jsd, beta: 0.5}",
            "training.gradient_checkpointing=true",
            "generation.backend={type: vllm, cpu_kv_cache_gib: 0.25}",
        ],
    ),
    # the same 4 prompts per optimizer step as 2 micro-batches of 2, sampled together in one generate
    # call (generation.rollout_per_step): decoding keeps its 4 rows, the backward holds 2
    "sdft-jsd-gc-ga2-rollout": (
        "sdft",
        [
            "divergence={type: jsd, beta: 0.5}",
            "training.gradient_checkpointing=true",
            "training.batch_size=2",
            "training.grad_accum=2",
            "generation.rollout_per_step=true",
        ],
    ),
    "sdft-ga2-rollout": (
        "sdft",
        ["training.batch_size=2", "training.grad_accum=2", "generation.rollout_per_step=true"],
    ),
    "vanilla": ("vanilla", []),
    "unisd-star": ("unisd-star", []),
    "unisd-star-unshared": ("unisd-star", ["training.share_prompt_prefix=false"]),
    "unisd-star-4096": ("unisd-star", ["training.score_max_tokens=4096"]),
    "unisd-star-one-forward": ("unisd-star", ["training.score_max_tokens=0", "training.share_prompt_prefix=false"]),
}


def _dataset(args) -> str:
    if args.data.endswith(".jsonl"):
        return f"{{type: jsonl, path: '{args.data}'}}"
    return f"{{type: gsm8k, path: '{args.data}'}}"


def _common(args) -> list[str]:
    model = [f"model.name_or_path='{args.model}'"] if args.model != "embedded" else []
    return [
        *model,
        f"data.dataset={_dataset(args)}",
        "data.max_samples=16",
        "data.shuffle=false",
        "training.batch_size=4",
        "training.grad_accum=1",
        f"training.max_steps={args.steps}",
        "lora.r=16",
        "lora.alpha=32",
        f"generation.max_new_tokens={args.max_new_tokens}",
        "generation.temperature=0.7",
        "logging.progress_bar=false",
        "logging.tensorboard=false",
        "checkpoint.every_steps=1000",
        "checkpoint.save_merged=false",
        "evaluation.heldout=0",
        f"precision.mixed_precision={args.precision}",
        'data.teacher_template="{prompt}\\n\\n{reference}"',
    ]  # TRL SDFT's teacher_prompt_template


def child_unisd(name: str, args) -> dict:
    from unisd.runs.launch import train
    from unisd.recipe import load_recipe

    recipe_name, extra = CONFIGS[name]
    recipe = load_recipe(recipe_name, [*_common(args), *extra])
    with tempfile.TemporaryDirectory() as tmp:
        train(recipe, Path(tmp) / "run")
        rows = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "time/step_s" in r][1:]  # the first step warms up
    return {
        "s_per_step": statistics.median(r["time/step_s"] for r in rows),
        "generate_s": statistics.median(r["time/generate_s"] for r in rows),
        "teacher_s": statistics.median(r["time/teacher_s"] for r in rows),
        "tokens_per_s": statistics.median(r["throughput/tokens_per_s"] for r in rows),
    }


def _records(args) -> list[dict]:
    if args.data.endswith(".jsonl"):
        return [json.loads(line) for line in Path(args.data).read_text().splitlines()][:16]
    from unisd.plugins import get_host

    cls = get_host().registries.datasets.get("gsm8k")
    return list(cls(cls.Config(type="gsm8k", path=args.data, split="train")).load())[:16]


def _model_and_tokenizer(args):
    if args.model == "embedded":
        from unisd.evaluation.loading import load_for_eval

        return load_for_eval("smollm2-135m-instruct")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32), AutoTokenizer.from_pretrained(
        args.model
    )


def child_trl(args) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig

    try:  # an import error means "not run"
        from trl.experimental.sdft import SDFTConfig, SDFTTrainer
    except ImportError:
        from trl import SDFTConfig, SDFTTrainer

    records = _records(args)
    model, tok = _model_and_tokenizer(args)
    ds = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": r["prompt"]}], "privileged_context": r["gold"]} for r in records]
    )
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SDFTConfig(
            output_dir=tmp,
            per_device_train_batch_size=4,
            gradient_accumulation_steps=1,
            max_steps=args.steps,
            max_completion_length=args.max_new_tokens,
            temperature=0.7,
            learning_rate=1e-4,
            logging_steps=1,
            report_to=[],
            save_strategy="no",
            use_cpu=args.device == "cpu",
            bf16=args.precision == "bf16",
            num_generations=1,
        )
        trainer = SDFTTrainer(
            model=model,
            args=cfg,
            train_dataset=ds,
            processing_class=tok,
            peft_config=LoraConfig(
                r=16,
                lora_alpha=32,
                task_type="CAUSAL_LM",
                target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            ),
        )
        times = []

        class Timer:  # a TrainerCallback without importing transformers' class hierarchy here
            def __getattr__(self, name):
                return lambda *a, **k: None

            def on_step_begin(self, *a, **k):
                self.t = time.perf_counter()

            def on_step_end(self, *a, **k):
                times.append(time.perf_counter() - self.t)

        trainer.add_callback(Timer())
        torch.manual_seed(0)
        trainer.train()
    times = times[1:]
    return {"s_per_step": statistics.median(times), "tokens_per_s": None}


def peak_mb(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(name: str, args) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            name,
            "--steps",
            str(args.steps),
            "--data",
            args.data,
            "--max-new-tokens",
            str(args.max_new_tokens),
            "--device",
            args.device,
            "--model",
            args.model,
            "--precision",
            args.precision,
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return {"error": tail[:120]}
    return json.loads(lines[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--data", default="../shared/data/gsm8k")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--precision", choices=["no", "bf16"], default="no", help="precision.mixed_precision (TRL: bf16)")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument(
        "--model", default="embedded", help=f"embedded, a local model folder, or a random model: {', '.join(SHAPES)}"
    )
    p.add_argument(
        "--configs",
        default="sdft-naive,sdft,sdft-no-gc,sdft-jsd-gc,vanilla,unisd-star,unisd-star-unshared,"
        "unisd-star-one-forward,trl-sdft",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of the table in a few minutes: 2 steps (one timed) of ≤ 16 new tokens, "
        "configs sdft, vanilla, unisd-star and trl-sdft; its ratios are not a measurement",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick and not args.child:
        args.steps, args.max_new_tokens, args.configs = 2, 16, "sdft,vanilla,unisd-star,trl-sdft"
    if args.child:
        result = child_trl(args) if args.child == "trl-sdft" else child_unisd(args.child, args)
        result["peak_mb"] = peak_mb(args.device)
        print(json.dumps(result))
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.model in SHAPES:
            args.model = str(build_model(args.model, Path(tmp) / args.model))
        if args.data == "synthetic":
            args.data = str(Path(tmp) / "records.jsonl")
            write_records(Path(args.data), args.max_new_tokens)
        for name in args.configs.split(","):
            results[name] = run_child(name, args)
            print(name, results[name], flush=True)
    peak = "peak CUDA MB" if args.device == "cuda" else "peak RSS MB"
    ref, peer, vanilla = results.get("sdft-naive", {}), results.get("trl-sdft", {}), results.get("vanilla", {})
    print(
        f"\n| config | s / step | of it sampling | of it teacher scoring | completion tokens / s | {peak} "
        "| time vs sdft-naive | memory vs sdft-naive | time vs trl-sdft | memory vs trl-sdft | time vs vanilla |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        if "error" in r:
            print(f"| {name} | not run: {r['error']} |" + " |" * 9)
            continue

        def ratio(other, key, r=r):
            return f"{r[key] / other[key]:.2f}" if other.get(key) else ""

        def seconds(key, r=r):
            return f"{r[key]:.2f}" if r.get(key) is not None else ""

        tps = f"{r['tokens_per_s']:.1f}" if r.get("tokens_per_s") else ""
        print(
            f"| {name} | {r['s_per_step']:.2f} | {seconds('generate_s')} | {seconds('teacher_s')} | {tps} | "
            f"{r['peak_mb']:.0f} | {ratio(ref, 's_per_step')} | {ratio(ref, 'peak_mb')} | {ratio(peer, 's_per_step')} | "
            f"{ratio(peer, 'peak_mb')} | {ratio(vanilla, 's_per_step')} |"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "device": args.device,
                    "precision": args.precision,
                    "steps": args.steps,
                    "max_new_tokens": args.max_new_tokens,
                    "results": results,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
