"""Kept for one release: the run context is :class:`unisd.components.context.RunContext` (``Run``
was its name inside the engine)."""

from unisd.components.context import RunContext as Run

__all__ = ["Run"]
