"""Is each mechanism acting? A run's activity, read back from its ``metrics.jsonl``.

Every recipe component names the metrics that show it at work (``activity_metrics``, logged as
``<name>/<key>``) and says, from the logged history, why it did nothing when it did nothing
(``inert_reason``). On top of that every auxiliary loss term is judged by its share of the
gradient norm (``share/grad/<term>``, measured every ``logging.diagnostics_every`` steps) or,
where that was not measured, of the loss (``share/loss/<term>``): a term under
:data:`WEAK_SHARE` is reported as weak.

The same summary feeds the run's ``summary.json`` and printed summary, ``unisd inspect`` and the
tables of ``unisd replicate``.
"""

from __future__ import annotations

import math
from typing import Any
from collections.abc import Iterable, Mapping, Sequence

#: an auxiliary term whose share of the gradient (or loss) stays below this over a run is weak
WEAK_SHARE = 0.01


def series(history: Iterable[Mapping[str, Any]], key: str) -> list[float]:
    """The finite numeric values of ``key`` over the logged rows."""
    out = []
    for row in history:
        v = row.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v))
    return out


def _stats(values: Sequence[float], cumulative: bool = False) -> dict[str, float]:
    """Summary statistics of a metric over the logged steps; ``value`` is the one a table shows: the
    mean, or for a cumulative count the last."""
    mean = sum(values) / len(values)
    return {
        "value": values[-1] if cumulative else mean,
        "mean": mean,
        "first": values[0],
        "last": values[-1],
        "min": min(values),
        "max": max(values),
        "points": len(values),
    }


def component_activity(component: Any, history: Sequence[Mapping[str, Any]], steps: int) -> dict[str, Any]:
    """One component's activity over a run: its activity metrics (mean, first, last, min, max over
    the logged steps), its term's loss and gradient shares, and ``status`` (``active``, ``weak`` or
    ``inert``) with the ``reason``."""
    name = component.name
    metrics = {
        k: _stats(v, k in component.cumulative_metrics)
        for k in component.activity_metrics
        if (v := series(history, f"{name}/{k}"))
    }
    entry: dict[str, Any] = {"name": name, "type": component.config.type, "kind": component.kind, "metrics": metrics}
    for what in ("loss", "grad"):
        values = series(history, f"share/{what}/{name}")
        entry[f"{what}_share"] = sum(values) / len(values) if values else None
    reason = component.inert_reason(history, steps)
    status = "inert" if reason else "active"
    if reason is None and component.kind == "loss":
        weight = getattr(component.config, "weight", 1.0)
        share, what = (
            (entry["grad_share"], "gradient norm") if entry["grad_share"] is not None else (entry["loss_share"], "loss")
        )
        if weight == 0:
            status, reason = "inert", "weight 0: the term is computed but adds nothing to the loss"
        elif share is not None and share < WEAK_SHARE:
            status, reason = "weak", f"its term is {100 * share:.2f}% of the {what} (weight {weight:g})"
    entry["status"], entry["reason"] = status, reason
    return entry


def run_activity(recipe: Any, history: Sequence[Mapping[str, Any]], registries: Any) -> list[dict[str, Any]]:
    """The activity of every component of ``recipe`` (built from its config, not set up) over
    ``history`` (the run's ``metrics.jsonl`` rows), in recipe order. A component that names no
    activity metric and adds no loss term (a plain ``base`` teacher) has nothing to report."""
    steps = max((int(r.get("step", 0)) for r in history), default=0)
    out = []
    for cfg in recipe.components:
        component = registries.component_class(cfg.type)(cfg)
        if component.activity_metrics or component.kind == "loss":
            out.append(component_activity(component, history, steps))
    return out


def warnings(activity: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per configured component that was inert or weak over the run."""
    return [
        f"{a['name']} ({a['type']}) was {a['status']} over the run: {a['reason']}"
        for a in activity
        if a["status"] != "active"
    ]


def activity_lines(activity: Sequence[Mapping[str, Any]]) -> list[str]:
    """The console form: one line per component (its metrics' means over the run and its shares)."""
    lines = []
    for a in activity:
        values = [f"{k} {_fmt(st.get('value', st['mean']))}" for k, st in a["metrics"].items()]
        values += [
            f"{what} share {100 * a[f'{what}_share']:.1f}%"
            for what in ("loss", "grad")
            if a[f"{what}_share"] is not None
        ]
        head = f"  {a['name']:<18} {a['status']}"
        lines.append(head + (f" ({', '.join(values)})" if values else ""))
        if a["reason"]:
            lines.append(f"  {'':<18} ⚠ {a['reason']}")
    return lines


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.3e}"


def activity_markdown(activity: Sequence[Mapping[str, Any]]) -> str:
    """A table: one row per component metric (mean over the run, first → last logged value), with
    the component's loss and gradient shares and its status."""
    if not activity:
        return "No mechanism component in this recipe.\n"
    lines = [
        "| component | metric | over the run (mean; a count: its last) | first → last | loss share | grad share | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in activity:
        status = a["status"] if not a.get("reason") else f"{a['status']}: {a['reason']}"
        share = lambda v: "–" if v is None else f"{100 * v:.1f}%"  # noqa: E731
        rows = list(a["metrics"].items()) or [("(none logged)", None)]
        for i, (key, st) in enumerate(rows):
            cells = (
                ["–", "–"]
                if st is None
                else [_fmt(st.get("value", st["mean"])), f"{_fmt(st['first'])} → {_fmt(st['last'])}"]
            )
            head = [f"{a['name']} ({a['type']})", key]
            tail = [share(a["loss_share"]), share(a["grad_share"]), status] if i == 0 else ["", "", ""]
            lines.append("| " + " | ".join(head + cells + tail) + " |")
    return "\n".join(lines) + "\n"


def activity_keys(activity: Sequence[Mapping[str, Any]]) -> list[str]:
    """The metric keys behind an activity summary: each component's metrics, then the term shares."""
    keys = [f"{a['name']}/{k}" for a in activity for k in a["metrics"]]
    return keys + [f"share/grad/{a['name']}" for a in activity if a["grad_share"] is not None]


def plot_activity(
    curves: Mapping[str, Sequence[Mapping[str, Any]]], keys: Sequence[str], path: Any, title: str = ""
) -> bool:
    """Small multiples, one panel per metric key, one line per label of ``curves`` (label → logged
    rows) over optimizer steps; written to ``path``. False (and nothing written) without matplotlib
    or without any logged value."""
    keys = [k for k in keys if any(series(rows, k) for rows in curves.values())]
    if not keys:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cols = min(4, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.6 * cols, 2.6 * nrows), squeeze=False)
    styles = line_styles(list(curves))
    for ax, key in zip(axes.flat, keys, strict=False):
        for label, rows in curves.items():
            points = [(int(r["step"]), float(r[key])) for r in rows if isinstance(r.get(key), (int, float))]
            if points:
                ax.plot(*zip(*points, strict=True), label=label, linewidth=1.2, markersize=3, **styles[label])
        ax.set_title(key, fontsize="small")
        ax.set_xlabel("optimizer step", fontsize="x-small")
        ax.tick_params(labelsize="x-small")
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    legend: dict[str, Any] = {}  # every label once, from whichever panel drew it
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    if len(curves) > 1:
        fig.legend(
            list(legend.values()), list(legend), loc="lower center", ncol=min(4, len(legend)), fontsize="x-small"
        )
    if title:
        fig.suptitle(title, fontsize="medium")
    fig.tight_layout(rect=(0, 0.02 + 0.012 * math.ceil(len(curves) / 4) if len(curves) > 1 else 0, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def line_styles(labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A colour and marker of its own for every label (20 colours × 10 markers before any pair repeats)."""
    import matplotlib

    colours = [matplotlib.colormaps["tab20"](i) for i in range(20)]
    markers = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]
    return {label: {"color": colours[i % 20], "marker": markers[i % len(markers)]} for i, label in enumerate(labels)}


def merge_runs(runs: Sequence[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """The activity of several runs of one recipe (its seeds) as one summary per component: each
    metric's run means and the shares averaged over runs, ``statuses`` counted, reasons kept once."""
    merged: dict[str, dict[str, Any]] = {}
    for activity in runs:
        for a in activity:
            m = merged.setdefault(
                a["name"],
                {
                    "name": a["name"],
                    "type": a["type"],
                    "kind": a["kind"],
                    "metrics": {},
                    "loss_share": [],
                    "grad_share": [],
                    "statuses": {},
                    "reasons": [],
                },
            )
            for k, st in a["metrics"].items():
                m["metrics"].setdefault(k, []).append(
                    st.get("value", st["mean"])
                )  # summaries written before "value": the mean
            for what in ("loss_share", "grad_share"):
                if a[what] is not None:
                    m[what].append(a[what])
            m["statuses"][a["status"]] = m["statuses"].get(a["status"], 0) + 1
            if a["reason"] and a["reason"] not in m["reasons"]:
                m["reasons"].append(a["reason"])
    mean = lambda v: sum(v) / len(v) if v else None  # noqa: E731
    for m in merged.values():
        m["metrics"] = {k: mean(v) for k, v in m["metrics"].items()}
        m["loss_share"], m["grad_share"] = mean(m["loss_share"]), mean(m["grad_share"])
    return list(merged.values())


def merged_cells(m: Mapping[str, Any]) -> tuple[str, str, str]:
    """(metrics, gradient share, status) cells of a :func:`merge_runs` entry for a Markdown table."""
    metrics = "; ".join(f"{k} {_fmt(v)}" for k, v in m["metrics"].items()) or "–"
    grad = "–" if m["grad_share"] is None else f"{100 * m['grad_share']:.1f}%"
    runs = sum(m["statuses"].values())
    status = ", ".join(f"{s} {n}/{runs}" for s, n in sorted(m["statuses"].items()))
    if m["reasons"]:
        status += ": " + " / ".join(m["reasons"])
    return metrics, grad, status


def mean_rows(histories: Sequence[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Several runs' metric rows averaged step by step (numeric values only), for plotting seeds as one line."""
    sums: dict[int, dict[str, list[float]]] = {}
    for rows in histories:
        for r in rows:
            slot = sums.setdefault(int(r.get("step", 0)), {})
            for k, v in r.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    slot.setdefault(k, []).append(float(v))
    return [{"step": s, **{k: sum(v) / len(v) for k, v in slot.items()}} for s, slot in sorted(sums.items())]
