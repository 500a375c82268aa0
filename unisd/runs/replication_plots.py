"""The plots of a replication: held-out accuracy over steps, JSD to the base model, and each
mechanism's activity over steps."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any


from unisd.runs.stats import mean_ci
from unisd.runs.experiment import Experiment, _folder

log = logging.getLogger("unisd.replicate")


def plot_results(exp: Experiment, res: dict[str, Any], out: Path) -> None:
    """``accuracy_vs_step.png`` (mean over seeds with its 95% t-interval as a band, every method its own
    colour and marker), ``jsd_to_base.png`` (per-sample distributions) and ``mechanisms_<task>.png``
    (each mechanism's activity metrics over steps, seeds averaged)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no plots (pip install matplotlib)")
        return
    from unisd.runs.activity import activity_keys, line_styles, mean_rows, plot_activity
    from unisd.engine.metrics import read_metrics

    tasks = list(res["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(7 * len(tasks), 4.5), squeeze=False)
    for ax, t in zip(axes[0], tasks, strict=False):
        methods = res["tasks"][t]["methods"]
        styles = line_styles(list(methods))
        for m, e in methods.items():
            curves = [v.get("curve") for v in e["per_seed"].values() if v.get("curve")]
            if not curves:
                continue
            steps = sorted({p["step"] for c in curves for p in c})
            stats = [mean_ci([p["accuracy"] for c in curves for p in c if p["step"] == s]) for s in steps]
            ys = [100 * mu for mu, _ in stats]
            ax.plot(steps, ys, label=m, linewidth=1.3, markersize=4, **styles[m])
            lo = [100 * (mu - (0 if math.isnan(ci) else ci)) for mu, ci in stats]
            hi = [100 * (mu + (0 if math.isnan(ci) else ci)) for mu, ci in stats]
            ax.fill_between(steps, lo, hi, color=styles[m]["color"], alpha=0.12, linewidth=0)
        ax.axhline(100 * (res["tasks"][t]["base"] or 0), color="grey", linestyle=":", label="base")
        ax.set_title(f"{t} (mean over seeds, band: 95% CI)")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("held-out accuracy (%)")
        ax.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_step.png", dpi=110)
    plt.close(fig)

    for t in tasks:
        activity_curves, keys = {}, []
        for m, e in res["tasks"][t]["methods"].items():
            histories = [
                read_metrics(f)
                for s in e["per_seed"]
                if (f := out / t / _folder(m) / f"s{s}" / "metrics.jsonl").is_file()
            ]
            if histories and e.get("activity"):
                activity_curves[m] = mean_rows(histories)
                keys += activity_keys(e["activity"])
        if activity_curves:
            plot_activity(
                activity_curves,
                list(dict.fromkeys(keys)),
                out / f"mechanisms_{t}.png",
                title=f"{t}: mechanism activity over steps (mean over seeds)",
            )

    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, t in zip(axes[0], tasks, strict=False):
        names, data = [], []
        for m, e in res["tasks"][t]["methods"].items():
            vals = [x for v in e["per_seed"].values() for x in (v.get("jsd") or []) if not math.isnan(x)]
            if vals:
                names.append(m)
                data.append(vals)
        if data:
            ax.boxplot(data, showfliers=False)
            ax.set_xticks(range(1, len(names) + 1))
            ax.set_xticklabels(names, rotation=45, ha="right", fontsize="small")
        ax.set_title(t)
        ax.set_ylabel("per-sample JSD to the base model")
    fig.tight_layout()
    fig.savefig(out / "jsd_to_base.png", dpi=110)
    plt.close(fig)
