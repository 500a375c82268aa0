"""The run context components and hooks see; defined at the bottom layer, in
:mod:`unisd.components.context` (``Run`` is its name inside the engine)."""

from unisd.components.context import RunContext as Run

__all__ = ["Run"]
