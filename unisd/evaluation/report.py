"""Turn lm-eval results into flat summaries, per-domain breakdowns and Markdown tables."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Mapping, Sequence

from unisd.evaluation.tasks import find_task, primary_metric

if TYPE_CHECKING:  # pragma: no cover
    from unisd.registries import Registries


def breakdown_field(task: str, registries: Registries | None = None) -> str | None:
    """The document field that splits ``task`` into domains (its spec's ``breakdown_field``)."""
    spec = find_task(task, registries)
    return spec.breakdown_field if spec is not None else None


def summarize(lm_results: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{task: {metric: value, metric_stderr: value, n: count}}`` from lm-eval's ``results``."""
    out: dict[str, dict[str, float]] = {}
    n_samples = lm_results.get("n-samples", {})
    for task, metrics in (lm_results.get("results") or {}).items():
        row: dict[str, float] = {}
        for key, value in metrics.items():
            name, _, _filter = key.partition(",")
            if name in ("alias", "sample_len", "sample_count") or not isinstance(value, (int, float)):
                continue
            row[name] = float(value)
        if task in n_samples:
            row["n"] = float(n_samples[task].get("effective", n_samples[task].get("original", 0)))
        out[task] = row
    return out


def breakdown(
    samples: Mapping[str, Sequence[Mapping[str, Any]]], registries: Registries | None = None
) -> dict[str, dict[str, dict[str, float]]]:
    """Per-domain means of every metric, from lm-eval's logged samples."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for task, rows in samples.items():
        field = breakdown_field(task, registries)
        if not field:
            continue
        groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for s in rows:
            domain = str((s.get("doc") or {}).get(field) or "unknown")
            for metric in s.get("metrics", []):
                if isinstance(s.get(metric), (int, float)):
                    groups[domain][metric].append(float(s[metric]))
        out[task] = {
            d: {m: sum(v) / len(v) for m, v in ms.items()} | {"n": float(max(map(len, ms.values()), default=0))}
            for d, ms in sorted(groups.items())
        }
    return out


def _fmt(value: float | None, pct: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f}" if pct else f"{value:g}"


def results_markdown(
    summary: Mapping[str, Mapping[str, float]],
    skipped: Mapping[str, str] | None = None,
    details: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
    title: str = "",
    *,
    registries: Registries | None = None,
) -> str:
    """A Markdown report: one row per task (primary metric first, values in %), then breakdowns."""
    lines = [f"# {title}" if title else "# Evaluation results", ""]
    lines += ["| task | metric | value (%) | ± stderr | other metrics | n |", "|---|---|---|---|---|---|"]
    for task, row in summary.items():
        primary = primary_metric(task, None, registries) or next(
            (k for k in row if not k.endswith("_stderr") and k != "n"), ""
        )
        others = ", ".join(
            f"{k} {_fmt(v)}" for k, v in row.items() if k not in (primary, "n") and not k.endswith("_stderr")
        )
        lines.append(
            f"| {task} | {primary} | {_fmt(row.get(primary))} | {_fmt(row.get(primary + '_stderr'))} | "
            f"{others} | {int(row.get('n', 0))} |"
        )
    for task, reason in (skipped or {}).items():
        lines.append(f"| {task} | – | data unavailable | | {reason.replace('|', '/')} | 0 |")
    for task, domains in (details or {}).items():
        if not domains:
            continue
        metrics = sorted({m for d in domains.values() for m in d if m != "n"})
        lines += [
            "",
            f"## {task} by {breakdown_field(task, registries) or 'group'}",
            "",
            "| group | " + " | ".join(metrics) + " | n |",
            "|---" * (len(metrics) + 2) + "|",
        ]
        for domain, vals in domains.items():
            lines.append(
                f"| {domain} | " + " | ".join(_fmt(vals.get(m)) for m in metrics) + f" | {int(vals.get('n', 0))} |"
            )
    return "\n".join(lines) + "\n"


def load_result_file(path: Path) -> dict[str, Any]:
    """Read a ``results.json`` written by ``unisd eval``."""
    return json.loads(path.read_text(encoding="utf-8"))
