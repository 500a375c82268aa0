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
from typing import Any, Iterable, Mapping, Sequence

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


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {"mean": sum(values) / len(values), "first": values[0], "last": values[-1], "min": min(values),
            "max": max(values), "points": len(values)}


def component_activity(component: Any, history: Sequence[Mapping[str, Any]], steps: int) -> dict[str, Any]:
    """One component's activity over a run: its activity metrics (mean, first, last, min, max over
    the logged steps), its term's loss and gradient shares, and ``status`` (``active``, ``weak`` or
    ``inert``) with the ``reason``."""
    name = component.name
    metrics = {k: _stats(v) for k in component.activity_metrics if (v := series(history, f"{name}/{k}"))}
    entry: dict[str, Any] = {"name": name, "type": component.config.type, "kind": component.kind, "metrics": metrics}
    for what in ("loss", "grad"):
        values = series(history, f"share/{what}/{name}")
        entry[f"{what}_share"] = sum(values) / len(values) if values else None
    reason = component.inert_reason(history, steps)
    status = "inert" if reason else "active"
    if reason is None and component.kind == "loss":
        weight = getattr(component.config, "weight", 1.0)
        share, what = ((entry["grad_share"], "gradient norm") if entry["grad_share"] is not None
                       else (entry["loss_share"], "loss"))
        if weight == 0:
            status, reason = "inert", "weight 0: the term is computed but adds nothing to the loss"
        elif share is not None and share < WEAK_SHARE:
            status, reason = "weak", f"its term is {100 * share:.2f}% of the {what} (weight {weight:g})"
    entry["status"], entry["reason"] = status, reason
    return entry


def run_activity(recipe: Any, history: Sequence[Mapping[str, Any]], registries: Any) -> list[dict[str, Any]]:
    """The activity of every component of ``recipe`` (built from its config, not set up) over
    ``history`` (the run's ``metrics.jsonl`` rows), in recipe order."""
    steps = max((int(r.get("step", 0)) for r in history), default=0)
    out = []
    for cfg in recipe.components:
        component = registries.component_class(cfg.type)(cfg)
        out.append(component_activity(component, history, steps))
    return out


def warnings(activity: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per configured component that was inert or weak over the run."""
    return [f"{a['name']} ({a['type']}) was {a['status']} over the run: {a['reason']}" for a in activity
            if a["status"] != "active"]


def activity_lines(activity: Sequence[Mapping[str, Any]]) -> list[str]:
    """The console form: one line per component (its metrics' means over the run and its shares)."""
    lines = []
    for a in activity:
        values = [f"{k} {_fmt(st['mean'])}" for k, st in a["metrics"].items()]
        values += [f"{what} share {100 * a[f'{what}_share']:.1f}%" for what in ("loss", "grad") if a[f"{what}_share"] is not None]
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
    lines = ["| component | metric | mean | first → last | loss share | grad share | status |",
             "|---|---|---|---|---|---|---|"]
    for a in activity:
        status = a["status"] if not a.get("reason") else f"{a['status']}: {a['reason']}"
        share = lambda v: "–" if v is None else f"{100 * v:.1f}%"  # noqa: E731
        rows = list(a["metrics"].items()) or [("(none logged)", None)]
        for i, (key, st) in enumerate(rows):
            cells = ["–", "–"] if st is None else [_fmt(st["mean"]), f"{_fmt(st['first'])} → {_fmt(st['last'])}"]
            head = [f"{a['name']} ({a['type']})", key]
            tail = [share(a["loss_share"]), share(a["grad_share"]), status] if i == 0 else ["", "", ""]
            lines.append("| " + " | ".join(head + cells + tail) + " |")
    return "\n".join(lines) + "\n"
