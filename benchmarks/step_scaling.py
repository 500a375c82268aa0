"""How the cost of a training step grows with the work: K agreement contexts, completion length T,
and model size.

Each point trains ``--steps`` optimizer steps in a fresh process (so its peak memory is its own)
on the same synthetic records, with no generation, so only scoring, divergence and backward are
timed: the ``distill`` objective with ``on_policy_fraction: 0`` scores each record's fixed
completion of exactly T tokens (GKD's gold rows; no gold token is used this way in a
self-distillation recipe, it only fixes the work). Batch 4, one micro-batch per step, LoRA r16,
fp32, the generalized JSD(β = 0.5) in blocks of ``training.logit_chunk`` tokens; the first step
warms up and is not counted.

Models are randomly initialised from the configs of real models (no hub access needed): SmolLM2
135M (the embedded one's shape) and 360M, Qwen2.5 0.5B, 1.5B and 7B (the last two only make sense
with ``--device cuda``). The tokenizer is the embedded SmolLM2's; token ids stay below every
vocabulary. Three sweeps, each around the default point (135M, K = 0, T = 128)::

    python benchmarks/step_scaling.py                       # K ∈ {0, 2, 4, 8}, T ∈ {64, 128, 256, 512}, 135M/360M/0.5B
    python benchmarks/step_scaling.py --device cuda --models smollm2-135m,qwen2.5-0.5b,qwen2.5-1.5b,qwen2.5-7b
    python benchmarks/step_scaling.py --quick               # a few points in a few minutes (a smoke run)

``--device cuda`` reports ``torch.cuda.max_memory_allocated``; on CPU the peak is the process's
maximum resident memory. Nothing is asserted.
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

from random_models import build_model, write_records  # benchmarks/random_models.py


def child(args) -> dict:
    import torch

    from unisd.runs.launch import train
    from unisd.recipe import load_recipe

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = build_model(args.model, tmp / "model")
        write_records(tmp / "records.jsonl", args.tokens)
        comps = (
            f"components=[{{type: agreement, contexts: {{type: random, k: {args.k}, demos: 1}}}}]"
            if args.k
            else "components=[]"
        )
        recipe = load_recipe(
            "vanilla",
            [
                f"model.name_or_path='{model_dir}'",
                f"data.dataset={{type: jsonl, path: '{tmp / 'records.jsonl'}'}}",
                "data.shuffle=false",
                "objective={type: distill, on_policy_fraction: 0.0}",
                "divergence={type: jsd, beta: 0.5}",
                comps,
                "training.batch_size=4",
                "training.grad_accum=1",
                f"training.max_steps={args.steps}",
                "lora.r=16",
                "lora.alpha=32",
                f"generation.max_new_tokens={args.tokens}",
                "generation.mask_truncated=false",
                "logging.progress_bar=false",
                "logging.tensorboard=false",
                "checkpoint.every_steps=1000",
                "checkpoint.save_merged=false",
                "evaluation.heldout=0",
            ],
        )
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        train(recipe, tmp / "run")
        rows = [json.loads(line) for line in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "time/step_s" in r][1:]
    out = {"s_per_step": statistics.median(r["time/step_s"] for r in rows), "wall_s": time.perf_counter() - t0}
    if torch.cuda.is_available():
        out["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_point(model: str, k: int, tokens: int, args) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            "--model",
            model,
            "--k",
            str(k),
            "--tokens",
            str(tokens),
            "--steps",
            str(args.steps),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": ((proc.stderr.strip().splitlines() or ["failed"])[-1])[:120]}
    return json.loads(lines[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ks", default="0,2,4,8", help="agreement contexts K (0: no agreement)")
    p.add_argument("--lengths", default="64,128,256,512", help="completion tokens T")
    p.add_argument("--models", default="smollm2-135m,smollm2-360m,qwen2.5-0.5b")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of every sweep in a few minutes: 2 steps, K ∈ {0, 2}, T ∈ {64, 128}, 135M only",
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default="smollm2-135m", help=argparse.SUPPRESS)
    p.add_argument("--k", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--tokens", type=int, default=128, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    if args.quick:
        args.steps, args.ks, args.lengths, args.models = 2, "0,2", "64,128", "smollm2-135m"
    points = [("K", "smollm2-135m", int(k), 128) for k in args.ks.split(",")]
    points += [("T", "smollm2-135m", 0, int(t)) for t in args.lengths.split(",") if int(t) != 128]
    points += [("model", m, 0, 128) for m in args.models.split(",") if m != "smollm2-135m"]
    base = None
    print(f"| sweep | model | K | T | s / step | vs 135M, K = 0, T = 128 | peak MB ({args.device}) |")
    print("|---|---|---|---|---|---|---|")
    for sweep, model, k, tokens in points:
        r = run_point(model, k, tokens, args)
        if "error" in r:
            print(f"| {sweep} | {model} | {k} | {tokens} | not run: {r['error']} | | |", flush=True)
            continue
        if (model, k, tokens) == ("smollm2-135m", 0, 128):
            base = r["s_per_step"]
        ratio = f"{r['s_per_step'] / base:.2f}" if base else ""
        print(
            f"| {sweep} | {model} | {k} | {tokens} | {r['s_per_step']:.2f} | {ratio} | {r['peak_mb']:.0f} |", flush=True
        )


if __name__ == "__main__":
    main()
