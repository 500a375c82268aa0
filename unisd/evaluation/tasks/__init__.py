"""lm-eval-harness tasks of the six UniSD benchmarks (YAML files in this folder).

Generation tasks (student prompt, chat template, greedy): ``unisd_scienceqa``, ``unisd_gpqa``,
``unisd_mbpp``, ``unisd_humaneval``, ``unisd_cose``, ``unisd_toolalpaca`` (group ``unisd-six``);
log-likelihood variants of the MCQA tasks: ``unisd_scienceqa_mc``, ``unisd_gpqa_mc``,
``unisd_cose_mc`` (group ``unisd-mc``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

TASK_DIR = Path(__file__).resolve().parent

#: task name → benchmark (loader in :mod:`unisd.evaluation.tasks.sources`).
TASKS: dict[str, str] = {
    "unisd_scienceqa": "scienceqa", "unisd_gpqa": "gpqa", "unisd_mbpp": "mbpp",
    "unisd_humaneval": "humaneval", "unisd_cose": "cose", "unisd_toolalpaca": "toolalpaca",
    "unisd_scienceqa_mc": "scienceqa", "unisd_gpqa_mc": "gpqa", "unisd_cose_mc": "cose",
}
GROUPS: dict[str, tuple[str, ...]] = {
    "unisd-six": ("unisd_scienceqa", "unisd_gpqa", "unisd_mbpp", "unisd_humaneval", "unisd_cose", "unisd_toolalpaca"),
    "unisd-mc": ("unisd_scienceqa_mc", "unisd_gpqa_mc", "unisd_cose_mc"),
}
#: the headline metric of each task (used for tables and charts).
PRIMARY_METRIC: dict[str, str] = {
    **{t: "acc" for t in TASKS if t.endswith("_mc") or TASKS[t] in ("scienceqa", "gpqa", "cose")},
    "unisd_mbpp": "pass@1", "unisd_humaneval": "pass@1", "unisd_toolalpaca": "full_acc",
}


def resolve_tasks(spec: str | Iterable[str]) -> list[str]:
    """Expand a comma-separated list of tasks, groups and short names (``mbpp``) to task names."""
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    out: list[str] = []
    for item in items:
        key = item.replace("-", "_") if item not in GROUPS else item
        if item in GROUPS:
            names = list(GROUPS[item])
        elif key in TASKS:
            names = [key]
        elif f"unisd_{key}" in TASKS:
            names = [f"unisd_{key}"]
        else:
            known = ", ".join([*GROUPS, *TASKS])
            raise ValueError(f"unknown task or group {item!r} (known: {known})")
        out.extend(n for n in names if n not in out)
    return out


def describe_tasks() -> str:
    """A plain-text listing of the shipped tasks and groups."""
    lines = ["Groups:"]
    lines += [f"  {g}: {', '.join(ts)}" for g, ts in GROUPS.items()]
    lines.append("Tasks:")
    lines += [f"  {t}  (benchmark {b}, metric {PRIMARY_METRIC[t]})" for t, b in TASKS.items()]
    return "\n".join(lines)
