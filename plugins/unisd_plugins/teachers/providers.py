"""Teacher providers that need no state beyond the model.

Every teacher forward runs in eval mode (no LoRA dropout, spec §7.18) and is restored afterwards.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from collections.abc import Iterator

import torch

from unisd.components.kinds import TeacherProvider
from unisd.api import base_model


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen deep copy of the model's current weights (the base model under peft)."""
    base = base_model(model)
    if hasattr(model, "disable_adapter"):  # peft: copy the base module without adapters
        with model.disable_adapter():
            clone = copy.deepcopy(base)
        _strip_lora(clone)
    else:
        clone = copy.deepcopy(base)
    clone.requires_grad_(False)
    return clone.eval()


def _strip_lora(module: torch.nn.Module) -> None:
    """Replace peft LoRA layers in a copied model by their base layers."""
    for name, child in list(module.named_children()):
        base_layer = getattr(child, "base_layer", None)
        if base_layer is not None and hasattr(child, "lora_A"):
            setattr(module, name, base_layer)
        else:
            _strip_lora(child)


class BaseTeacher(TeacherProvider):
    """The initial weights. Under LoRA the adapter is disabled for the teacher forward, so no second
    copy of the model is held; under full fine-tuning a frozen copy is made at setup."""

    def setup(self, run) -> None:
        self.model = run.model
        self.copy = None if hasattr(run.model, "disable_adapter") else run.place_frozen(frozen_copy(run.model))

    @contextmanager
    def teacher_forward(self):
        if self.copy is not None:
            yield self.copy
            return
        with eval_mode(self.model), self.model.disable_adapter():
            yield self.model


class FrozenCopyTeacher(TeacherProvider):
    """A separate frozen copy of the initial model (as the reference loads the model twice)."""

    @classmethod
    def model_copies(cls, recipe) -> int:
        return 1

    def setup(self, run) -> None:
        self.copy = run.place_frozen(frozen_copy(run.model))

    @contextmanager
    def teacher_forward(self):
        yield self.copy


class LiveStudentTeacher(TeacherProvider):
    """The student's current weights (adapter on), evaluated without gradient."""

    @classmethod
    def model_copies(cls, recipe) -> int:
        return 0

    def setup(self, run) -> None:
        self.model = run.model

    @contextmanager
    def teacher_forward(self):
        with eval_mode(self.model):
            yield self.model
