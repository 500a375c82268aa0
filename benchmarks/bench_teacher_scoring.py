"""Side-by-side measurements of two design choices of the teacher scoring path.

1. Agreement: the K auxiliary contexts scored in ONE batched forward of K·B rows (what the
   engine does) versus a Python loop of K forwards of B rows (the reference's shape).
2. Teacher memory: the default ``base`` teacher (LoRA adapter disabled, no second copy) versus a
   ``frozen_copy`` teacher, as extra resident parameter bytes.

Usage:  python benchmarks/bench_teacher_scoring.py [--model smollm2-135m-instruct|PATH] [--k 3] [--batch 4]
Prints each measurement and the ratio; nothing is asserted (numbers depend on the machine).
"""

from __future__ import annotations

import argparse
import time

import torch


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--completion-len", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from unisd.engine.batching import pad_left, pad_right
    from unisd.engine.modeling import build_student
    from unisd.engine.scoring import score
    from unisd.models.loading import load_model_and_tokenizer
    from unisd.recipe import load_recipe
    from unisd_plugins.teachers.providers import BaseTeacher, FrozenCopyTeacher

    recipe = load_recipe("vanilla", [f"model.name_or_path={args.model}"])
    model, tok = load_model_and_tokenizer(recipe.model)
    torch.manual_seed(0)
    vocab = model.config.vocab_size
    K, B, P, T = args.k, args.batch, args.prompt_len, args.completion_len
    prompts = [torch.randint(10, vocab, (P,)).tolist() for _ in range(K * B)]
    completion_ids, completion_mask = pad_right(
        [torch.randint(10, vocab, (T,)).tolist() for _ in range(B)], tok.pad_token_id
    )
    model.eval()

    def batched():
        with torch.no_grad():
            score(
                model,
                model,
                pad_left(prompts, tok.pad_token_id),
                completion_ids.repeat(K, 1),
                completion_mask.repeat(K, 1),
                temperature=1.0,
                full_logprobs=False,
            )

    def looped():
        with torch.no_grad():
            for k in range(K):
                score(
                    model,
                    model,
                    pad_left(prompts[k * B : (k + 1) * B], tok.pad_token_id),
                    completion_ids,
                    completion_mask,
                    temperature=1.0,
                    full_logprobs=False,
                )

    tb, tl = _time(batched, args.repeats), _time(looped, args.repeats)
    print(f"agreement scoring, K={K} contexts x B={B} rows, prompt {P} + completion {T} tokens ({args.model}):")
    print(f"  one batched forward of K*B rows : {tb * 1000:8.1f} ms")
    print(f"  Python loop of K forwards       : {tl * 1000:8.1f} ms")
    print(f"  loop / batched                  : {tl / tb:8.2f}x")

    class _Run:
        pass

    run = _Run()
    run.model = build_student(model, recipe)

    def params(m):
        return sum(p.numel() * p.element_size() for p in m.parameters())

    student_bytes = params(run.model)
    base = BaseTeacher(BaseTeacher.Config(type="base"))
    base.setup(run)
    frozen = FrozenCopyTeacher(FrozenCopyTeacher.Config(type="frozen_copy"))
    frozen.setup(run)
    base_extra = 0 if base.copy is None else params(base.copy)
    frozen_extra = params(frozen.copy)
    print("teacher memory (extra resident parameter bytes beside the student):")
    print(f"  student (base + LoRA r={recipe.lora.r})   : {student_bytes / 2**20:8.1f} MiB")
    print(f"  base teacher (adapter disabled)  : {base_extra / 2**20:8.1f} MiB")
    print(f"  frozen_copy teacher              : {frozen_extra / 2**20:8.1f} MiB")
    print(f"  frozen_copy / student            : {frozen_extra / student_bytes:8.2f}x")


if __name__ == "__main__":
    main()
