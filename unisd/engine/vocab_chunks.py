"""Per-token quantities over the full vocabulary, computed from hidden states in blocks of tokens.

The naive path materialises fp32 ``(B, T, V)`` log-probabilities for the student and the teacher
(and the divergence builds more tensors of that size). Here the LM head is applied to ``chunk``
completion tokens at a time, the fp32 log-softmax and the per-token function run on that block,
and the block is freed before the next one, so memory is ``O(chunk · V)`` instead of ``O(B·T·V)``.

Gradients are exact. When the head's weight is frozen (LoRA, the usual case) the gradient of each
per-token output with respect to that token's hidden state is computed inside the forward pass
(each output of row ``n`` depends on hidden row ``n`` only) and kept as ``(N, k, H)``; the
backward multiplies it by the incoming gradient, so no block is recomputed. With a trainable head
every block runs under activation checkpointing instead (recomputed in the backward), so the
head's weight gets its gradient too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

#: ``fn(student_logprobs (C, V), rows) -> (C, k)``: per-token outputs of a block of rows.
BlockFn = Callable[[torch.Tensor, slice], torch.Tensor]


def block_logprobs(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, temperature: float
) -> torch.Tensor:
    """fp32 log-softmax of ``hidden @ weightᵀ (+ bias)`` at ``temperature`` (as the naive scorer)."""
    return torch.log_softmax(F.linear(hidden, weight, bias).float() / temperature, dim=-1)


class _FrozenHeadBlocks(torch.autograd.Function):
    """Outputs ``(N, k + 1)``: ``fn``'s columns, then the token log-probs (zeros without ids).

    ``grad_columns`` of ``fn`` get their per-row gradients by autograd inside each block; the token
    column's is analytic, ``(W[y] − softmax(z) W) / τ``, which costs one more product with the head
    and no second pass through ``fn``'s graph.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, temperature, fn, chunk, grad_columns, token_ids, token_grad):
        n, width = hidden.shape
        outs, grads, k = [], None, 0
        for start in range(0, n, chunk):
            rows = slice(start, min(start + chunk, n))
            h = hidden[rows].detach().requires_grad_(bool(grad_columns))
            with torch.enable_grad():
                lps = block_logprobs(h, weight, bias, temperature)
                out, tok = _block_outputs(lps, fn, rows, token_ids)
                if grads is None:
                    k = out.shape[1]
                    grads = hidden.new_zeros((n, len(grad_columns) + bool(token_grad), width))
                for j, col in enumerate(grad_columns):
                    (g,) = torch.autograd.grad(out[:, col].sum(), h, retain_graph=j + 1 < len(grad_columns))
                    grads[rows, j] = g
            if token_grad:
                probs = lps.detach().exp()
                grads[rows, -1] = ((weight[token_ids[rows]].float() - probs @ weight.float()) / temperature).to(
                    grads.dtype
                )
            outs.append(torch.cat([out.detach(), tok.detach()], dim=1))
        ctx.columns = (*grad_columns, k) if token_grad else tuple(grad_columns)
        ctx.save_for_backward(grads)
        return torch.cat(outs)

    @staticmethod
    def backward(ctx, grad_out):
        (grads,) = ctx.saved_tensors
        upstream = grad_out[:, list(ctx.columns)].to(grads.dtype)
        return torch.einsum("nk,nkh->nh", upstream, grads), *(None,) * 8


def per_token_from_hidden(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    temperature: float,
    fn: BlockFn | None,
    *,
    chunk: int,
    grad_columns: tuple[int, ...] = (0,),
    token_ids: torch.Tensor | None = None,
    token_grad: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``fn`` over blocks of ``chunk`` rows of ``hidden`` (N, H), and the log-probs of ``token_ids``
    (N,): returns ``(fn outputs (N, k) or None, token log-probs (N,) or None)``.

    ``grad_columns``: the columns of ``fn`` that carry gradients to ``hidden`` (and to ``weight`` when
    it is trainable); the others are values only; ``token_grad`` likewise for the token log-probs.
    ``fn`` must be row-wise: output row ``n`` may depend on input row ``n`` only (per-token
    divergences are).
    """
    if chunk <= 0:
        raise ValueError(f"chunk must be positive, got {chunk}")
    grad = hidden.requires_grad and torch.is_grad_enabled()
    grad_columns = tuple(grad_columns) if grad and fn is not None else ()
    token_grad = bool(token_grad and grad and token_ids is not None)
    trainable_head = weight.requires_grad or (bias is not None and bias.requires_grad)
    if trainable_head and grad:
        out = _checkpointed_blocks(hidden, weight, bias, temperature, fn, chunk, token_ids)
    else:
        out = _FrozenHeadBlocks.apply(
            hidden,
            weight.detach(),
            None if bias is None else bias.detach(),
            temperature,
            fn,
            chunk,
            grad_columns,
            token_ids,
            token_grad,
        )
    keep = [*grad_columns, out.shape[1] - 1] if token_grad else list(grad_columns)
    cols = [out[:, c] if c in keep else out[:, c].detach() for c in range(out.shape[1])]
    values = torch.stack(cols[:-1], dim=-1) if fn is not None else None
    return values, cols[-1] if token_ids is not None else None


def _block_outputs(
    lps: torch.Tensor, fn: BlockFn | None, rows: slice, token_ids: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One block's ``fn`` columns ``(C, k)`` (``k = 0`` without ``fn``) and token log-probs ``(C, 1)``
    (zeros without ``token_ids``)."""
    out = fn(lps, rows) if fn is not None else lps.new_zeros((lps.shape[0], 0))
    tok = lps.gather(-1, token_ids[rows, None]) if token_ids is not None else lps.new_zeros((lps.shape[0], 1))
    return out, tok


def _checkpointed_blocks(hidden, weight, bias, temperature, fn, chunk, token_ids) -> torch.Tensor:
    """A trainable head: each block under activation checkpointing (recomputed in the backward)."""

    def block(h, rows):
        return torch.cat(_block_outputs(block_logprobs(h, weight, bias, temperature), fn, rows, token_ids), dim=1)

    blocks = []
    for start in range(0, hidden.shape[0], chunk):
        rows = slice(start, min(start + chunk, hidden.shape[0]))
        blocks.append(checkpoint(block, hidden[rows], rows, use_reentrant=False))
    return torch.cat(blocks)


def token_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    ids: torch.Tensor,
    temperature: float,
    *,
    chunk: int,
) -> torch.Tensor:
    """``log p(ids | hidden)`` for ``hidden`` (B, T, H) and ``ids`` (B, T), with gradients when
    ``hidden`` has them; never more than ``chunk`` rows of vocabulary-sized tensors at once."""
    b, t, h = hidden.shape
    _, tok = per_token_from_hidden(
        hidden.reshape(b * t, h), weight, bias, temperature, None, chunk=chunk, token_ids=ids.reshape(-1)
    )
    assert tok is not None  # token_ids given
    return tok.view(b, t)


def divergence_and_token_logprobs(
    per_token: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    student_hidden: torch.Tensor,
    student_head: tuple[torch.Tensor, torch.Tensor | None],
    teacher_hidden: torch.Tensor,
    teacher_head: tuple[torch.Tensor, torch.Tensor | None],
    ids: torch.Tensor,
    temperature: float,
    *,
    chunk: int,
    token_grad: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The per-token divergence ``per_token(teacher_logprobs, student_logprobs)`` and both models'
    token log-probs, all ``(B, T)``, from one pass of blocks (each block's teacher log-probs are
    computed once, without gradient). The divergence carries exact gradients, the student's token
    log-probs too when ``token_grad`` (a component trains through them), the teacher's never."""
    b, t, h = student_hidden.shape
    flat_ids, t_hidden = ids.reshape(-1), teacher_hidden.reshape(b * t, -1).detach()
    t_weight, t_bias = teacher_head[0].detach(), None if teacher_head[1] is None else teacher_head[1].detach()
    teacher_tokens = torch.empty(b * t, device=student_hidden.device)

    def fn(student_lps: torch.Tensor, rows: slice) -> torch.Tensor:
        with torch.no_grad():
            teacher_lps = block_logprobs(t_hidden[rows], t_weight, t_bias, temperature)
            teacher_tokens[rows] = teacher_lps.gather(-1, flat_ids[rows, None])[:, 0]
        return per_token(teacher_lps[None], student_lps[None])[0][:, None]

    weight, bias = student_head
    div, tok = per_token_from_hidden(
        student_hidden.reshape(b * t, h),
        weight,
        bias,
        temperature,
        fn,
        chunk=chunk,
        grad_columns=(0,),
        token_ids=flat_ids,
        token_grad=token_grad,
    )
    assert div is not None and tok is not None  # fn and token_ids given
    return div[:, 0].view(b, t), tok.view(b, t), teacher_tokens.view(b, t)
