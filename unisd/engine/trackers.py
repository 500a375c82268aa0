"""Experiment trackers (W&B, MLflow, trackio, …) through accelerate: ``logging.report_to``.

Checked before any training (installed? able to log without a network login, or told to log
offline?), started with the run's recipe as their config, fed every logged step, ended with the run.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from unisd.errors import UserError


def check_trackers(names: list[str]) -> None:
    """Refuse, before training, a tracker that is not installed, or W&B with neither a login nor an
    offline mode."""
    for name in names:  # each tracker's module has its name
        if importlib.util.find_spec(name) is None:
            raise UserError(
                f"logging.report_to: {name!r} is not installed (pip install {name.replace('_', '-')}), "
                "or remove it from logging.report_to"
            )
    if "wandb" in names and os.environ.get("WANDB_MODE", "").lower() not in ("offline", "disabled", "dryrun"):
        import wandb

        if not (os.environ.get("WANDB_API_KEY") or wandb.api.api_key):
            raise UserError(
                "logging.report_to: wandb has no login here; run `wandb login`, set WANDB_API_KEY, "
                "or log offline with WANDB_MODE=offline (then `wandb sync` the run's wandb/ folder)"
            )


def start_trackers(accelerator: Any, recipe: Any, output_dir: Path) -> None:
    """``init_trackers`` with the recipe's fields as the config; W&B writes under the run directory."""
    from unisd.recipe.loading import flat_fields

    names = recipe.logging.report_to
    if not names:
        return
    init = {"wandb": {"dir": str(output_dir), "name": output_dir.name}} if "wandb" in names else {}
    accelerator.init_trackers(recipe.name, config=flat_fields(recipe.model_dump(mode="json")), init_kwargs=init)


def log_step(accelerator: Any, recipe: Any, step: int, values: dict[str, Any]) -> None:
    if recipe.logging.report_to:
        accelerator.log(
            {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}, step=step
        )


def end_trackers(accelerator: Any, recipe: Any) -> None:
    if recipe.logging.report_to:
        accelerator.end_training()
