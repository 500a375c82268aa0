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
arithmetic. ``--sweep`` measures that against the machine: a STREAM-like copy of a large tensor
(bytes read + written per second, best of five) in the same process, then ``generate`` for each
row count of ``--rows`` (tokens per second, and the weight bytes read per second, each step
reading the linear layers' weights once), with the dynamic cache, the static cache, and
(``--compile``) the static cache with ``torch.compile`` of the forward. Nothing is asserted::

    python benchmarks/decode_profile.py
    python benchmarks/decode_profile.py --sweep --rows 1,2,4,8,16,32 --new-tokens 64 [--compile]
"""

from __future__ import annotations

import argparse
import time

import torch

PROMPT = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument(
        "--sweep", action="store_true", help="tokens/s and weight bandwidth against a memory copy, per row count"
    )
    p.add_argument("--rows", default="1,2,4,8,16,32", help="row counts of --sweep")
    p.add_argument("--compile", action="store_true", help="--sweep: also the static cache with torch.compile")
    args = p.parse_args()
    if args.sweep:
        sweep(args)
        return

    from torch.profiler import profile
    from transformers import DynamicCache

    from unisd.engine.decoding import encode_prompts
    from unisd.evaluation.loading import load_for_eval

    model, tok = load_for_eval("smollm2-135m-instruct" if args.model == "embedded" else args.model)
    model.eval()
    enc = encode_prompts(tok, [PROMPT] * args.batch)
    n = args.new_tokens
    kw = dict(
        input_ids=enc.ids,
        attention_mask=enc.mask,
        max_new_tokens=n,
        min_new_tokens=n,
        do_sample=True,
        temperature=0.7,
        top_k=0,
        top_p=1.0,
        pad_token_id=tok.pad_token_id,
    )
    rows = []
    with torch.no_grad():
        model.generate(**{**kw, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up
        for label, extra in [
            ("generate, dynamic cache", {}),
            ("generate, static cache", {"cache_implementation": "static"}),
        ]:
            torch.manual_seed(0)
            t = time.perf_counter()
            model.generate(**kw, **extra)
            rows.append((label, time.perf_counter() - t))

        def bare(steps: int, cache: DynamicCache, mask: torch.Tensor, pos: torch.Tensor, nxt: torch.Tensor):
            for _ in range(steps):
                mask = torch.cat([mask, torch.ones_like(nxt)], 1)
                pos = pos[:, -1:] + 1
                out = model(
                    input_ids=nxt,
                    attention_mask=mask,
                    position_ids=pos,
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=1,
                )
                nxt = torch.multinomial(torch.softmax(out.logits[:, -1].float() / 0.7, -1), 1)
            return mask, pos, nxt

        torch.manual_seed(0)
        t = time.perf_counter()
        cache = DynamicCache()
        pos = (enc.mask.cumsum(-1) - 1).clamp(min=0)
        out = model(
            input_ids=enc.ids,
            attention_mask=enc.mask,
            position_ids=pos,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        nxt = torch.multinomial(torch.softmax(out.logits[:, -1].float() / 0.7, -1), 1)
        mask, pos, nxt = bare(n - 1, cache, enc.mask, pos, nxt)
        rows.append(("bare decode loop", time.perf_counter() - t))
        with profile() as prof:
            bare(5, cache, mask, pos, nxt)
    events = {e.key: e for e in prof.key_averages()}
    total = sum(e.self_cpu_time_total for e in events.values()) / 5 / 1e6
    mm = events["aten::mm"].self_cpu_time_total / 5 / 1e6 if "aten::mm" in events else float("nan")
    weight_bytes = sum(
        m.weight.numel() * m.weight.element_size() for m in model.modules() if isinstance(m, torch.nn.Linear)
    )
    print(f"\n| decoding {args.batch} rows × {n} tokens | s | s per token step |")
    print("|---|---|---|")
    for label, s in rows:
        print(f"| {label} | {s:.2f} | {s / n * 1000:.0f} ms |")
    print(
        f"\nprofiled decode step: {total * 1000:.0f} ms, of it {mm * 1000:.0f} ms ({mm / total:.0%}) in aten::mm; "
        f"the linear layers' weights are {weight_bytes / 1e6:.0f} MB, read once per step: "
        f"{weight_bytes / mm / 1e9:.1f} GB/s in the products"
    )


def stream_copy_gbps(megabytes: int = 512, repeats: int = 5) -> float:
    """Memory bandwidth as a STREAM-like copy sees it: bytes read plus written per second, best of ``repeats``."""
    src = torch.ones(megabytes * 2**20 // 4)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t)
    return 2 * src.numel() * 4 / best / 1e9


def sweep(args) -> None:
    from unisd.engine.decoding import encode_prompts
    from unisd.evaluation.loading import load_for_eval

    model, tok = load_for_eval("smollm2-135m-instruct" if args.model == "embedded" else args.model)
    model.eval()
    copy = stream_copy_gbps()
    weight_bytes = sum(
        m.weight.numel() * m.weight.element_size() for m in model.modules() if isinstance(m, torch.nn.Linear)
    )
    n = args.new_tokens
    modes = [("dynamic cache", {}), ("static cache", {"cache_implementation": "static"})]
    if args.compile:
        modes.append(("static cache + torch.compile", {"cache_implementation": "static", "compile": True}))
    print(
        f"memory copy: {copy:.1f} GB/s (read + write); linear weights: {weight_bytes / 1e6:.0f} MB per decode step; "
        f"{torch.get_num_threads()} threads",
        flush=True,
    )
    print(f"\n| rows | mode | s for {n} tokens | tokens / s | weight GB/s | of the copy bandwidth |")
    print("|---|---|---|---|---|---|")
    forward = model.forward
    for rows in [int(r) for r in args.rows.split(",")]:
        enc = encode_prompts(tok, [PROMPT] * rows)
        for label, extra in modes:
            extra = dict(extra)
            compiled = extra.pop("compile", False)
            model.forward = torch.compile(forward) if compiled else forward
            kw = dict(
                input_ids=enc.ids,
                attention_mask=enc.mask,
                do_sample=True,
                temperature=0.7,
                top_k=0,
                top_p=1.0,
                pad_token_id=tok.pad_token_id,
                **extra,
            )
            with torch.no_grad():
                t = time.perf_counter()
                model.generate(**kw, max_new_tokens=4, min_new_tokens=4)  # warm-up (and compilation)
                warm = time.perf_counter() - t
                torch.manual_seed(0)
                t = time.perf_counter()
                model.generate(**kw, max_new_tokens=n, min_new_tokens=n)
                s = time.perf_counter() - t
            note = f" (warm-up {warm:.0f} s)" if compiled else ""
            gbps = weight_bytes * n / s / 1e9
            print(
                f"| {rows} | {label}{note} | {s:.2f} | {rows * n / s:.1f} | {gbps:.1f} | {gbps / copy:.0%} |",
                flush=True,
            )
    model.forward = forward


if __name__ == "__main__":
    main()
