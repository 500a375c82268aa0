"""``unisd compare``: several evaluations side by side (``comparison.md`` + ``comparison.png``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from unisd.evaluation.report import load_result_file
from unisd.evaluation.tasks import primary_metric


def find_results(path: Path) -> Path:
    """The results file of a ``unisd eval`` directory (``results.json``), a run directory (``eval/``),
    an ``lm_eval --output_path`` directory (its newest ``<model>/results_<time>.json``) or the file itself."""
    if path.is_file():
        return path
    for cand in (path / "results.json", path / "eval" / "results.json"):
        if cand.is_file():
            return cand
    found = sorted(path.glob("**/results.json"))
    if found:
        return found[0]
    stamped = sorted(path.glob("**/results_*.json"), key=lambda p: (p.name, str(p)))  # lm-eval's names sort by time
    if not stamped:
        raise FileNotFoundError(
            f"no results.json or lm-eval results_*.json under {path} (run 'unisd eval' or lm_eval first)"
        )
    return stamped[-1]


def _label(path: Path, taken: set[str]) -> str:
    parts = path.resolve().parts
    label = parts[-2] if parts[-1] == "eval" and len(parts) > 1 else parts[-1]
    base, i = label, 2
    while label in taken:
        label, i = f"{base}-{i}", i + 1
    taken.add(label)
    return label


def collect(runs: list[str]) -> tuple[list[str], dict[str, dict[str, dict[str, float]]]]:
    """``(labels, {label: {task: {metric: value}}})`` from ``unisd eval`` outputs."""
    labels: list[str] = []
    table: dict[str, dict[str, dict[str, float]]] = {}
    taken: set[str] = set()
    for run in runs:
        path = Path(run).expanduser()
        data = load_result_file(find_results(path))
        label = _label(path if path.is_dir() else path.parent, taken)
        summary: dict[str, Any] = (data.get("unisd") or {}).get("summary") or {}
        if not summary:  # a plain lm-eval results file
            from unisd.evaluation.report import summarize

            summary = summarize(data)
        labels.append(label)
        table[label] = summary
    return labels, table


def comparison_markdown(labels: list[str], table: dict[str, dict[str, dict[str, float]]]) -> str:
    """Rows = task/primary metric, columns = runs, values in %; the best value per row in bold."""
    tasks = list(dict.fromkeys(t for lab in labels for t in table[lab]))
    lines = ["# Comparison", "", "| task | metric | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    for task in tasks:
        metric = primary_metric(task, "acc")
        vals = [table[lab].get(task, {}).get(metric) for lab in labels]
        best = max((v for v in vals if v is not None), default=None)
        cells = [
            "–" if v is None else (f"**{100 * v:.1f}**" if v == best and len(set(vals)) > 1 else f"{100 * v:.1f}")
            for v in vals
        ]
        lines.append(f"| {task} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bar_chart(labels: list[str], table: dict[str, dict[str, dict[str, float]]], out: Path) -> None:
    """Grouped bars (one group per task, one bar per run) of the primary metric."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("the bar chart needs matplotlib: pip install matplotlib (or 'unisd[dev]')") from exc
    tasks = list(dict.fromkeys(t for lab in labels for t in table[lab]))
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(tasks) * max(1, len(labels)) ** 0.5), 4.0))
    for i, lab in enumerate(labels):
        xs = [k + (i - (len(labels) - 1) / 2) * width for k in range(len(tasks))]
        ys = [100 * table[lab].get(t, {}).get(primary_metric(t, "acc"), 0.0) for t in tasks]
        ax.bar(xs, ys, width, label=lab)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels([t.removeprefix("unisd_") for t in tasks], rotation=30, ha="right")
    ax.set_ylabel("score (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def run_compare(args: argparse.Namespace) -> int:
    """Entry point of ``unisd compare`` (parser in :mod:`unisd.cli.compare_cmd`)."""
    try:
        labels, table = collect(list(args.runs))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = comparison_markdown(labels, table)
    (out / "comparison.md").write_text(md, encoding="utf-8")
    print(md)
    try:
        bar_chart(labels, table, out / "comparison.png")
    except RuntimeError as exc:
        print(f"error: {exc}; {out / 'comparison.md'} was written", file=sys.stderr)
        return 1
    print(f"wrote {out / 'comparison.md'} and {out / 'comparison.png'}")
    return 0
