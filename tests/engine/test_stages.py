"""The engine's micro-step is what the ``Stages`` protocol promises objectives, method by method."""

from __future__ import annotations

import inspect

from unisd.components.stages import Stages
from unisd.engine.step import MicroStep


def _methods(cls) -> dict[str, inspect.Signature]:
    return {
        n: inspect.signature(getattr(cls, n))
        for n in vars(cls)
        if inspect.isfunction(getattr(cls, n)) and not n.startswith("_")
    }


def test_the_micro_step_has_every_stage_with_its_signature():
    for name, promised in _methods(Stages).items():
        offered = getattr(MicroStep, name, None)
        assert offered is not None, f"MicroStep has no {name}()"
        got = inspect.signature(offered)
        assert [(p.name, p.kind, p.default) for p in got.parameters.values()] == [
            (p.name, p.kind, p.default) for p in promised.parameters.values()
        ], name


def test_the_micro_step_sets_every_promised_attribute():
    source = inspect.getsource(MicroStep.__init__)
    for name in Stages.__annotations__:
        assert f"self.{name} " in source or f"self.{name}," in source, f"MicroStep.__init__ does not set {name}"
