"""Every hook a UniSD plugin can implement. Each stub's docstring is its documentation.

A plugin is a module (or object) with functions named like these specs, marked with
``@unisd.hookimpl``. Built-in components are registered through the very same hooks, from the
``unisd`` entry-point group. Recipe components (EMA teacher, trackers…) may implement the runtime
hooks as methods: the engine registers them with the plugin manager for the length of a run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from unisd.components.context import RunContext
    from unisd.registries import Registries

PROJECT = "unisd"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def unisd_register(registry: Registries) -> None:
    """Add components to the registries.

    ``registry`` has one :class:`~unisd.registry.Registry` per extension point: ``teachers``,
    ``disagreements``, ``losses``, ``guards``, ``divergences``, ``objectives``, ``context_builders``,
    ``datasets``, ``evaluators``, ``generators``, ``recipes`` and ``experiments``. Register lazily (``"module:Class"``) so that
    heavy imports happen only when a recipe uses the component::

        @hookimpl
        def unisd_register(registry):
            registry.disagreements.add("entropy", "my_pkg.measure:EntropyDisagreement")
    """


@hookspec
def unisd_on_train_start(run: RunContext) -> None:
    """Called once after the model, data and components are set up, before the first step
    (also after a resume, once the checkpoint state is restored)."""


@hookspec
def unisd_on_step_end(run: RunContext, step: int, metrics: dict[str, float]) -> None:
    """Called after each optimizer step. ``step`` counts completed optimizer steps (1-based);
    ``metrics`` holds the step's logged values. An EMA teacher syncs here."""


@hookspec
def unisd_checkpoint_state(run: RunContext) -> dict[str, Any] | None:
    """Return ``{key: state}`` to save in a checkpoint (tensors, numbers, strings, lists, dicts).
    Keys must be unique across plugins; use the component or plugin name."""


@hookspec
def unisd_load_checkpoint_state(run: RunContext, state: dict[str, Any]) -> None:
    """Restore from ``state``, the merged dict that ``unisd_checkpoint_state`` returned when the
    checkpoint was written. Pick your own key; a missing key means an older checkpoint."""


@hookspec
def unisd_on_train_end(run: RunContext) -> None:
    """Called once after the last step, before the final model is written."""
