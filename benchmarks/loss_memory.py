"""Memory and time of the divergence step: naive full-vocabulary log-probs vs blocks of tokens.

For each (tokens N = B·T, vocabulary V) the same inputs go through

- ``naive``: the LM head on all N tokens, fp32 log-softmax of student and teacher, the divergence
  on ``(N, V)`` tensors (what ``training.logit_chunk: 0`` does);
- ``blocks``: :func:`unisd.engine.vocab_chunks.divergence_and_token_logprobs` with
  ``training.logit_chunk`` tokens per block (frozen head, as with LoRA);

forward and backward of ``Σ divergence`` (``--token-grad``: ``+ Σ student token log-prob``, as
when the contrastive term trains through them). Each measurement runs in a
fresh process; "peak" is the growth of the process's maximum resident memory over the inputs
(hidden states, head weights) during that pass. The loss and the gradient of the blocks are
compared with the naive ones (max |difference|). Nothing is asserted: a table is printed.
``--device cuda`` runs the same passes on the GPU, "peak" being the growth of
``torch.cuda.max_memory_allocated`` over the inputs, and times them with the device synchronised.

    python benchmarks/loss_memory.py                       # N = 4096, V = 49152 and 151936
    python benchmarks/loss_memory.py --tokens 1024,4096 --vocab 49152 --chunk 256,512
    python benchmarks/loss_memory.py --device cuda --tokens 4096,16384 --hidden 1536 --chunk 256,1024
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(
    mode: str,
    n: int,
    v: int,
    chunk: int,
    hidden_size: int,
    divergence: str,
    grad_out: str,
    token_grad: bool,
    device: str,
) -> None:
    import torch

    from unisd.engine.vocab_chunks import block_logprobs, divergence_and_token_logprobs
    from unisd_plugins.divergences import functions

    per_token = {
        "forward_kl": functions.forward_kl,
        "reverse_kl": functions.reverse_kl,
        "jsd": lambda t, s: functions.generalized_jsd(t, s, 0.5),
    }[divergence]
    g = torch.Generator().manual_seed(0)
    hs = torch.randn(1, n, hidden_size, generator=g).requires_grad_(True)
    ht = torch.randn(1, n, hidden_size, generator=g)
    w = torch.randn(v, hidden_size, generator=g) / hidden_size**0.5
    wt = w + 0.01 * torch.randn(v, hidden_size, generator=g) / hidden_size**0.5
    ids = torch.randint(0, v, (1, n), generator=g)
    hs, ht, w, wt, ids = (t.to(device) for t in (hs, ht, w, wt, ids))
    hs = hs.detach().requires_grad_(True)
    tau = 0.7
    cuda = device == "cuda"

    def peak() -> float:
        return torch.cuda.max_memory_allocated() / 2**20 if cuda else _rss_mb()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def run():
        if mode == "naive":
            s, t = block_logprobs(hs, w, None, tau), block_logprobs(ht, wt, None, tau).detach()
            div, tok = per_token(t, s), s.gather(-1, ids[..., None])[..., 0]
        else:
            div, tok, _ = divergence_and_token_logprobs(
                per_token, hs, (w, None), ht, (wt, None), ids, tau, chunk=chunk, token_grad=token_grad
            )
        loss = div.sum() + (tok.sum() if token_grad else 0.0)
        (grad,) = torch.autograd.grad(loss, hs)
        return float(loss), grad

    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    base = peak()
    t0 = time.perf_counter()
    loss, grad = run()
    sync()
    first = time.perf_counter() - t0
    grown = peak() - base
    del grad
    t0 = time.perf_counter()
    loss, grad = run()
    sync()
    second = time.perf_counter() - t0
    torch.save(grad.cpu(), grad_out)
    print(json.dumps({"peak_mb": grown, "seconds": min(first, second), "loss": loss}))


def measure(mode, n, v, chunk, args, tmp: Path) -> dict:
    out = tmp / f"{mode}-{n}-{v}-{chunk}.pt"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            str(n),
            str(v),
            str(chunk),
            str(args.hidden),
            args.divergence,
            str(out),
            str(int(args.token_grad)),
            args.device,
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["killed"])[-1], "grad": None}
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "grad": out}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", default="4096", help="comma-separated N = B·T")
    p.add_argument("--vocab", default="49152,151936", help="comma-separated V (SmolLM2: 49152, Qwen2.5: 151936)")
    p.add_argument("--chunk", default="512", help="comma-separated tokens per block")
    p.add_argument("--hidden", type=int, default=576, help="hidden size (SmolLM2-135M: 576)")
    p.add_argument("--divergence", default="jsd", choices=["forward_kl", "reverse_kl", "jsd"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--token-grad", action="store_true", help="also train through the student's token log-probs")
    p.add_argument(
        "--naive-max-bytes",
        type=float,
        default=12e9,
        help="skip the naive pass when 12 fp32 (N, V) tensors would exceed this (it would not fit)",
    )
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--child", nargs=9, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        mode, n, v, chunk, h, div, out, token_grad, device = args.child
        child(mode, int(n), int(v), int(chunk), int(h), div, out, token_grad == "1", device)
        return

    import torch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for v in [int(x) for x in args.vocab.split(",")]:
            for n in [int(x) for x in args.tokens.split(",")]:
                naive = (
                    measure("naive", n, v, 0, args, Path(tmp))
                    if 12 * 4 * n * v <= args.naive_max_bytes
                    else {"error": "not run (too large here)", "grad": None}
                )
                for chunk in [int(x) for x in args.chunk.split(",")]:
                    blk = measure("blocks", n, v, chunk, args, Path(tmp))
                    row = {"N": n, "V": v, "chunk": chunk, "naive": naive, "blocks": blk}
                    if naive.get("grad") and blk.get("grad"):
                        ga, gb = torch.load(naive["grad"]), torch.load(blk["grad"])
                        row["max_grad_diff"] = float((ga - gb).abs().max())
                        row["loss_rel_diff"] = abs(naive["loss"] - blk["loss"]) / max(abs(naive["loss"]), 1e-12)
                    rows.append(row)
                    print(_line(row), flush=True)
    print(
        "\n| N | V | chunk | naive peak MB | blocks peak MB | memory ratio | naive s | blocks s | time ratio | loss rel. diff | max grad diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(_line(r))
    if args.json:
        for r in rows:
            for mode in ("naive", "blocks"):
                r[mode] = {k: v for k, v in r[mode].items() if k != "grad"}
        Path(args.json).write_text(json.dumps({"device": args.device, "hidden": args.hidden, "rows": rows}, indent=1))


def _line(r: dict) -> str:
    a, b = r["naive"], r["blocks"]
    if "error" in a or "error" in b:
        return f"| {r['N']} | {r['V']} | {r['chunk']} | {a.get('error') or round(a['peak_mb'])} | {b.get('error') or round(b['peak_mb'])} | | | | | | |"
    return (
        f"| {r['N']} | {r['V']} | {r['chunk']} | {a['peak_mb']:.0f} | {b['peak_mb']:.0f} | {b['peak_mb'] / a['peak_mb']:.3f} | "
        f"{a['seconds']:.2f} | {b['seconds']:.2f} | {b['seconds'] / a['seconds']:.2f} | {r.get('loss_rel_diff', float('nan')):.1e} | "
        f"{r.get('max_grad_diff', float('nan')):.1e} |"
    )


if __name__ == "__main__":
    main()
