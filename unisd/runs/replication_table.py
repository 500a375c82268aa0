"""The numbers of a replication, from its run directories (:func:`collect`), and its Markdown
table (:func:`table_markdown`): accuracy with 95% CIs, paired differences vs the base model and the
best baseline, retention, forgetting, cost and mechanism activity."""

from __future__ import annotations

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


from unisd.runs.forgetting import paired_change
from unisd.runs.stats import mean_ci
from unisd.runs.experiment import BASE, Experiment, _folder, _name


def _pct_pairs(a: list[float], b: list[float], better) -> float:
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if not (math.isnan(x) or math.isnan(y))]
    return sum(better(x, y) for x, y in pairs) / len(pairs) if pairs else math.nan


def collect(exp: Experiment, out: Path) -> dict[str, Any]:
    """Every number of the table from the run directories."""
    from unisd.runs.activity import merge_runs
    from unisd.runs.inspection import heldout_curve, mechanism_report, step_seconds

    res: dict[str, Any] = {"experiment": exp.name, "seeds": exp.seeds, "tasks": {}}
    base_file = out / "base-forgetting.json"
    base_probes = json.loads(base_file.read_text()) if exp.forgetting and base_file.is_file() else {}
    if base_probes:
        res["forgetting_base"] = {p.name: base_probes[p.name]["accuracy"] for p in exp.forgetting}
    for task in exp.tasks:
        t: dict[str, Any] = {"methods": {}}
        before_any = None
        labels = [label for label, _, _ in exp.task_variants(task)]
        for method in labels:
            if method == BASE:
                continue
            per_seed = {}
            for seed in exp.seeds:
                run_dir = out / task.name / _folder(method) / f"s{seed}"
                summary = json.loads((run_dir / "summary.json").read_text())
                h = summary["heldout"]
                ret = json.loads((run_dir / "retention.json").read_text())
                per_seed[seed] = {
                    "before": h["accuracy_before"],
                    "after": h["accuracy_after"],
                    "n": h["n"],
                    "curve": heldout_curve(run_dir),
                    "jsd": ret["jsd"],
                    "base_logp": ret["base_logp_of_model_completion"],
                    "step_s": step_seconds(run_dir),
                    "activity": mechanism_report(run_dir),
                }  # recomputed: as today's code summarises
                before_any = h["accuracy_before"] if before_any is None else before_any
            t["methods"][method] = {
                "per_seed": per_seed,
                "activity": merge_runs([v["activity"] for v in per_seed.values()]),
            }
            if base_probes:
                runs = [
                    json.loads((out / task.name / _folder(method) / f"s{s}" / "forgetting.json").read_text())
                    for s in exp.seeds
                ]
                t["methods"][method]["forgetting"] = {
                    p.name: paired_change(base_probes[p.name], [r[p.name] for r in runs]) for p in exp.forgetting
                }
        t["base"] = before_any
        base_file = out / task.name / "base" / "heldout.json"
        if base_file.is_file():  # the fixed held-out items every run of the task is scored on
            t["heldout_ids"] = json.loads(base_file.read_text())["key"]["ids"]
        if BASE in labels:
            t["methods"][BASE] = {"per_seed": {s: {"before": before_any, "after": before_any} for s in exp.seeds}}
            t["methods"] = {m: t["methods"][m] for m in labels}  # the experiment's order: base where listed
        for m in t["methods"].values():
            after = [v["after"] for v in m["per_seed"].values()]
            m["mean"], m["ci"] = mean_ci(after)
            m["vs_base"] = dict(zip(("mean", "ci"), mean_ci([a - before_any for a in after]), strict=True))
            secs = [v["step_s"] for v in m["per_seed"].values() if not math.isnan(v.get("step_s", math.nan))]
            m["step_s"] = sum(secs) / len(secs) if secs else None
        # a gridded baseline competes with each of its variants
        present = [
            label
            for label, method, _ in exp.task_variants(task)
            if (method in exp.baselines or _name(method) in exp.baselines) and label in t["methods"]
        ]
        best = max(present, key=lambda b: t["methods"][b]["mean"]) if present else None
        t["best_baseline"] = best
        ref = exp.retention.reference if exp.retention.reference in t["methods"] else None
        for name, m in t["methods"].items():
            if best is not None:
                diffs = [m["per_seed"][s]["after"] - t["methods"][best]["per_seed"][s]["after"] for s in exp.seeds]
                m["vs_best_baseline"] = dict(zip(("mean", "ci"), mean_ci(diffs), strict=True))
            if ref is not None and name not in (ref, BASE):
                jl = [
                    _pct_pairs(m["per_seed"][s]["jsd"], t["methods"][ref]["per_seed"][s]["jsd"], lambda x, y: x < y)
                    for s in exp.seeds
                ]
                bl = [
                    _pct_pairs(
                        m["per_seed"][s]["base_logp"], t["methods"][ref]["per_seed"][s]["base_logp"], lambda x, y: x > y
                    )
                    for s in exp.seeds
                ]
                m["retention_vs_reference"] = {
                    "reference": ref,
                    "jsd_lower": mean_ci(jl)[0],
                    "base_logp_higher": mean_ci(bl)[0],
                }
        res["tasks"][task.name] = t
    return res


def _cell(mean: float | None, ci: float | None, signed: bool = False) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    v = f"{100 * mean:+.1f}" if signed else f"{100 * mean:.1f}"
    return v if ci is None or math.isnan(ci) else f"{v} ± {100 * ci:.1f}"


def _change_cell(c: dict[str, Any]) -> str:
    """``41.0 → 39.5: -1.5 ± 2.0 [-4.1, +1.0]`` for a :func:`paired_change`."""
    if not c.get("n"):
        return "–"
    lo, hi = c["bootstrap"]
    return (
        f"{100 * c['before']:.1f} → {100 * c['after']:.1f}: {_cell(c['change'], c['change_ci'], True)} "
        f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"
    )


def table_markdown(exp: Experiment, res: dict[str, Any]) -> str:
    """The paper-shaped table plus the paired-difference, retention and mechanism-activity tables."""
    from unisd.runs.activity import merged_cells

    tasks = list(res["tasks"])
    lines = [
        f"# {exp.name}",
        "",
        f"Seeds {exp.seeds}; accuracy (%) on each task's held-out split, mean ± 95% CI (Student t over seeds).",
        "",
        "| method | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    methods = list(dict.fromkeys(m for t in res["tasks"].values() for m in t["methods"]))
    for m in methods:
        cells = [
            _cell(res["tasks"][t]["methods"][m]["mean"], res["tasks"][t]["methods"][m]["ci"])
            if m in res["tasks"][t]["methods"]
            else "–"
            for t in tasks
        ]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Paired differences in points (same seed), mean ± 95% CI: vs the base model | vs the best baseline "
        "(" + ", ".join(f"{t}: {res['tasks'][t]['best_baseline']}" for t in tasks) + ").",
        "",
        "| method | " + " | ".join(f"{t} vs base | {t} vs best baseline" for t in tasks) + " |",
        "|---|" + "---|---|" * len(tasks),
    ]
    for m in methods:
        cells = []
        for t in tasks:
            e = res["tasks"][t]["methods"].get(m, {})
            vb, vbb = e.get("vs_base", {}), e.get("vs_best_baseline", {})
            cells += [_cell(vb.get("mean"), vb.get("ci"), True), _cell(vbb.get("mean"), vbb.get("ci"), True)]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    ref = exp.retention.reference
    lines += (
        []
        if ref is None
        else [
            "",
            f"Retention against `{ref}` (per sample, same seed, mean over seeds): share of held-out samples whose "
            f"JSD to the base model is lower than {ref}'s (paper: 70.3%) | share where the base model gives the "
            f"method's completion a higher log-probability than {ref}'s (paper: 60.6%).",
            "",
            "| method | " + " | ".join(f"{t} JSD lower | {t} base log-p higher" for t in tasks) + " |",
            "|---|" + "---|---|" * len(tasks),
        ]
    )
    for m in methods:
        cells = []
        for t in tasks:
            r = res["tasks"][t]["methods"].get(m, {}).get("retention_vs_reference")
            cells += ["–", "–"] if not r else [_cell(r["jsd_lower"], None), _cell(r["base_logp_higher"], None)]
        if any(c != "–" for c in cells):
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if res.get("forgetting_base"):
        probes = list(res["forgetting_base"])
        lines += [
            "",
            "Forgetting: accuracy (%) on capabilities no task trains, the base model → after training (mean over "
            "seeds), and the change in points ± 95% CI over seeds [paired bootstrap over items]; beside it the "
            "method's gain on the task it trained on.",
            "",
            "| task | method | gain on the task | " + " | ".join(probes) + " |",
            "|---|---|---|" + "---|" * len(probes),
        ]
        for t in tasks:
            for m in methods:
                e = res["tasks"][t]["methods"].get(m, {})
                if "forgetting" not in e:
                    continue
                gain = _cell(e["vs_base"]["mean"], e["vs_base"]["ci"], True)
                lines.append(
                    f"| {t} | {m} | {gain} | " + " | ".join(_change_cell(e["forgetting"][p]) for p in probes) + " |"
                )
    lines += [
        "",
        "Cost: seconds per optimizer step (median over a run's steps without diagnostics, mean over seeds; runs "
        "that shared the machine, side by side) and its ratio to the fastest method of the task.",
        "",
        "| method | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    for m in methods:
        cells = []
        for t in tasks:
            sec = res["tasks"][t]["methods"].get(m, {}).get("step_s")
            fastest = min(
                (v["step_s"] for v in res["tasks"][t]["methods"].values() if v.get("step_s") is not None), default=None
            )
            cells.append("–" if sec is None or math.isnan(sec) else f"{sec:.1f} s ({sec / fastest:.2f}×)")
        if any(c != "–" for c in cells):
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Mechanism activity: each component's activity metrics (mean over seeds of each run's mean over its logged "
        "steps), its term's share of the gradient norm, and in how many seeds it was active, weak or inert (with "
        "the reason). `mechanisms_<task>.png` shows them over steps.",
        "",
        "| task | method | component | metrics | grad share | status |",
        "|---|---|---|---|---|---|",
    ]
    for t in tasks:
        for m in methods:
            for a in res["tasks"][t]["methods"].get(m, {}).get("activity", []):
                lines.append(f"| {t} | {m} | {a['name']} ({a['type']}) | " + " | ".join(merged_cells(a)) + " |")
    return "\n".join(lines) + "\n"
