"""``unisd sweep``: train a grid of recipes × seeds × ``--grid`` values and tabulate the results.

Each run lands in ``<output-dir>/<label>/`` and is skipped when its ``summary.json`` already exists,
so an interrupted sweep is resumed by running the same command again.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unisd.errors import UserError
from unisd.files import hold_directory


@dataclass(frozen=True)
class Sweep:
    """What a sweep runs: every recipe × seed × combination of ``grid`` values (``KEY=V1,V2`` or
    ``KEY=[V1, V2]``), each with the fixed ``overrides`` and the shortcuts of ``build_recipe``."""

    recipes: list[str]
    seeds: list[int] = field(default_factory=lambda: [42])
    grid: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    model: str | None = None
    data: str | None = None
    max_steps: int | None = None


def parse_seeds(text: str) -> list[int]:
    """``--seeds 1,2,3`` → ``[1, 2, 3]``, with an error naming the value that is not an integer."""
    seeds = []
    for s in str(text).split(","):
        try:
            seeds += [int(s)] if s.strip() else []
        except ValueError:
            raise UserError(f"--seeds {text!r}: {s.strip()!r} is not an integer (e.g. --seeds 1,2,3)") from None
    if not seeds:
        raise UserError(f"--seeds {text!r}: no seed given (e.g. --seeds 1,2,3)")
    return seeds


def expand(sweep: Sweep) -> list[dict[str, Any]]:
    """The runs of the sweep: label, recipe, seed and the overrides of each."""
    axes = [[(key, v) for v in values] for key, values in (_grid_axis(g) for g in sweep.grid)]
    runs = []
    for recipe, seed, combo in itertools.product(
        sweep.recipes, sweep.seeds, itertools.product(*axes) if axes else [()]
    ):
        parts = [Path(recipe).stem, f"s{seed}"] + [f"{k.split('.')[-1]}={v}" for k, v in combo]
        runs.append(
            {
                "label": "-".join(parts).replace("/", "_").replace(" ", ""),
                "recipe": recipe,
                "seed": seed,
                "overrides": [*sweep.overrides, *(f"{k}={v}" for k, v in combo)],
                "grid": dict(combo),
                "grid_exprs": [f"{k}={v}" for k, v in combo],
            }
        )
    return runs


def _grid_axis(spec: str) -> tuple[str, list[str]]:
    """``KEY=V1,V2`` or ``KEY=[V1, V2]`` (a JSON/YAML list, whose values may be lists themselves) →
    the key and each value as the text of a ``--set`` value."""
    key, sep, values = spec.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise UserError(
            f"--grid {spec!r}: expected KEY=V1,V2 or KEY=[V1, V2] (e.g. components.agreement.gamma=0.001,0.01 "
            "or lora.target_modules='[[q_proj], [q_proj, v_proj]]')"
        )
    if not values.lstrip().startswith("["):
        return key.strip(), [v.strip() for v in values.split(",") if v.strip()]
    from unisd.recipe.loading import safe_yaml

    try:
        parsed = safe_yaml(values, "--grid")
    except Exception as exc:  # noqa: BLE001 - any parse problem is the user's input
        raise UserError(f"--grid {spec!r}: the values are not a valid list: {exc}") from None
    if not isinstance(parsed, list) or not parsed:
        raise UserError(f"--grid {spec!r}: expected a non-empty list of values")
    return key.strip(), [v if isinstance(v, str) else json.dumps(v) for v in parsed]


def run_sweep(sweep: Sweep, output_dir: str | Path, *, dry_run: bool = False) -> int:
    """Validate every run, then train those without a ``summary.json`` under ``output_dir`` and
    write ``sweep.md``/``sweep.json`` (``dry_run``: print the runs instead)."""
    from unisd.runs.launch import build_recipe, stored_recipe_differs
    from unisd.recipe import RecipeError
    from unisd.recipe import dump_recipe

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    runs = expand(sweep)
    out = Path(output_dir)
    recipes = []
    for r in runs:  # validate every run before training any
        try:
            recipes.append(
                build_recipe(
                    r["recipe"],
                    r["overrides"],
                    model=sweep.model,
                    data=sweep.data,
                    max_steps=sweep.max_steps,
                    seed=r["seed"],
                )
            )
        except RecipeError as exc:  # a grid value is the user's --grid, not a --set they typed
            msg = str(exc)
            for expr in r["grid_exprs"]:
                msg = msg.replace(f"--set {expr}", f"--grid value {expr}").replace(
                    f"{expr!r}", f"--grid value {expr!r}"
                )
            raise UserError(
                f"sweep run {r['label']}: {msg.replace('invalid recipe --set', 'invalid --grid/--set value')}"
            ) from None
    if dry_run:
        for r in runs:
            print(
                f"{r['label']}: --recipe {r['recipe']} --seed {r['seed']} "
                + " ".join(f"--set {o}" for o in r["overrides"])
            )
        return 0
    for r, recipe in zip(runs, recipes, strict=True):  # a finished run is reused only if it ran this very recipe
        run_dir = out / r["label"]
        if (run_dir / "summary.json").exists() and stored_recipe_differs(run_dir, dump_recipe(recipe)):
            raise UserError(
                f"sweep run {r['label']}: {run_dir} holds a finished run of another recipe (see "
                f"{run_dir / 'recipe.yaml'}); its result would be reused silently; use another --output-dir"
            )
    with hold_directory(out, "sweep"):
        return _sweep(runs, recipes, out)


def _sweep(runs: list[dict[str, Any]], recipes: list[Any], out: Path) -> int:
    from unisd.runs.launch import train

    rows = []
    for r, recipe in zip(runs, recipes, strict=True):
        run_dir = out / r["label"]
        summary_path = run_dir / "summary.json"
        if summary_path.exists():
            summary = json.loads(summary_path.read_text())
        else:
            summary = train(recipe, run_dir, resume="auto" if run_dir.exists() else None)
        rows.append({**r, "summary": summary, "run_dir": str(run_dir)})
    groups = heldout_gains(rows)
    table = comparison_table(rows) + ("\n" + gains_table(groups) if groups else "")
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.md").write_text(table)
    (out / "sweep.json").write_text(json.dumps({"runs": rows, "heldout_gains": groups}, indent=2, default=str))
    print(table)
    return 0


def _answers(run_dir: Path, when: str) -> dict[str, bool] | None:
    path = run_dir / f"heldout-{when}.json"
    if not path.is_file():
        return None
    return {a["id"]: bool(a["correct"]) for a in json.loads(path.read_text())["answers"] if a["correct"] is not None}


def heldout_gains(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per recipe and grid point, over its seeds: held-out accuracy before and after, the gain with a
    95% t-interval over seeds, and a paired bootstrap over items of the seed-averaged gain."""
    from unisd.runs.stats import mean_ci, paired_bootstrap

    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["summary"].get("heldout"):
            key = "-".join([Path(r["recipe"]).stem] + [f"{k.split('.')[-1]}={v}" for k, v in r["grid"].items()])
            groups.setdefault(key, []).append(r)
    out = []
    for key, members in groups.items():
        before = [m["summary"]["heldout"]["accuracy_before"] for m in members]
        after = [m["summary"]["heldout"]["accuracy_after"] for m in members]
        gain_mean, gain_half = mean_ci([a - b for a, b in zip(after, before, strict=True)])
        item_diff: dict[str, list[float]] = {}
        for m in members:
            b, a = _answers(Path(m["run_dir"]), "before"), _answers(Path(m["run_dir"]), "after")
            if a is None or b is None:
                continue
            for rid in a.keys() & b.keys():
                item_diff.setdefault(rid, []).append(float(a[rid]) - float(b[rid]))
        diffs = [sum(v) / len(v) for v in item_diff.values()]
        _, lo, hi = paired_bootstrap(diffs) if diffs else (None, None, None)
        out.append(
            {
                "group": key,
                "seeds": [m["seed"] for m in members],
                "n": members[0]["summary"]["heldout"]["n"],
                "split": members[0]["summary"]["heldout"].get("split"),
                "before": mean_ci(before)[0],
                "after": mean_ci(after)[0],
                "after_ci": mean_ci(after)[1],
                "gain": gain_mean,
                "gain_ci_seeds": gain_half,
                "gain_ci_items": [lo, hi],
            }
        )
    return out


def gains_table(groups: list[dict[str, Any]]) -> str:
    """Markdown: held-out accuracy before/after and the gain with its intervals, in points."""
    pts = lambda x: "–" if x is None or x != x else f"{100 * x:+.1f}"  # noqa: E731
    lines = [
        "| recipe | seeds | held-out n | before | after (mean ± 95% CI) | gain ± 95% CI (seeds, t) | gain 95% CI (items, paired bootstrap) |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in groups:
        lo, hi = g["gain_ci_items"]
        half = "" if g["after_ci"] != g["after_ci"] else f" ± {100 * g['after_ci']:.1f}"
        lines.append(
            f"| {g['group']} | {len(g['seeds'])} | {g['n']} ({g['split']}) | {100 * g['before']:.1f}% | "
            f"{100 * g['after']:.1f}%{half} | {pts(g['gain'])}"
            + ("" if g["gain_ci_seeds"] != g["gain_ci_seeds"] else f" ± {100 * g['gain_ci_seeds']:.1f}")
            + f" | [{pts(lo)}, {pts(hi)}] |"
        )
    return "\n".join(lines) + "\n"


def comparison_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of each run's first and last losses (and held-out metrics when present)."""
    keys = sorted({k for r in rows for k in r["summary"].get("last", {})})
    held = sorted({k for r in rows for k in r["summary"].get("heldout", {})})
    head = ["run", "steps", *(f"{k} first→last" for k in keys), *held]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        s = r["summary"]
        cells = [r["label"], str(s.get("steps"))]
        for k in keys:
            a, b = s.get("first", {}).get(k), s.get("last", {}).get(k)
            cells.append(f"{a:.4f} → {b:.4f}" if isinstance(a, float) and isinstance(b, float) else "")
        cells += [str(s.get("heldout", {}).get(k, "")) for k in held]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
