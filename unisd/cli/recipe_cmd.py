"""``unisd recipe``: validate, show, list and export the schema of recipes."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recipe", help="validate, show, list recipes; export the JSON Schema")
    rs = p.add_subparsers(dest="recipe_command", metavar="ACTION")

    v = rs.add_parser("validate", help="validate recipe files or shipped names; list every problem")
    v.add_argument("recipes", nargs="+", metavar="RECIPE", help="a .yaml/.json file or a shipped recipe name")
    v.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field, e.g. optim.lr=1e-5 (repeatable)",
    )
    v.set_defaults(func=run_validate)

    s = rs.add_parser("show", help="print a recipe fully resolved (extends, overrides, defaults)")
    s.add_argument("recipe", metavar="RECIPE")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--format", choices=("yaml", "json"), default="yaml")
    s.add_argument("--raw", action="store_true", help="print the file as shipped instead of resolved")
    s.set_defaults(func=run_show)

    ls = rs.add_parser("list", help="list shipped recipes")
    ls.set_defaults(func=run_list)

    sc = rs.add_parser("schema", help="print the recipe JSON Schema (includes plugin component configs)")
    sc.add_argument("--output", "-o", help="write to this file instead of stdout")
    sc.set_defaults(func=run_schema)
    p.set_defaults(func=lambda a: p.print_help() or 2)


def run_validate(args: argparse.Namespace) -> int:
    from unisd.recipe import RecipeError, load_recipe

    failed = 0
    for name in args.recipes:
        try:
            recipe = load_recipe(name, args.overrides)
            if recipe.evaluation.tasks:  # task names: registered ones, then lm-eval's (imports lm-eval)
                from unisd.evaluation.tasks import check_recipe_tasks

                check_recipe_tasks(recipe)
        except (RecipeError, ValueError) as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
            continue
        kinds = ", ".join(c.type for c in recipe.components) or "no components"
        print(f"ok: {name} ({recipe.name}: {recipe.objective.type}, divergence {recipe.divergence.type}; {kinds})")
    return 2 if failed else 0  # bad input, as every command (docs/reliability.md, exit codes)


def run_show(args: argparse.Namespace) -> int:
    from unisd.recipe import dump_recipe, load_recipe
    from unisd.recipe.loading import resolve_source

    if args.raw:
        print(resolve_source(args.recipe).read_text(encoding="utf-8"), end="")
        return 0
    recipe = load_recipe(args.recipe, args.overrides)
    print(dump_recipe(recipe, args.format), end="")
    derived = (
        f"derived: score temperature {recipe.score_temperature():g} (objective.score_temperature, else "
        "generation.temperature; 1.0 when generation is greedy)"
    )
    if args.format == "yaml":
        print(f"# {derived}")
    else:
        print(derived, file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from unisd.plugins import get_registries
    from unisd.recipe.loading import read_document

    recipes = get_registries().recipes
    for e in recipes.entries():
        data, _ = read_document(recipes.get(e.name))
        print(f"{e.name:<22} {data.get('description', '').strip().splitlines()[0] if data.get('description') else ''}")
    return 0


def run_schema(args: argparse.Namespace) -> int:
    from unisd.recipe import recipe_json_schema

    text = json.dumps(recipe_json_schema(), indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    return 0
