"""EMA teacher: φ ← β·φ + (1−β)·θ every ``every`` optimizer steps, accumulated in fp32.

Under LoRA the teacher weight of each adapted layer is ``W₀ + E`` with ``E`` an fp32 EMA of the
merged adapter delta ``s·B·A`` (spec §2b intent; the reference's EMA is a no-op under LoRA). Under
full fine-tuning ``E`` is an fp32 EMA of every trainable parameter. Teacher forwards run the model
functionally with those weights (``torch.func.functional_call``): no second model copy, no
in-place edits of the student. ``mode: reference`` reproduces the authors' code, where the teacher
never moves (spec §7.1).

Under FSDP2 each process keeps ``E`` for its own rows of every weight (the shards FSDP2 gives it;
a LoRA delta's rows are this process's rows of ``B`` times the whole, small ``A``). A teacher
forward writes the teacher weights into the local shards, lets FSDP2 gather them, and copies the
saved shards back afterwards (exact, no rounding drift); the state is checkpointed as DTensors, so
DCP can reshard it to another number of processes.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import ClassVar

import torch

from unisd.components.kinds import TeacherProvider
from unisd.api import series
from unisd_plugins.teachers.providers import eval_mode
from unisd_plugins.ema.config import EMAConfig


class EMATeacher(TeacherProvider):
    """A teacher that trails the student by an exponential moving average."""

    Config: ClassVar = EMAConfig
    activity_metrics: ClassVar = ("syncs", "dist_base", "dist_student", "student_dist_base", "kl_base", "kl_student")
    cumulative_metrics: ClassVar = ("syncs",)

    def setup(self, run) -> None:
        self.model = run.model
        self.syncs = 0
        self.view = "ema"  # the weights teacher_forward runs: "ema", or "base"/"student" for a diagnostic
        self.lora = hasattr(self.model, "disable_adapter")
        self.ema: dict[str, torch.Tensor] = {}
        # the student is sharded after setup: the per-shard state is built at first use
        self.sharded = bool(getattr(run, "sharded", False))
        if self.config.mode == "reference" or self.sharded:
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
            if (
                hasattr(module, "lora_A")
                and hasattr(module, "base_layer")
                and "default" in getattr(module, "lora_A", {})
            ):
                if not isinstance(module.base_layer, torch.nn.Linear):
                    raise TypeError(
                        f"EMA teacher supports LoRA on Linear layers; {name} wraps {type(module.base_layer).__name__}"
                    )
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
        if self.sharded:
            for name, _weight, current in self._shard_targets():
                self.ema[name].mul_(beta).add_(current(), alpha=1 - beta)
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

    # -- FSDP2: per-shard state -----------------------------------------------------------------------
    def _shard_targets(self):
        """``(name, weight, current)`` per weight the EMA covers: ``weight`` the student's parameter
        (a DTensor), ``current()`` this process's rows of what the EMA follows, in fp32."""
        from unisd.api import local

        if self.lora:
            for name, module in self._lora_layers():
                a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
                whole_a = a.full_tensor() if hasattr(a, "full_tensor") else a  # collective: same order everywhere
                yield (
                    f"{name}.base_layer.weight",
                    module.base_layer.weight,
                    lambda b=b, whole_a=whole_a, s=module.scaling["default"]: s * (local(b).float() @ whole_a.float()),
                )
        else:
            for name, p in self.model.named_parameters():
                if p.requires_grad:
                    yield name, p, lambda p=p: local(p.detach()).float()

    def _ensure_shards(self) -> None:
        from unisd.api import local

        if self.ema or not self.sharded or self.config.mode == "reference":
            return
        with torch.no_grad():
            if self.lora:  # E starts at the delta of the initial adapter: zero (no need to gather A)
                for name, module in self._lora_layers():
                    self.ema[f"{name}.base_layer.weight"] = torch.zeros_like(
                        local(module.base_layer.weight), dtype=torch.float32
                    )
                return
            for name, _, current in self._shard_targets():  # full weights: a copy
                self.ema[name] = current().clone()

    @contextmanager
    def _teacher_shards(self):
        """The teacher weights written into this process's shards for one forward, then put back."""
        from torch.distributed.fsdp import FSDPModule

        from unisd.api import local

        self._ensure_shards()
        units = [m for m in self.model.modules() if isinstance(m, FSDPModule)]
        for unit in units:  # gathered copies made from the student's shards must not be reused
            unit.reshard()
        saved = []
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, e in self.ema.items():
                w = local(params[name].data)
                saved.append((w, w.clone()))
                w.copy_((w.float() + e).to(w.dtype) if self.lora else e.to(w.dtype))
        try:
            yield
        finally:
            for unit in units:
                unit.reshard()
            with torch.no_grad():
                for w, original in saved:
                    w.copy_(original)

    @contextmanager
    def teacher_forward(self):
        if self.view != "ema":  # a diagnostic's comparison: the base weights, or the live student
            with eval_mode(self.model), self.model.disable_adapter() if self.view == "base" else nullcontext():
                yield self.model
            return
        if self.sharded:
            with (
                self._teacher_shards(),
                eval_mode(self.model),
                self.model.disable_adapter() if self.lora else nullcontext(),
            ):
                yield self.model
            return
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

    # -- is it acting? --------------------------------------------------------------------------------------
    @torch.no_grad()
    def distances(self) -> dict[str, float]:
        """Frobenius distances over the weights the EMA covers (LoRA): of the EMA teacher from the base
        (‖E‖), from the student (‖E − Δ‖), and of the student from the base (‖Δ‖, for scale); under
        full fine-tuning only the distance from the student (no base copy is kept)."""
        if self.config.mode == "reference" or self.sharded or not self.ema:
            return {}
        if self.lora:
            base = student = own = 0.0
            for name, module in self._lora_layers():
                e, delta = self.ema[f"{name}.base_layer.weight"], self.lora_delta(module)
                base += float(e.pow(2).sum())
                student += float((e - delta).pow(2).sum())
                own += float(delta.pow(2).sum())
            return {"dist_base": base**0.5, "dist_student": student**0.5, "student_dist_base": own**0.5}
        params = dict(self.model.named_parameters())
        return {
            "dist_student": sum(float((e - params[n].detach().float()).pow(2).sum()) for n, e in self.ema.items())
            ** 0.5
        }

    @contextmanager
    def viewing(self, view: str):
        """Teacher forwards run the ``base`` weights or the live ``student`` inside this block."""
        self.view = view
        try:
            yield
        finally:
            self.view = "ema"

    def diagnose(self, batch) -> dict[str, float]:
        """KL(EMA teacher ‖ base) and KL(EMA teacher ‖ student), both shown the teacher prompt, per
        completion token of the batch (two extra teacher forwards)."""
        if self.config.mode == "reference" or self.sharded:
            return {}
        from unisd.api import block_logprobs

        def logprobs(scores):
            full = (
                scores.logprobs
                if scores.logprobs is not None
                else block_logprobs(scores.hidden, *scores.head, batch.temperature)
            )
            return full.detach().float()

        texts = batch.record_field("teacher_prompt")
        ema = logprobs(batch.teacher)  # the main teacher call's scores: full log-probs, or the head input in blocks
        mask = batch.completion_mask
        out = {}
        for view in ("base", "student") if self.lora else ("student",):
            with self.viewing(view):
                other = logprobs(batch.score_contexts(texts, temperature=batch.temperature, full_logprobs=True))
            kl = (ema.exp() * (ema - other)).sum(-1)
            out[f"kl_{view}"] = float((kl * mask).sum() / mask.sum().clamp(min=1))
        return out

    def inert_reason(self, history, steps):
        c = self.config
        if c.mode == "reference":
            return "mode: reference keeps the teacher at the base weights (the authors' no-op under LoRA, spec §7.1)"
        if steps < c.every:
            return f"EMA syncs every {c.every} steps, run has {steps}: the teacher was the base model throughout"
        moved = series(history, f"{self.name}/dist_base") or series(history, f"{self.name}/dist_student")
        if moved and max(moved) == 0:
            return "the EMA teacher never left the base weights (the student did not move)"
        return None

    # -- runtime hooks ---------------------------------------------------------------------------------------
    def unisd_on_step_end(self, run, step: int, metrics) -> None:
        if step % self.config.every == 0:
            self.sync()
        metrics.update({f"{self.name}/{k}": v for k, v in {"syncs": float(self.syncs), **self.distances()}.items()})

    def unisd_checkpoint_state(self, run):
        if self.sharded:  # this process's rows as DTensors (the trainer saves them with DCP)
            from torch.distributed.tensor import DTensor

            self._ensure_shards()
            params = dict(self.model.named_parameters())
            ema = {
                k: DTensor.from_local(
                    v,
                    params[k].device_mesh,
                    params[k].placements,
                    run_check=False,
                    shape=params[k].shape,
                    stride=params[k].stride(),
                )
                for k, v in self.ema.items()
            }
            return {"ema_teacher": {"syncs": self.syncs, "ema": ema}}
        return {"ema_teacher": {"syncs": self.syncs, "ema": {k: v.cpu() for k, v in self.ema.items()}}}

    def unisd_load_checkpoint_state(self, run, state) -> None:
        s = state.get("ema_teacher")
        if s is None:
            return
        from unisd.api import local

        self._ensure_shards()
        self.syncs = int(s["syncs"])
        for k, v in s["ema"].items():
            if k not in self.ema:
                raise KeyError(f"EMA state has {k!r}, which this model does not have (recipe changed?)")
            if local(v).data_ptr() != self.ema[k].data_ptr():  # DCP may have loaded in place already
                self.ema[k].copy_(local(v))
