"""EMA teacher: φ ← β·φ + (1−β)·θ every ``every`` optimizer steps, accumulated in fp32.

Under LoRA the teacher weight of each adapted layer is ``W₀ + E`` with ``E`` an fp32 EMA of the
merged adapter delta ``s·B·A`` (spec §2b intent; the reference's EMA is a no-op under LoRA). Under
full fine-tuning ``E`` is an fp32 EMA of every trainable parameter. Teacher forwards run the model
functionally with those weights (``torch.func.functional_call``): no second model copy, no
in-place edits of the student. ``mode: reference`` reproduces the authors' code, where the teacher
never moves (spec §7.1).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import ClassVar, Literal

import torch
from pydantic import Field

from unisd.components.base import ComponentConfig
from unisd.components.kinds import TeacherProvider
from unisd_plugins.teachers.providers import eval_mode


class EMAConfig(ComponentConfig):
    """EMA teacher (spec §2b)."""

    beta: float = Field(0.9, ge=0.0, lt=1.0, description="decay β (reference: 0.9 for ema, 0.98 in UniSD*)")
    every: int = Field(10, ge=1, description="sync every N optimizer steps (reference: 10)")
    mode: Literal["fixed", "reference"] = Field("fixed", description="'fixed': EMA of the merged student; 'reference': the authors' no-op under LoRA")


class EMATeacher(TeacherProvider):
    """A teacher that trails the student by an exponential moving average."""

    Config: ClassVar = EMAConfig

    def setup(self, run) -> None:
        if run.sharded:
            from unisd.errors import UserError

            raise UserError("the ema teacher keeps whole-weight EMA tensors next to the student, which FSDP2 shards; "
                            "use distributed.strategy=ddp for EMA recipes (or one process)")
        self.model = run.model
        self.syncs = 0
        self.lora = hasattr(self.model, "disable_adapter")
        self.ema: dict[str, torch.Tensor] = {}
        if self.config.mode == "reference":
            return
        if self.lora:
            for name, module in self._lora_layers():
                base = module.base_layer.weight
                self.ema[f"{name}.base_layer.weight"] = torch.zeros(base.shape, dtype=torch.float32, device=base.device)
        else:
            for name, p in self.model.named_parameters():
                if p.requires_grad:
                    self.ema[name] = p.detach().float().clone()

    def _lora_layers(self):
        for name, module in self.model.named_modules():
            if hasattr(module, "lora_A") and hasattr(module, "base_layer") and "default" in getattr(module, "lora_A", {}):
                if not isinstance(module.base_layer, torch.nn.Linear):
                    raise TypeError(f"EMA teacher supports LoRA on Linear layers; {name} wraps {type(module.base_layer).__name__}")
                yield name, module

    def lora_delta(self, module) -> torch.Tensor:
        """The merged adapter delta s·B·A of one LoRA layer, in fp32."""
        a = module.lora_A["default"].weight.float()
        b = module.lora_B["default"].weight.float()
        return module.scaling["default"] * (b @ a)

    @torch.no_grad()
    def sync(self) -> None:
        """One EMA update: E ← β·E + (1−β)·current."""
        beta = self.config.beta
        self.syncs += 1
        if self.config.mode == "reference":
            return
        if self.lora:
            for name, module in self._lora_layers():
                self.ema[f"{name}.base_layer.weight"].mul_(beta).add_(self.lora_delta(module), alpha=1 - beta)
        else:
            for name, p in self.model.named_parameters():
                if name in self.ema:
                    self.ema[name].mul_(beta).add_(p.detach().float(), alpha=1 - beta)

    def teacher_weights(self) -> dict[str, torch.Tensor]:
        """Parameter overrides for the teacher forward (name → tensor in the model's dtype)."""
        if self.config.mode == "reference":
            return {}
        params = dict(self.model.named_parameters())
        if self.lora:
            return {n: (params[n].float() + e).to(params[n].dtype) for n, e in self.ema.items()}
        return {n: e.to(params[n].dtype) for n, e in self.ema.items()}

    @contextmanager
    def teacher_forward(self):
        overrides = self.teacher_weights()
        model = self.model

        def forward(**kwargs):
            return torch.func.functional_call(model, overrides, args=(), kwargs=kwargs, strict=False)

        if self.lora:
            with eval_mode(model), model.disable_adapter():
                yield forward
        else:
            with eval_mode(model):
                yield forward

    # -- runtime hooks ---------------------------------------------------------------------------------------
    def unisd_on_step_end(self, run, step: int) -> None:
        if step % self.config.every == 0:
            self.sync()

    def unisd_checkpoint_state(self, run):
        return {"ema_teacher": {"syncs": self.syncs, "ema": {k: v.cpu() for k, v in self.ema.items()}}}

    def unisd_load_checkpoint_state(self, run, state) -> None:
        s = state.get("ema_teacher")
        if s is None:
            return
        self.syncs = int(s["syncs"])
        for k, v in s["ema"].items():
            if k not in self.ema:
                raise KeyError(f"EMA state has {k!r}, which this model does not have (recipe changed?)")
            self.ema[k].copy_(v)
