"""What bounds decoding: HF ``generate`` against a bare decode loop, and the share of a decode step
spent in the weights' matrix products.

One batch of ``--batch`` copies of a GSM8K-length prompt, ``--new-tokens`` sampled tokens each
(τ = 0.7, no early stop), fp32, on the embedded SmolLM2-135M-Instruct (or ``--model`` folder):

- ``generate`` with the default dynamic KV cache and with ``cache_implementation="static"``;
- a bare loop (one forward per token on a ``DynamicCache``, multinomial sampling): what is left
  when ``generate``'s own bookkeeping is taken away;
- a profile of five decode steps: the time in ``aten::mm`` and the weight bytes each step reads,
  i.e. the memory bandwidth the products reach.

Each decode step reads every weight once, so at batch 4 decoding is bound by memory bandwidth, not
arithmetic. Nothing is asserted::

    python benchmarks/decode_profile.py
"""

from __future__ import annotations

import argparse
import time

import torch

PROMPT = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
          "How many clips did Natalia sell altogether in April and May?")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--new-tokens", type=int, default=128)
    args = p.parse_args()

    from torch.profiler import profile
    from transformers import DynamicCache

    from unisd.engine.decoding import encode_prompts
    from unisd.evaluation.loading import load_for_eval

    model, tok = load_for_eval("smollm2-135m-instruct" if args.model == "embedded" else args.model)
    model.eval()
    enc = encode_prompts(tok, [PROMPT] * args.batch)
    n = args.new_tokens
    kw = dict(input_ids=enc.ids, attention_mask=enc.mask, max_new_tokens=n, min_new_tokens=n, do_sample=True,
              temperature=0.7, top_k=0, top_p=1.0, pad_token_id=tok.pad_token_id)
    rows = []
    with torch.no_grad():
        model.generate(**{**kw, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up
        for label, extra in [("generate, dynamic cache", {}), ("generate, static cache", {"cache_implementation": "static"})]:
            torch.manual_seed(0)
            t = time.perf_counter()
            model.generate(**kw, **extra)
            rows.append((label, time.perf_counter() - t))

        def bare(steps: int, cache: DynamicCache, mask: torch.Tensor, pos: torch.Tensor, nxt: torch.Tensor):
            for _ in range(steps):
                mask = torch.cat([mask, torch.ones_like(nxt)], 1)
                pos = pos[:, -1:] + 1
                out = model(input_ids=nxt, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True,
                            logits_to_keep=1)
                nxt = torch.multinomial(torch.softmax(out.logits[:, -1].float() / 0.7, -1), 1)
            return mask, pos, nxt

        torch.manual_seed(0)
        t = time.perf_counter()
        cache = DynamicCache()
        pos = (enc.mask.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=enc.ids, attention_mask=enc.mask, position_ids=pos, past_key_values=cache, use_cache=True,
                    logits_to_keep=1)
        nxt = torch.multinomial(torch.softmax(out.logits[:, -1].float() / 0.7, -1), 1)
        mask, pos, nxt = bare(n - 1, cache, enc.mask, pos, nxt)
        rows.append(("bare decode loop", time.perf_counter() - t))
        with profile() as prof:
            bare(5, cache, mask, pos, nxt)
    events = {e.key: e for e in prof.key_averages()}
    total = sum(e.self_cpu_time_total for e in events.values()) / 5 / 1e6
    mm = events["aten::mm"].self_cpu_time_total / 5 / 1e6 if "aten::mm" in events else float("nan")
    weight_bytes = sum(m.weight.numel() * m.weight.element_size() for m in model.modules()
                       if isinstance(m, torch.nn.Linear))
    print(f"\n| decoding {args.batch} rows × {n} tokens | s | s per token step |")
    print("|---|---|---|")
    for label, s in rows:
        print(f"| {label} | {s:.2f} | {s / n * 1000:.0f} ms |")
    print(f"\nprofiled decode step: {total * 1000:.0f} ms, of it {mm * 1000:.0f} ms ({mm / total:.0%}) in aten::mm; "
          f"the linear layers' weights are {weight_bytes / 1e6:.0f} MB, read once per step: "
          f"{weight_bytes / mm / 1e9:.1f} GB/s in the products")


if __name__ == "__main__":
    main()
