"""Fault injection for the reliability suite: ``UNISD_FAULT_INJECT=point:step[,point:step…]``
makes the process SIGKILL itself when it reaches ``point`` during optimizer step ``step``
(1-based). Points: ``rollout`` (after sampling), ``backward`` (after a backward pass),
``checkpoint_write`` (payload written, manifest not yet). ``UNISD_FAULT_RANK=R`` limits it to the
process of rank ``R`` (torchrun's ``RANK``) in a multi-process run. Unset in normal use: one dict lookup."""

from __future__ import annotations

import os
import signal

POINTS = ("rollout", "backward", "checkpoint_write")


def _plan() -> set[tuple[str, int]]:
    spec = os.environ.get("UNISD_FAULT_INJECT", "")
    plan = set()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        point, _, step = part.partition(":")
        if point not in POINTS or not step.isdigit():
            raise ValueError(f"UNISD_FAULT_INJECT: {part!r} is not POINT:STEP with POINT in {POINTS}")
        plan.add((point, int(step)))
    return plan


def maybe_kill(point: str, step: int) -> None:
    """SIGKILL this process if the injection plan names (point, step)."""
    if "UNISD_FAULT_INJECT" in os.environ and (point, step) in _plan():
        rank = os.environ.get("UNISD_FAULT_RANK")
        if rank is None or rank == os.environ.get("RANK", "0"):
            os.kill(os.getpid(), signal.SIGKILL)
