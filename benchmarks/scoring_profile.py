"""Where a step's scoring time goes: each teacher scoring call by the component that made it,
its forwards' padded tokens and arithmetic, and how close they run to a bare matrix product.

Trains ``--recipe`` for ``--steps`` optimizer steps on the configuration of
``benchmarks/step_throughput.py`` (the embedded model, LoRA r16/α32, batch 4, the first 16 GSM8K
train prompts, ≤ 128 new tokens) and times, from the second step on, every forward of the model
during a teacher scoring call (forward hooks on the model) and each call as a whole. A forward's
arithmetic is counted from its shape: ``2·rows·tokens`` times the decoder's linear weights, plus
``4·rows·tokens·(tokens + cached prefix)·attention width`` per layer; the LM head, applied to the
completion positions in blocks after the forward, is in the call's time but not in the forwards'.
The last line is a bare fp32 ``torch.mm`` of the decoder's MLP shape in the same process: the
machine's matrix-product rate, for comparison. Nothing is asserted::

    python benchmarks/scoring_profile.py
    python benchmarks/scoring_profile.py --recipe vanilla --steps 3
"""

from __future__ import annotations

import argparse
import inspect
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from step_throughput import _common  # benchmarks/step_throughput.py: the same configuration


def attention_widths(cfg) -> tuple[int, int]:
    """The widths of the query and of each of the key/value projections."""
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return cfg.num_attention_heads * head_dim, cfg.num_key_value_heads * head_dim


def forward_flops(cfg, rows: int, tokens: int, cached: int) -> float:
    q, kv = attention_widths(cfg)
    linear = cfg.hidden_size * (2 * q + 2 * kv) + 3 * cfg.hidden_size * cfg.intermediate_size
    per_layer = 2 * rows * tokens * linear + 4 * rows * tokens * (tokens + cached) * q
    return float(per_layer * cfg.num_hidden_layers)


def caller_name() -> str:
    """The component whose method asked for the scoring call (the main teacher when none did)."""
    from unisd.components.base import Component
    from unisd.components.kinds import Objective

    for frame in inspect.stack(context=0)[2:]:  # no source lines read
        owner = frame.frame.f_locals.get("self")
        if isinstance(owner, Component) and not isinstance(owner, Objective):
            return owner.name
    return "teacher (main)"


def matmul_gflops(m: int, k: int, n: int, repeats: int = 20) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * m * k * n * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="unisd-star")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--data", default="../shared/data/gsm8k")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", action="append", default=[], help="a further recipe override (repeatable)")
    args = p.parse_args()
    args.model = "embedded"
    torch.set_num_threads(args.threads)

    from unisd.engine import step as step_module
    from unisd.runs.launch import train
    from unisd.models.wrapping import base_model
    from unisd.recipe import load_recipe

    calls: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    state: dict = {"label": None, "hooked": False}
    score_teacher = step_module.MicroStep.score_teacher

    def before(module, args_, kwargs):
        if state["label"] is not None:  # the prefix cache's length before the forward appends to it
            cache = kwargs.get("cache", kwargs.get("past_key_values"))
            state["cached"] = cache.get_seq_length() if cache is not None else 0
            state["start"] = time.perf_counter()

    def after(module, args_, kwargs, out):
        if state["label"] is None:
            return
        ids = kwargs["input_ids"]
        c = calls[state["label"]]
        c["forwards"] += 1
        c["padded tokens"] += ids.numel()
        c["GFLOP"] += forward_flops(module.config, ids.shape[0], ids.shape[1], state["cached"]) / 1e9
        c["forward s"] += time.perf_counter() - state["start"]

    def timed(self, texts, *a, **kw):
        if not state["hooked"]:
            model = base_model(self.unwrapped)
            model.register_forward_pre_hook(before, with_kwargs=True)
            model.register_forward_hook(after, with_kwargs=True)
            state["hooked"], state["config"] = True, model.config
        counted = self.step >= 1  # the first step warms up
        state["label"] = caller_name() if counted else None
        start = time.perf_counter()
        try:
            return score_teacher(self, texts, *a, **kw)
        finally:
            if counted:
                calls[state["label"]]["calls"] += 1
                calls[state["label"]]["rows"] += len(texts)
                calls[state["label"]]["call s"] += time.perf_counter() - start
            state["label"] = None

    step_module.MicroStep.score_teacher = timed
    recipe = load_recipe(args.recipe, [*_common(args), *args.set])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train(recipe, Path(tmp) / "run")
        total = time.perf_counter() - start
    cfg = state["config"]
    steps = args.steps - 1
    print(
        f"\n{args.recipe}: {args.steps} steps in {total:.1f} s; teacher scoring calls of steps 2–{args.steps}, "
        f"per step:\n"
    )
    print("| call | calls | rows | forwards | padded tokens | GFLOP | forward s | GFLOP/s | call s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, c in calls.items():
        rate = c["GFLOP"] / c["forward s"] if c["forward s"] else 0.0
        print(
            f"| {label} | {c['calls'] / steps:g} | {c['rows'] / steps:g} | {c['forwards'] / steps:g} | "
            f"{c['padded tokens'] / steps:.0f} | {c['GFLOP'] / steps:.0f} | {c['forward s'] / steps:.2f} | {rate:.0f} | "
            f"{c['call s'] / steps:.2f} |"
        )
    rate = matmul_gflops(1024, cfg.hidden_size, cfg.intermediate_size)
    print(
        f"\nbare fp32 torch.mm (1024×{cfg.hidden_size}) @ ({cfg.hidden_size}×{cfg.intermediate_size}), "
        f"{args.threads} threads: {rate:.0f} GFLOP/s"
    )


if __name__ == "__main__":
    main()
