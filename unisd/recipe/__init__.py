"""Recipes: one validated document that assembles components into a run."""

from unisd.recipe.loading import RecipeError, apply_overrides, dump_recipe, load_raw, load_recipe, validate
from unisd.recipe.model import RecipeBase, recipe_json_schema, recipe_model

__all__ = [
    "RecipeBase",
    "RecipeError",
    "apply_overrides",
    "dump_recipe",
    "load_raw",
    "load_recipe",
    "recipe_json_schema",
    "recipe_model",
    "validate",
]
