"""Forgetting: a trained model scored on capabilities it was not trained on, item by item, so that
its change from the base model gets paired confidence intervals.

A probe is either another dataset's held-out records, answered greedily and checked by the
dataset adapter (``data``), or an lm-eval task (``lm_eval``, e.g. a log-likelihood
multiple-choice task) whose per-document ``metric`` is read from lm-eval's logged samples.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any
from collections.abc import Callable, Sequence

from pydantic import Field, model_validator

from unisd.components.base import StrictModel

log = logging.getLogger("unisd.forgetting")


class ProbeSpec(StrictModel):
    """One capability a run is scored on before (the base model) and after training."""

    name: str = Field(description="the probe's name in the tables")
    data: dict[str, Any] | None = Field(
        None, description="a dataset adapter config: its held-out records, answered greedily and checked by the adapter"
    )
    heldout: int = Field(64, ge=1, description="records of the dataset scored (the first ones)")
    heldout_split: str = Field("test", description="their split")
    max_new_tokens: int = Field(32, ge=1, description="generation budget of a dataset probe")
    lm_eval: str | None = Field(None, description="an lm-eval task (registered or stock), scored per document")
    metric: str = Field("acc", description="the lm-eval task's per-document metric")
    limit: int | None = Field(128, ge=1, description="documents of the lm-eval task scored (the first ones)")
    data_dir: str | None = Field(None, description="local benchmark files for the lm-eval task")

    @model_validator(mode="after")
    def _one_source(self) -> ProbeSpec:
        if (self.data is None) == (self.lm_eval is None):
            raise ValueError(f"probe {self.name!r}: give exactly one of data (a dataset) or lm_eval (a task)")
        return self

    def key(self) -> dict[str, Any]:
        """What the probe's result depends on (a cached result with another key is not reused)."""
        return self.model_dump(mode="json")


def score_probe(model: Any, tokenizer: Any, probe: ProbeSpec, *, registries: Any = None) -> dict[str, Any]:
    """``{"ids", "correct", "accuracy"}`` of ``model`` on ``probe`` (``correct``: one 0/1 or metric
    value per item, in a fixed order)."""
    if probe.data is not None:
        from unisd.runs.heldout import heldout_accuracy

        if registries is None:
            from unisd.plugins import get_registries

            registries = get_registries()
        cls = registries.datasets.get(probe.data["type"])
        cfg = cls.Config.model_validate({**probe.data, "split": probe.heldout_split})
        adapter = cls(cfg)
        records = list(adapter.load())[: probe.heldout]
        result = heldout_accuracy(model, tokenizer, adapter, records, probe.max_new_tokens, batch_size=32)
        scored = [a for a in result["answers"] if a["correct"] is not None]
        ids, correct = [a["id"] for a in scored], [float(a["correct"]) for a in scored]
    else:
        from unisd.evaluation.runner import evaluate_model

        assert probe.lm_eval is not None  # a probe has data or lm_eval (ProbeSpec._one_source)

        with tempfile.TemporaryDirectory(prefix="unisd-probe-") as tmp:
            evaluate_model(
                model,
                tokenizer,
                [probe.lm_eval],
                limit=probe.limit,
                data_dir=probe.data_dir,
                output_dir=tmp,
                log_samples=True,
                batch_size=32,
                registries=registries,
            )
            files = list(Path(tmp).glob("samples_*.jsonl"))
            if not files:
                raise RuntimeError(f"probe {probe.name!r}: lm-eval logged no samples for task {probe.lm_eval!r}")
            rows = [
                json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
        if any(probe.metric not in r for r in rows):
            raise ValueError(
                f"probe {probe.name!r}: task {probe.lm_eval!r} has no per-document metric {probe.metric!r} "
                f"(it logs: {', '.join(sorted(k for k in rows[0] if isinstance(rows[0][k], (int, float))))})"
            )
        rows.sort(key=lambda r: int(r["doc_id"]))
        ids, correct = [str(r["doc_id"]) for r in rows], [float(r[probe.metric]) for r in rows]
    return {"ids": ids, "correct": correct, "accuracy": sum(correct) / len(correct) if correct else None}


def probes_scored(path: Path, probes: Sequence[ProbeSpec], *, model_name: str = "") -> bool:
    """Whether ``path`` holds a result of every probe, scored with its present settings (a run killed
    between two probes leaves the file with some of them)."""
    cached = json.loads(path.read_text()) if path.is_file() else {}
    return all((cached.get(p.name) or {}).get("key") == _cache_key(p, model_name) for p in probes)


def _cache_key(probe: ProbeSpec, model_name: str) -> dict[str, Any]:
    """What a cached probe result must match to be reused: the probe's settings and the model."""
    return {**probe.key(), "model": model_name}


def score_probes(
    load: Callable[[], tuple[Any, Any]],
    probes: list[ProbeSpec],
    path: Path,
    *,
    model_name: str = "",
    registries: Any = None,
) -> dict[str, Any]:
    """Every probe's result, cached in ``path`` (a probe whose settings or ``model_name`` changed is
    scored again). ``load()`` gives ``(model, tokenizer)``; it is called only when a probe needs scoring."""
    cached = json.loads(path.read_text()) if path.is_file() else {}
    out: dict[str, Any] = {}
    loaded: tuple[Any, Any] | None = None
    for probe in probes:
        key = _cache_key(probe, model_name)
        hit = cached.get(probe.name)
        if hit and hit.get("key") == key:
            out[probe.name] = hit
            continue
        loaded = loaded or load()
        log.info("forgetting probe %s", probe.name)
        out[probe.name] = {"key": key, **score_probe(*loaded, probe, registries=registries)}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**cached, **out}, indent=2))
    return out


def paired_change(before: dict[str, Any], afters: list[dict[str, Any]]) -> dict[str, Any]:
    """The change from ``before`` (the base model) to each seed's ``after`` on the items both scored:
    mean after, the change's mean ± 95% t-interval over seeds, and the paired bootstrap interval
    over items of the seed-averaged per-item change."""
    from unisd.runs.stats import mean_ci, paired_bootstrap

    base = dict(zip(before["ids"], before["correct"], strict=True))
    per_seed = [dict(zip(a["ids"], a["correct"], strict=True)) for a in afters]
    common = [i for i in before["ids"] if all(i in s for s in per_seed)]
    if not common:
        return {"n": 0}
    after_acc = [sum(s[i] for i in common) / len(common) for s in per_seed]
    before_acc = sum(base[i] for i in common) / len(common)
    change, ci = mean_ci([a - before_acc for a in after_acc])
    diffs = [sum(s[i] for s in per_seed) / len(per_seed) - base[i] for i in common]
    _, lo, hi = paired_bootstrap(diffs)
    return {
        "n": len(common),
        "before": before_acc,
        "after": sum(after_acc) / len(after_acc),
        "change": change,
        "change_ci": ci,
        "bootstrap": [lo, hi],
        "per_seed_after": after_acc,
    }
