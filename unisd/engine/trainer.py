"""The training loop: set up the run, then step, log, checkpoint and resume exactly.

Exactness: every micro-batch reseeds torch/python RNGs from (seed, step, global micro-batch index),
so sampling and dropout do not depend on process count or on where a run was interrupted. A run
with ``W`` processes and ``grad_accum = g`` computes the same update as one process with
``grad_accum = W·g``.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
import random
import signal
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

import torch

from unisd.engine import checkpoint as ckpt
from unisd.engine import sharding
from unisd.engine.sharding import strategy_of
from unisd.engine.aggregation import StepMetrics
from unisd.engine.faults import maybe_kill
from unisd.engine.data import Schedule, filter_long_prompts, load_records
from unisd.engine.metrics import MetricsLog
from unisd.engine.modeling import build_optimizer, build_student
from unisd.models.wrapping import trainable_parameters, unwrap
from unisd.components.context import RunContext
from unisd.engine.step import MicroStep, gradient_shares
from unisd.engine.trackers import check_trackers, end_trackers, log_step, start_trackers
from unisd.errors import UserError
from unisd.recipe.loading import flat_fields

log = logging.getLogger("unisd.train")


class TrainingStopped(RuntimeError):
    """Training stopped early (too many consecutive non-finite steps); a checkpoint was written."""


def micro_seed(seed: int, step: int, micro: int) -> int:
    return (seed * 1_000_003 + step * 10_007 + micro * 101) % (2**63 - 1)


class Trainer:
    """Builds a run from a validated recipe and trains it.

    >>> Trainer(recipe, Path("runs/demo")).train()   # doctest: +SKIP
    """

    def __init__(
        self,
        recipe,
        output_dir: Path,
        *,
        host=None,
        resume: str | None = None,
        model=None,
        tokenizer=None,
        allow_recipe_change: bool = False,
    ) -> None:
        from accelerate import Accelerator

        from unisd.plugins import get_host

        self.recipe = recipe
        self.output_dir = Path(output_dir)
        self.host = host or get_host()
        self.resume = resume
        self.allow_recipe_change = allow_recipe_change
        check_trackers(recipe.logging.report_to)  # before anything loads: a missing tracker stops the run at once
        self.accelerator = Accelerator(
            mixed_precision=recipe.precision.mixed_precision,
            log_with=recipe.logging.report_to or None,
            project_dir=str(self.output_dir),
        )
        self._given = (model, tokenizer)
        self._stop_signal: int | None = None
        self._registered: list[str] = []

    def close(self) -> None:
        """Unregister this run's components from the plugin manager (their hooks end with the run)."""
        for name in self._registered:
            if self.host.pm.has_plugin(name):
                self.host.pm.unregister(name=name)
        self._registered.clear()

    # -- setup -----------------------------------------------------------------------------------------
    def setup(self) -> RunContext:
        """Build the run, in named steps: the tokenizer, the records, the student (each loaded once),
        the run context, the components, the optimizer, the rollout backend and the micro-step."""
        recipe, acc = self.recipe, self.accelerator
        self.strategy = strategy_of(recipe, acc)
        self.sharded = self.strategy == "fsdp2" and acc.num_processes > 1
        torch.manual_seed(recipe.training.seed)
        random.seed(recipe.training.seed)
        model, tok = self._given
        path = None if model is not None else self._model_path()
        tok = self._tokenizer(tok, path)
        reg = self.host.registries
        adapter, records, pool, longest = self._records(tok)
        self._check_memory(model, longest + recipe.generation.max_new_tokens, path)
        model = self._student(model, tok, path)
        self.divergence = reg.divergences.get(recipe.divergence.type)(recipe.divergence)
        run = RunContext(
            recipe=recipe,
            model=model,
            tokenizer=tok,
            device=acc.device,
            output_dir=self.output_dir,
            registries=reg,
            divergence=self.divergence,
            dataset_adapter=adapter,
            records=records,
            record_pool=pool,
            is_main_process=acc.is_main_process,
            sharded=self.sharded,
            shard_frozen=self._shard if self.sharded else None,
            register=self._register,
        )
        adapter.setup(run)
        self._register(adapter)

        # components, in recipe order; a default teacher when none is listed
        comps = [self._component(c) for c in recipe.components]
        teachers = [c for c in comps if c.kind == "teacher"]
        teacher = teachers[0] if teachers else self._default_teacher()
        run.components = comps
        objective = reg.objectives.get(recipe.objective.type)(recipe.objective)
        for c in [teacher, *[c for c in comps if c is not teacher], objective]:
            c.setup(run)
            self._register(c)
        # components add teacher prompts at setup (auxiliary contexts, negatives): filter those slots too
        slots = sorted({f for c in comps for f in c.requirements().prompt_fields})
        if slots:
            run.records, dropped, _ = filter_long_prompts(
                run.records, tok, recipe.data.max_prompt_length, ("prompt", "teacher_prompt", *slots)
            )
            self.dropped_long_prompts.update({k: self.dropped_long_prompts.get(k, 0) + v for k, v in dropped.items()})
        self._check_record_fields(run, comps)

        self.schedule = Schedule(
            len(run.records),
            recipe.training.batch_size,
            recipe.training.grad_accum,
            acc.num_processes,
            recipe.training.epochs,
            recipe.training.seed,
            shuffle=recipe.data.shuffle,
            max_steps=recipe.training.max_steps,
        )
        extra = [p for c in comps for p in (c.trainable_parameters() if hasattr(c, "trainable_parameters") else [])]
        if extra and self.strategy == "fsdp2":
            owners = sorted({c.name for c in comps if hasattr(c, "trainable_parameters") and c.trainable_parameters()})
            raise UserError(
                f"distributed.strategy=fsdp2: components {owners} train parameters of their own (outside the "
                "model), which sharded checkpoints do not hold yet; use distributed.strategy=ddp"
            )
        if self.sharded:  # in place; the optimizer must see the sharded parameters
            self._shard(model)
        optimizer, scheduler = build_optimizer(model, recipe, self.schedule.total_steps, extra)
        if self.sharded:  # FSDP2 reduces gradients itself; accelerate's DDP wrapper must not
            self.ddp_model, self.optimizer = model, optimizer
        else:
            # the scheduler is stepped by us once per optimizer step: accelerate's wrapper would step it
            # once per process (it assumes per-process dataloaders shorten the epoch)
            self.ddp_model, self.optimizer = acc.prepare(model, optimizer)
        self.scheduler = scheduler
        generator = reg.generators.get(recipe.generation.backend.type)(recipe.generation.backend)
        generator.setup(run)
        self._register(generator)
        self.micro = MicroStep(run, self.ddp_model, teacher, generator, objective)
        if acc.is_main_process:
            log.info("loss: %s", self.micro.describe_loss())
        self.teacher = teacher
        self.run = run
        self.metrics = MetricsLog(self.output_dir, recipe.logging.tensorboard, enabled=acc.is_main_process)
        return run

    def _model_path(self) -> str:
        """The recipe's model, resolved once (a local folder, the hub cache, or the embedded model)."""
        from unisd.models.loading import resolve_model_path

        m = self.recipe.model
        return resolve_model_path(m.name_or_path, m.revision, m.gguf_file)

    def _tokenizer(self, tok, path: str | None):
        """The given tokenizer, or the model's; left padding, with a pad token."""
        if tok is None:
            from unisd.models.loading import load_tokenizer

            tok = load_tokenizer(self.recipe.model, path)
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"
        return tok

    def _records(self, tok) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]], int]:
        """The dataset adapter; the records the run visits (too-long prompts dropped, shuffled, cut to
        ``data.max_samples`` and to what ``training.max_steps`` reaches); every usable record (the
        pool auxiliary contexts draw donors from); the longest kept prompt in tokens."""
        recipe, acc = self.recipe, self.accelerator
        adapter, records = load_records(recipe, self.host.registries, self.output_dir / "rejects.jsonl")
        loaded = len(records)
        records, dropped, longest = filter_long_prompts(records, tok, recipe.data.max_prompt_length)
        if not records:
            raise UserError(
                f"every record exceeds data.max_prompt_length={recipe.data.max_prompt_length} tokens (dropped by "
                f"field: {dropped}); raise data.max_prompt_length or shorten the prompts"
            )
        self.records_loaded, self.dropped_long_prompts = loaded, dropped
        if recipe.data.shuffle:
            random.Random(recipe.training.seed).shuffle(records)
        if recipe.data.max_samples:
            records = records[: recipe.data.max_samples]
        pool = list(records)
        per_step = recipe.training.batch_size * recipe.training.grad_accum * acc.num_processes
        if recipe.training.max_steps and recipe.training.max_steps * per_step < len(records):
            records = records[: recipe.training.max_steps * per_step]  # only what the run will visit
        return adapter, records, pool, longest

    def _student(self, model, tok, path: str | None) -> torch.nn.Module:
        """The given model, or the recipe's (loaded once, with the tokenizer already loaded), made the
        student (LoRA or full fine-tuning) on the run's device."""
        if model is None:
            from unisd.models.loading import load_model_and_tokenizer

            model, _ = load_model_and_tokenizer(self.recipe.model, path=path, tokenizer=tok)
        return build_student(model, self.recipe).to(self.accelerator.device)

    def _shard(self, module: torch.nn.Module) -> torch.nn.Module:
        d = self.recipe.distributed
        return sharding.shard(
            module, reshard_after_forward=d.reshard_after_forward, mixed_precision=self.recipe.precision.mixed_precision
        )

    def _check_memory(self, model, seq_len: int, path: str | None = None) -> None:
        """Estimate from the model config (before loading weights) whether a micro-batch of the
        longest prompts plus a full completion fits in this process's share (sharded weights under
        FSDP2, minus what the generation backend reserves); a clear error if not."""
        from unisd.models.memory import check_fits

        recipe, acc = self.recipe, self.accelerator
        teacher_copies = self._teacher_class().model_copies(recipe)
        backend = recipe.generation.backend
        resolved = (
            {"name_or_path": path, "gguf_file": None} if path else {}
        )  # the folder already resolved: no second lookup
        sized = model if model is not None else recipe.model.model_copy(update=resolved)
        check_fits(
            sized,
            recipe.training.batch_size,
            seq_len,
            recipe.lora,
            device=acc.device,
            gradient_checkpointing=recipe.training.gradient_checkpointing,
            teacher_copies=teacher_copies,
            shards=acc.num_processes if self.sharded else 1,
            rollout_rows=self._rollout_rows(),
            reserved=backend.reserved_memory(acc.device),
            reserved_by=f"generation.backend={backend.type}",
        )

    def _rollout_rows(self) -> int:
        """Rows one generation call decodes when ``generation.rollout_per_step`` joins a step's
        micro-batches (0 otherwise: a micro-batch's rows, counted with its training pass)."""
        gen, training = self.recipe.generation, self.recipe.training
        if not gen.rollout_per_step or training.grad_accum == 1:
            return 0
        rows = training.batch_size * gen.num_generations * training.grad_accum
        return min(rows, gen.max_batch_rows or rows)

    def _teacher_class(self):
        """The class of the recipe's teacher provider, or of the registry's default one."""
        reg = self.host.registries.teachers
        listed = [c.type for c in self.recipe.components if c.type in reg]
        name = listed[0] if listed else reg.default
        if name is None:
            raise UserError(
                "the recipe lists no teacher provider and no plugin registers a default one "
                "(registry.teachers.add(..., default=True))"
            )
        return reg.get(name)

    def _default_teacher(self):
        cls = self._teacher_class()
        return cls(cls.Config(type=self.host.registries.teachers.default))

    def _register(self, component) -> None:
        """Register ``component`` with the plugin manager for the length of the run (its ``unisd_*``
        methods become hook implementations)."""
        name = self.host.pm.register(component, name=f"{component.kind}:{component.name}:{id(component)}")
        if name is not None:  # None: pluggy blocks that name (nothing to unregister)
            self._registered.append(name)

    def _component(self, cfg):
        return self.host.registries.component_class(cfg.type)(cfg)

    def _check_record_fields(self, run: RunContext, comps) -> None:
        for c in comps:
            for f in c.requirements().record_fields:
                missing = [r.get("id", i) for i, r in enumerate(run.records) if r.get(f) in (None, "", [])]
                if missing:
                    raise ValueError(
                        f"component {c.name!r} needs record field {f!r}, missing in {len(missing)} "
                        f"records (first: {missing[:3]})"
                    )

    def gathered_student(self) -> torch.nn.Module | None:
        """The trained student as one plain module on the main process (``None`` elsewhere).

        Under FSDP2 the trained weights are gathered whole (collective: every process calls this)
        into a fresh copy of the initial model on the main process; otherwise the live student."""
        model = unwrap(self.ddp_model)
        if not self.sharded:
            return model if self.accelerator.is_main_process else None
        trained = sharding.full_trainable_state(model)
        if not self.accelerator.is_main_process:
            return None
        from unisd.models.loading import load_model_and_tokenizer

        plain = build_student(load_model_and_tokenizer(self.recipe.model)[0], self.recipe)
        expected = set(trainable_parameters(plain))
        if expected != set(trained):
            raise RuntimeError(
                f"gathered weights do not match the rebuilt student: {sorted(expected ^ set(trained))[:5]}"
            )
        plain.load_state_dict(trained, strict=False)
        return plain.to(self.accelerator.device)

    # -- checkpoints -------------------------------------------------------------------------------------
    @property
    def checkpoint_root(self) -> Path:
        return self.output_dir / "checkpoints"

    def save(self, step: int) -> Path | None:
        acc = self.accelerator
        acc.wait_for_everyone()
        meta = {
            "step": step,
            "total_steps": self.schedule.total_steps,
            "recipe": self.recipe.name,
            "recipe_fields": recipe_fields(self.recipe),
            "processes": acc.num_processes,
            "records": len(self.run.records),
            "bad_steps": self._bad_steps,
        }
        components = _merge_states(self.host.checkpoint_state(self.run))
        if self.strategy == "fsdp2":  # component state may be sharded too (DTensors): it goes through DCP

            def write_shards(tmp: Path) -> None:
                sharding.save_state(tmp / ckpt.SHARDED_STATE, self.ddp_model, self.optimizer, components)
                ckpt.write_torch(tmp / f"rng-rank{acc.process_index}.pt", ckpt.rng_state())
                maybe_kill("checkpoint_write", step)

            shared = {"scheduler": self.scheduler.state_dict()}
            path = ckpt.save_sharded_checkpoint(
                self.checkpoint_root,
                step,
                shared,
                meta,
                self.recipe.checkpoint.keep_last,
                write_shards,
                main=acc.is_main_process,
                barrier=acc.wait_for_everyone,
            )
        elif acc.is_main_process:
            model = unwrap(self.ddp_model)
            payload = {
                "trainable": {n: p.detach().cpu() for n, p in trainable_parameters(model).items()},
                "optimizer": self.optimizer.state_dict(),
                "rng": ckpt.rng_state(),
                "scheduler": self.scheduler.state_dict(),
                "components": components,
            }
            path = ckpt.save_checkpoint(self.checkpoint_root, step, payload, meta, self.recipe.checkpoint.keep_last)
        else:
            return None
        if acc.is_main_process:
            log.info("checkpoint written: %s", path)
        return path

    #: trainable weights beyond this magnitude count as exploded (LoRA and fp32 weights sit far below it)
    MAX_WEIGHT = 1e6

    def _check_weights(self, step: int) -> None:
        """After an update: stop before anything is sampled or saved when a trainable weight is
        non-finite or exploded (the optimizer state is spoiled too, so the step cannot be undone).
        Every process checks its own shards; all stop together."""
        model = unwrap(self.ddp_model)
        bad = ""
        for name, p in trainable_parameters(model).items():
            w = sharding.local(p.detach())
            if w.numel() and (not bool(torch.isfinite(w).all()) or float(w.abs().max()) > self.MAX_WEIGHT):
                bad = name
                break
        if self.sharded:  # each process saw only its shards (DDP processes hold the same weights)
            flag = self.accelerator.reduce(
                torch.tensor([float(bool(bad))], device=self.accelerator.device), reduction="sum"
            )
            bad = bad or ("a sharded weight on another process" if float(flag) > 0 else "")
        if bad:
            last = ckpt.latest_complete(self.checkpoint_root)
            where = f"the last good state is {last}" if last else "no checkpoint was written yet"
            raise TrainingStopped(
                f"step {step + 1} left trainable weight {bad} non-finite or above {self.MAX_WEIGHT:g} in magnitude "
                f"(optim.lr={self.recipe.optim.lr:g}: too high?); stopped before sampling or saving; {where}"
            )

    def restore(self) -> int:
        """Restore from ``self.resume`` ('auto' or a path); return the step to continue from."""
        if not self.resume:
            return 0
        path = ckpt.latest_complete(self.checkpoint_root) if self.resume == "auto" else Path(self.resume)
        if path is None:
            log.info("no complete checkpoint in %s: starting from scratch", self.checkpoint_root)
            self.metrics.truncate_after(0)  # the earlier attempt's rows would repeat
            return 0
        payload, meta = ckpt.load_checkpoint(path)
        changed = changed_fields(
            _per_step_fields(meta, self.accelerator.num_processes),
            recipe_fields(self.recipe, self.accelerator.num_processes),
        )
        if changed and not self.allow_recipe_change:
            shown = "; ".join(f"{k}: {a!r} → {b!r}" for k, a, b in changed[:8]) + (" …" if len(changed) > 8 else "")
            raise ckpt.CheckpointError(
                f"{path} was written by another recipe ({shown}); resume with the same recipe, or "
                "pass --allow-recipe-change to load it anyway"
            )
        if (path / ckpt.SHARDED_STATE).is_dir():
            # the components' current state is the template DCP loads into (with its sharding)
            components = _merge_states(self.host.checkpoint_state(self.run))
            sharding.load_state(path / ckpt.SHARDED_STATE, self.ddp_model, self.optimizer, components)
            rng = payload.get(f"rng-rank{self.accelerator.process_index}")
        else:
            self._load_full(path, payload)
            rng, components = payload["rng"], payload.get("components", {})
        self.scheduler.load_state_dict(payload["scheduler"])
        if rng is not None:  # absent for a process that the writing run did not have (every micro-batch reseeds)
            ckpt.set_rng_state(rng)
        self.host.load_checkpoint_state(self.run, components)
        self._bad_steps = int(meta.get("bad_steps", 0))
        self.metrics.truncate_after(meta["step"])
        log.info("resumed from %s (step %d)", path, meta["step"])
        return int(meta["step"])

    def _load_full(self, path: Path, payload: dict[str, Any]) -> None:
        """Load a checkpoint of full trainable weights (written by the main process of a DDP run)."""
        if self.sharded:
            raise ckpt.CheckpointError(
                f"{path} holds full weights (a distributed.strategy=ddp run); resume it with ddp"
            )
        model = unwrap(self.ddp_model)
        params = trainable_parameters(model)
        missing = set(params) - set(payload["trainable"])
        if missing:
            raise ckpt.CheckpointError(
                f"{path}: checkpoint lacks trainable parameters {sorted(missing)[:5]} — recipe changed?"
            )
        wrong = [
            (n, tuple(payload["trainable"][n].shape), tuple(p.shape))
            for n, p in params.items()
            if tuple(payload["trainable"][n].shape) != tuple(p.shape)
        ]
        if wrong:
            n, a, b = wrong[0]
            raise ckpt.CheckpointError(
                f"{path}: parameter {n} has shape {a} in the checkpoint but {b} in this model "
                f"({len(wrong)} differ: another model, LoRA rank or target modules?)"
            )
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(payload["trainable"][n].to(p.device, p.dtype))
        self.optimizer.load_state_dict(payload["optimizer"])

    # -- the loop ------------------------------------------------------------------------------------------
    _bad_steps = 0

    def train(self, heldout_probe: Callable[[], float] | None = None) -> dict[str, Any]:
        """Train to the last step (from the latest checkpoint when resuming); ``heldout_probe``
        returns held-out accuracy, logged every ``evaluation.heldout_every`` steps."""
        if not hasattr(self, "run"):
            self.setup()
        start = self.restore()
        self.run.step = start
        self.host.on_train_start(self.run)
        total = self.schedule.total_steps
        acc = self.accelerator
        bar = None
        if self.recipe.logging.progress_bar and acc.is_main_process:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=start, desc=f"train {self.recipe.name}", unit="step", dynamic_ncols=True)
        start_trackers(acc, self.recipe, self.output_dir)
        old_handlers = self._install_signal_handlers()
        last: dict[str, Any] = {}
        try:
            for step in range(start, total):
                t0 = time.perf_counter()
                last = self.train_step(step)
                self.run.step = step + 1
                last["time/step_s"] = time.perf_counter() - t0
                last["throughput/tokens_per_s"] = last.pop("_tokens") / max(last["time/step_s"], 1e-9)
                self.host.on_step_end(self.run, step + 1, last)
                every = self.recipe.evaluation.heldout_every
                if heldout_probe is not None and every and (step + 1) % every == 0 and step + 1 < total:
                    last["heldout/accuracy"] = heldout_probe()
                if (step + 1) % self.recipe.logging.log_every == 0 or step + 1 == total:
                    self.metrics.log(step + 1, last)
                    log_step(acc, self.recipe, step + 1, last)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{last.get('loss/total', float('nan')):.4f}")
                due = (step + 1) % self.recipe.checkpoint.every_steps == 0
                if due or step + 1 == total or self._stop_signal is not None:
                    self.save(step + 1)
                if self._stop_signal is not None:
                    log.warning(
                        "received signal %d: checkpoint written at step %d, exiting", self._stop_signal, step + 1
                    )
                    return {"stopped_by_signal": self._stop_signal, "step": step + 1, **last}
        finally:
            self._restore_signal_handlers(old_handlers)
            end_trackers(acc, self.recipe)
            if bar is not None:
                bar.close()
        self.host.on_train_end(self.run)
        self.metrics.close()
        return {"step": total, **last}

    def _micro_batch(self, step: int, j: int) -> tuple[list[dict[str, Any]], torch.Generator]:
        """Micro-batch ``j`` of optimizer step ``step`` on this process: its records and its generator,
        the global random state seeded for it (a function of the seed, the step and the micro-batch
        alone, so a resumed run repeats it)."""
        g = self.accelerator.process_index * self.recipe.training.grad_accum + j
        seed = micro_seed(self.recipe.training.seed, step, g)
        torch.manual_seed(seed)
        random.seed(seed)
        return [self.run.records[i] for i in self.schedule.micro_batch(step, g)], torch.Generator().manual_seed(seed)

    def train_step(self, step: int) -> dict[str, Any]:
        acc, model = self.accelerator, self.ddp_model
        ga = self.recipe.training.grad_accum
        model.train()
        self.optimizer.zero_grad(set_to_none=True)
        step_metrics = StepMetrics()  # each key over the micro-batches that logged it: mean, or min/max by its name
        tokens, bad_terms = 0, []
        self.micro.generate_seconds = self.micro.teacher_seconds = 0.0
        every = self.recipe.logging.diagnostics_every
        due = bool(every) and (step == 0 or (step + 1) % every == 0)
        if self.recipe.generation.rollout_per_step and ga > 1 and type(self.micro.objective.config).samples:
            self.micro.diagnose = False
            self.micro.plan(step, ga, lambda j: self._micro_batch(step, j))
        for j in range(ga):
            self.micro.diagnose = due and j == 0
            self.micro.micro_index = j
            rows, rng = self._micro_batch(step, j)
            if self.sharded:
                sharding.gradient_sync(model, j == ga - 1)
                ctx = nullcontext()
            else:
                ctx = acc.no_sync(model) if j < ga - 1 else nullcontext()
            with ctx:
                res = self.micro(rows, step, rng)
                maybe_kill("rollout", step + 1)
                for name, value in {**res.terms, "total": res.loss}.items():
                    if not torch.isfinite(value.detach()).all():
                        bad_terms.append(name)
                if self.micro.diagnose and acc.num_processes == 1 and not bad_terms:
                    # one process only: an extra backward through a DDP or FSDP2 module would run its collectives
                    res.logs.update(
                        gradient_shares(
                            res.terms, dict(self.micro.term_weights), [p for p in model.parameters() if p.requires_grad]
                        )
                    )
                acc.backward(res.loss / ga)
                maybe_kill("backward", step + 1)
            tokens += res.tokens
            for k, v in {
                **{f"loss/{n}": float(t.detach()) for n, t in res.terms.items()},
                "loss/total": float(res.loss.detach()),
                **res.logs,
            }.items():
                step_metrics.add(k, v)
        sums = step_metrics.result()
        grads_ok = all(torch.isfinite(sharding.local(p.grad)).all() for p in model.parameters() if p.grad is not None)
        keys = sorted(k for k in sums if k.startswith("loss/")) if acc.num_processes > 1 else []
        reduced = torch.tensor(
            [0.0 if (grads_ok and not bad_terms) else 1.0, *(sums[k] for k in keys)], device=acc.device
        )
        if acc.num_processes > 1:  # one collective: the bad-step flags summed, the step's losses over every process
            reduced = acc.reduce(reduced, reduction="sum")
            sums.update(zip(keys, (reduced[1:] / acc.num_processes).tolist(), strict=True))
        bad = reduced[:1]
        metrics: dict[str, Any] = dict(sums)
        metrics["time/generate_s"] = self.micro.generate_seconds  # of time/step_s, spent sampling
        metrics["time/teacher_s"] = self.micro.teacher_seconds  # and in the teacher's scoring calls
        if float(bad) > 0:
            self.optimizer.zero_grad(set_to_none=True)
            self._bad_steps += 1
            what = ", ".join(sorted(set(bad_terms))) or "gradients"
            log.warning("step %d skipped: non-finite %s (%d consecutive)", step + 1, what, self._bad_steps)
            metrics["skipped"] = 1.0
            metrics["skipped_terms"] = what
            if self._bad_steps >= self.recipe.training.max_bad_steps:
                self.save(step)
                raise TrainingStopped(
                    f"{self._bad_steps} consecutive steps with non-finite {what} (training.max_bad_steps="
                    f"{self.recipe.training.max_bad_steps}); last good state saved in {self.checkpoint_root}"
                )
        else:
            self._bad_steps = 0
            if self.recipe.optim.max_grad_norm:
                if self.sharded:  # the norm over every process's shards (a replicated DTensor)
                    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), self.recipe.optim.max_grad_norm)
                    norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
                else:
                    norm = acc.clip_grad_norm_(model.parameters(), self.recipe.optim.max_grad_norm)
                metrics["grad_norm"] = float(norm)
            for c in self.run.components:
                if hasattr(c, "before_optimizer_step"):
                    c.before_optimizer_step(unwrap(model), self.run)
            self.optimizer.step()
            self.scheduler.step()
            self._check_weights(step)
        metrics["lr"] = float(self.scheduler.get_last_lr()[0])
        metrics["_tokens"] = tokens
        return metrics

    # -- signals ---------------------------------------------------------------------------------------------
    def _install_signal_handlers(self):
        import threading

        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            if self._stop_signal is not None:  # second signal: stop now
                raise KeyboardInterrupt
            self._stop_signal = signum
            log.warning("signal %d: finishing the current step, then checkpointing", signum)

        old = {}
        for s in (signal.SIGTERM, signal.SIGINT):
            old[s] = signal.signal(s, handler)
        return old

    def _restore_signal_handlers(self, old) -> None:
        for s, h in old.items():
            signal.signal(s, h)


def _merge_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for s in states:
        clash = set(merged) & set(s)
        if clash:
            raise ValueError(f"two plugins saved checkpoint state under the same keys: {sorted(clash)}")
        merged.update(s)
    return merged


# settings that may differ between a checkpoint and the run resuming it (they do not change the state)
RESUME_FREE = ("logging.", "checkpoint.", "evaluation.", "description", "training.max_steps")


def recipe_fields(recipe, processes: int | None = None) -> dict[str, Any]:
    """The recipe as flat ``section.field`` → JSON value (what a checkpoint records of its run).

    With ``processes``, ``training.grad_accum`` is replaced by the micro-batches per optimizer step
    over all processes, so a run resumed on another number of processes with the grad_accum that
    keeps the step the same (2 processes × 2 ↔ 1 × 4) counts as the same recipe."""
    out = flat_fields(recipe.model_dump(mode="json"))
    return out if processes is None else _per_step(out, processes)


_PER_STEP = "training.grad_accum × processes"


def _per_step(fields: dict[str, Any], processes: int) -> dict[str, Any]:
    fields = dict(fields)
    if "training.grad_accum" in fields:
        fields[_PER_STEP] = fields.pop("training.grad_accum") * processes
    return fields


def _per_step_fields(meta: dict[str, Any], processes: int) -> dict[str, Any] | None:
    """A checkpoint's recipe fields in the form :func:`recipe_fields` gives with ``processes`` (a
    checkpoint that did not record its process count is taken to have the current one)."""
    saved = meta.get("recipe_fields")
    return _per_step(saved, int(meta.get("processes", processes))) if saved else saved


def changed_fields(saved: dict[str, Any] | None, current: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(field, checkpoint value, current value)`` for every state-relevant difference (none for old
    checkpoints that did not record their recipe; a field newer than the checkpoint counts as its default)."""
    if not saved:
        return []
    keys = sorted(set(saved) | set(current))
    return [
        (k, saved.get(k), current.get(k))
        for k in keys
        if k in saved and saved.get(k) != current.get(k) and not k.startswith(RESUME_FREE)
    ]
