"""``unisd sweep``: train a grid of recipes × seeds × ``--grid`` values and tabulate the results.

Each run lands in ``<output-dir>/<label>/`` and is skipped when its ``summary.json`` already exists,
so an interrupted sweep is resumed by running the same command again.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
from pathlib import Path
from typing import Any


from unisd.errors import UserError


def expand(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The runs of the sweep: label, recipe, seed and the overrides of each."""
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    axes = []
    for g in args.grid:
        key, sep, values = g.partition("=")
        if not sep or not values:
            raise UserError(f"--grid {g!r}: expected KEY=V1,V2 (e.g. components.agreement.gamma=0.001,0.01)")
        axes.append([(key, v) for v in values.split(",")])
    runs = []
    for recipe, seed, combo in itertools.product(recipes, seeds, itertools.product(*axes) if axes else [()]):
        parts = [Path(recipe).stem, f"s{seed}"] + [f"{k.split('.')[-1]}={v}" for k, v in combo]
        runs.append({"label": "-".join(parts), "recipe": recipe, "seed": seed,
                     "overrides": [*args.overrides, *(f"{k}={v}" for k, v in combo)], "grid": dict(combo)})
    return runs


def run_sweep(args: argparse.Namespace) -> int:
    from unisd.engine.launch import recipe_from_args, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    runs = expand(args)
    out = Path(args.output_dir)
    recipes = []
    for r in runs:  # validate every run before training any
        ns = argparse.Namespace(recipe=r["recipe"], overrides=r["overrides"], model=args.model, data=args.data,
                                max_steps=args.max_steps, seed=r["seed"], on_bad_record=None)
        recipes.append(recipe_from_args(ns))
    if args.dry_run:
        for r in runs:
            print(f"{r['label']}: --recipe {r['recipe']} --seed {r['seed']} " + " ".join(f"--set {o}" for o in r["overrides"]))
        return 0
    rows = []
    for r, recipe in zip(runs, recipes):
        run_dir = out / r["label"]
        summary_path = run_dir / "summary.json"
        if summary_path.exists():
            summary = json.loads(summary_path.read_text())
        else:
            summary = train(recipe, run_dir, resume="auto" if run_dir.exists() else None)
        rows.append({**r, "summary": summary})
    table = comparison_table(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.md").write_text(table)
    (out / "sweep.json").write_text(json.dumps(rows, indent=2, default=str))
    print(table)
    return 0


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
