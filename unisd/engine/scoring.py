"""Teacher-forced scoring of ``context ⊕ completion`` at the completion positions.

The logits at column ``P − 1 + t`` of the concatenated sequence predict completion token ``t``;
only those ``T`` columns are projected to the vocabulary (``logits_to_keep``), never the prompt.
Positions are computed from the attention mask, so left padding does not shift them.
"""

from __future__ import annotations

import copy
import functools
import inspect
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from unisd.components.batch import LM_HEAD_INPUT, Scores
from unisd.engine.batching import Tokenized
from unisd.models.wrapping import base_model
from unisd.engine.vocab_chunks import token_logprobs


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


@contextmanager
def capture_features(model: torch.nn.Module, layers: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hooks by module path; ``"lm_head_input"`` captures the LM head's input."""
    captured: dict[str, torch.Tensor] = {}
    handles = []
    base = base_model(model)
    for path in layers:
        if path == LM_HEAD_INPUT:
            head = base.get_output_embeddings()
            if head is None:
                raise ValueError("the model has no output embedding layer to hook for 'lm_head_input'")
            handles.append(head.register_forward_pre_hook(lambda m, args, p=path: captured.__setitem__(p, args[0])))
        else:
            try:
                module = base.get_submodule(path)
            except AttributeError:
                names = [n for n, _ in base.named_modules() if n][:40]
                raise ValueError(
                    f"feature layer {path!r} is not a module path of {type(base).__name__}; e.g. {names[-5:]}"
                ) from None
            handles.append(
                module.register_forward_hook(
                    lambda m, a, out, p=path: captured.__setitem__(p, out[0] if isinstance(out, tuple) else out)
                )
            )
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()


def plain_head(model: torch.nn.Module) -> torch.nn.Linear | None:
    """The model's LM head when it is a plain ``nn.Linear`` (not wrapped by an adapter), else None."""
    head = base_model(model).get_output_embeddings()
    return head if type(head) is torch.nn.Linear else None


@contextmanager
def capture_head_input(model: torch.nn.Module) -> Iterator[dict[str, Any]]:
    """Capture the decoder's last hidden state (the LM head's input, at every position) and the
    head's weight and bias *as the forward used them* (an EMA teacher swaps weights during its
    forward), so the head can be applied later in blocks of tokens."""
    base = base_model(model)
    captured: dict[str, Any] = {}

    def on_decoder(module, args, out):
        captured["hidden"] = out[0] if isinstance(out, tuple) else out.last_hidden_state

    def on_head(module, args, out):
        captured["head"] = (module.weight, module.bias)

    handles = [
        base.get_decoder().register_forward_hook(on_decoder),
        base.get_output_embeddings().register_forward_hook(on_head),
    ]
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()


def score(
    forward: Callable[..., Any],
    model_for_hooks: torch.nn.Module,
    prompt: Tokenized,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    temperature: float,
    full_logprobs: bool = True,
    feature_layers: Sequence[str] = (),
    logit_chunk: int = 0,
    keep_hidden: bool = False,
    max_tokens: int = 0,
    share_prefix: int = 0,
    prefix: SharedPrefix | None = None,
) -> Scores:
    """Run ``forward`` on ``prompt ⊕ completion`` and return log-probs aligned to the completion.

    ``forward`` is a model (or a teacher-provider callable) called with ``input_ids``,
    ``attention_mask``, ``position_ids`` and ``logits_to_keep``. Log-softmax is taken in fp32 over
    the full vocabulary at ``temperature``.

    ``logit_chunk`` > 0 (and a plain linear LM head): the forward computes no logits at all; the head
    is applied to ``logit_chunk`` completion tokens at a time (:mod:`unisd.engine.vocab_chunks`), and
    ``full_logprobs`` is not available. With ``keep_hidden`` the scores carry the head's input and
    weights (``Scores.hidden``, ``Scores.head``) and no token log-probs yet: the caller computes them
    with the divergence in the same blocks.

    ``max_tokens`` > 0: rows are sorted by length and run in groups of at most ``max_tokens`` padded
    tokens each (:func:`length_groups`), each group trimmed to its own longest prompt and completion;
    the scores are put back in row order (zero past the longest completion of a row's group).

    ``share_prefix`` > 0 (no gradient: the teacher): when every row's prompt starts with the same
    ``share_prefix`` tokens or more (the chat template's system turn, the agreement contexts'
    header), that prefix runs once, as one row, and every row (every group) continues from its
    key/value cache (:class:`SharedPrefix`); equal to one forward of the whole rows up to float
    rounding.
    """
    if share_prefix and prefix is None:
        prefix = SharedPrefix.of(forward, model_for_hooks, prompt, share_prefix)
        if prefix is not None:
            prompt = prefix.rest
    completion_lengths = (completion_mask > 0).sum(-1)
    groups = length_groups(prompt.lengths, completion_lengths, max_tokens) if max_tokens else []
    if len(groups) > 1:
        parts = []
        for rows in groups:
            start = prompt.ids.shape[1] - int(prompt.lengths[rows].max())  # the group's left padding ends here
            c_len = max(int(completion_lengths[rows].max()), 1)
            sub_prompt = Tokenized(prompt.ids[rows, start:], prompt.mask[rows, start:])
            parts.append(
                score(
                    forward,
                    model_for_hooks,
                    sub_prompt,
                    completion_ids[rows, :c_len],
                    completion_mask[rows, :c_len],
                    temperature=temperature,
                    full_logprobs=full_logprobs,
                    feature_layers=feature_layers,
                    logit_chunk=logit_chunk,
                    keep_hidden=keep_hidden,
                    prefix=prefix,
                )
            )
        return _in_row_order(parts, groups, completion_ids.shape[1])
    device = completion_ids.device
    P, T = prompt.ids.shape[1], completion_ids.shape[1]
    input_ids = torch.cat([prompt.ids.to(device), completion_ids], dim=1)
    attn = torch.cat([prompt.mask.to(device), (completion_mask > 0).long()], dim=1)
    # Columns after a completion's EOS are padding; attending to them is harmless (they come after
    # every scored position), but keep them masked for clean attention statistics.
    blocks = logit_chunk > 0 and not full_logprobs and plain_head(model_for_hooks) is not None
    if blocks:
        layers = [name for name in feature_layers if name != LM_HEAD_INPUT]
        with capture_features(model_for_hooks, layers) as feats, capture_head_input(model_for_hooks) as head:
            _forward(forward, input_ids, attn, 1, prefix)
        hidden = _align(head["hidden"], P, T)
        features = {name: _align(f, P, T) for name, f in feats.items()}
        if LM_HEAD_INPUT in feature_layers:
            features[LM_HEAD_INPUT] = hidden
        weight, bias = head["head"]
        if keep_hidden:
            return Scores(token_logps=None, features=features, hidden=hidden, head=(weight, bias))  # type: ignore[arg-type]
        token_logps = token_logprobs(hidden, weight, bias, completion_ids, temperature, chunk=logit_chunk)
        return Scores(token_logps=token_logps, features=features)
    with capture_features(model_for_hooks, feature_layers) as feats:
        out = _forward(forward, input_ids, attn, T + 1, prefix)
    logits = out.logits[:, -(T + 1) : -1, :].float()
    logprobs = torch.log_softmax(logits / temperature, dim=-1)
    token_logps = logprobs.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
    features = {name: _align(f, P, T) for name, f in feats.items()}
    keep = full_logprobs or keep_hidden  # no plain head to apply in blocks: the caller gets full log-probs
    return Scores(token_logps=token_logps, logprobs=logprobs if keep else None, features=features)


def _forward(
    forward: Callable[..., Any],
    input_ids: torch.Tensor,
    attn: torch.Tensor,
    logits_to_keep: int,
    prefix: SharedPrefix | None,
) -> Any:
    if prefix is None:
        return forward(
            input_ids=input_ids,
            attention_mask=attn,
            position_ids=position_ids_from_mask(attn),
            logits_to_keep=logits_to_keep,
            use_cache=False,
        )
    full = torch.cat([attn.new_ones(attn.shape[0], prefix.length), attn], dim=1)
    return forward(
        input_ids=input_ids,
        attention_mask=full,
        position_ids=position_ids_from_mask(full)[:, prefix.length :],
        logits_to_keep=logits_to_keep,
        use_cache=True,
        **{prefix.cache_arg: prefix.cache_for(attn.shape[0])},
    )


@dataclass
class SharedPrefix:
    """The first ``length`` prompt tokens, common to every row, run once: their key/value ``cache``
    (one row) and the rows' remaining prompts (``rest``, left-padded)."""

    length: int
    cache: Any
    cache_arg: str
    rest: Tokenized

    @classmethod
    def of(
        cls, forward: Callable[..., Any], model_for_hooks: torch.nn.Module, prompt: Tokenized, min_length: int
    ) -> SharedPrefix | None:
        """The rows' shared prefix, run through ``forward``; None when it is shorter than
        ``min_length`` tokens. Every row keeps one prompt token at least (its last position
        predicts the first completion token)."""
        if torch.is_grad_enabled():
            raise RuntimeError("a shared prompt prefix is for scoring without gradient (the teacher)")
        ids, mask = prompt.ids, prompt.mask
        B, P = ids.shape
        lengths = mask.sum(-1)
        shortest = int(lengths.min())  # one host sync: the shapes below depend on it
        if B < 2 or shortest - 1 < min_length:
            return None
        # token k of row i is at column P − lengths[i] + k (left padding): compare the rows' first
        # ``shortest − 1`` tokens with row 0's, on the device
        cols = (P - lengths).unsqueeze(1) + torch.arange(shortest - 1, device=ids.device)
        heads = ids.gather(1, cols)
        length = int((heads == heads[:1]).all(0).long().cumprod(0).sum())
        if length < min_length:
            return None
        head = heads[:1, :length]
        out = forward(input_ids=head, attention_mask=torch.ones_like(head), logits_to_keep=1, use_cache=True)
        cache_arg = _cache_keyword(type(base_model(model_for_hooks)).forward)
        cache = out.cache if cache_arg == "cache" else out.past_key_values
        # what follows the prefix, still left-padded: the last columns, with each row's prefix masked
        width = int(lengths.max()) - length
        start = P - width
        rest_mask = mask[:, start:] * (
            (start + torch.arange(width, device=mask.device)).unsqueeze(0) >= (P - lengths + length).unsqueeze(1)
        )
        return cls(length, cache, cache_arg, Tokenized(ids[:, start:], rest_mask.to(mask.dtype)))

    def cache_for(self, rows: int) -> Any:
        """A copy of the prefix's cache for ``rows`` rows (a forward appends to the cache it is given)."""
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(rows)
        return cache


@functools.cache
def _cache_keyword(forward: Callable[..., Any]) -> str:
    """The name of the key/value cache argument of a model class's ``forward``: ``cache``
    (transformers 5.24 on) or ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def length_groups(
    prompt_lengths: torch.Tensor, completion_lengths: torch.Tensor, max_tokens: int
) -> list[torch.Tensor]:
    """Row indices in groups: rows sorted by prompt length (longest first), each group as many rows
    as fit ``max_tokens`` padded tokens (rows × (longest prompt + longest completion)); one row at
    least per group."""
    order = torch.argsort(prompt_lengths.cpu(), descending=True, stable=True).tolist()
    p, c = prompt_lengths.tolist(), completion_lengths.tolist()
    groups: list[list[int]] = []
    for i in order:
        g = groups[-1] if groups else None
        if g is not None and (len(g) + 1) * (p[g[0]] + max(c[i], *(c[j] for j in g))) <= max_tokens:
            g.append(i)
        else:
            groups.append([i])
    return [torch.tensor(sorted(g), device=prompt_lengths.device) for g in groups]


def _in_row_order(parts: list[Scores], groups: list[torch.Tensor], T: int) -> Scores:
    """Scores of row groups (each cut to its own completion length) as one batch in row order."""
    inverse = torch.argsort(torch.cat(groups))

    def merge(tensors: list[torch.Tensor]) -> torch.Tensor:
        padded = [F.pad(t, (0, 0) * (t.dim() - 2) + (0, T - t.shape[1])) for t in tensors]
        return torch.cat(padded)[inverse.to(padded[0].device)]

    out: dict[str, Any] = {}
    for f in fields(Scores):
        values = [getattr(s, f.name) for s in parts]
        if f.name == "features":
            out[f.name] = {k: merge([v[k] for v in values]) for k in values[0]}
        elif f.name == "head":
            out[f.name] = values[0]  # the same head for every group
        else:
            out[f.name] = None if values[0] is None else merge(values)
    return Scores(**out)


def _align(feature: torch.Tensor, P: int, T: int) -> torch.Tensor:
    """Slice a captured (B, L, H) feature to the T columns that predict the completion."""
    L = feature.shape[1]
    if L == T + 1:  # already cut by logits_to_keep (LM-head input)
        return feature[:, :-1]
    if L == P + T:
        return feature[:, P - 1 : P + T - 1]
    raise ValueError(f"captured feature has sequence length {L}, expected {P + T} or {T + 1}")
