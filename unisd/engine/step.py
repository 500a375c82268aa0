"""One micro-batch: the recipe's objective, built from the stages here (rollout, teacher-forced
scoring, divergence → guards → weights → loss terms, or a cross-entropy)."""

from __future__ import annotations

import time
from typing import Any, cast
from collections.abc import Callable, Sequence

import torch

from unisd.components.batch import DistillBatch, MicroResult, Scores
from unisd.components.kinds import AuxiliaryLoss, DisagreementMeasure, StabilityGuard
from unisd.engine.batching import Tokenized, pad_right, pad_token_id, tokenize_completions, tokenize_prompts
from unisd.engine.reduction import masked_mean
from unisd.engine.rollout import Rollout, sample, sample_together
from unisd.engine.scoring import score
from unisd.engine.vocab_chunks import block_logprobs, divergence_and_token_logprobs


class PlannedSample(Exception):
    """Ends an objective early while the trainer collects what it will sample (:meth:`MicroStep.plan`)."""


def score_temperature(recipe) -> float:
    """Temperature of student/teacher log-probs (:meth:`RecipeBase.score_temperature`)."""
    return recipe.score_temperature()


class MicroStep:
    """Runs one micro-batch: its prompts, then the recipe's objective (an ``Objective`` component),
    which calls the stages below.

    Built once per run; the divergence and the components are the run's (``run.divergence``,
    ``run.components``); ``__call__`` gets the micro-batch's records.
    """

    def __init__(self, run, model, teacher, generator, objective) -> None:
        self.run, self.model, self.teacher, self.generator = run, model, teacher, generator
        self.divergence = run.divergence
        components: Sequence[Any] = run.components
        self.objective = objective
        self.step = 0  # the optimizer step of the micro-batch being computed
        self.diagnose = False  # run the components' costly diagnostics on this micro-batch (set by the trainer)
        self.generate_seconds = 0.0  # time spent sampling since the trainer last reset it (time/generate_s)
        self.teacher_seconds = 0.0  # time in teacher scoring calls since then (time/teacher_s)
        self.micro_index = 0  # which micro-batch of the optimizer step is being computed
        self._planned: list[tuple[int, Tokenized, bool]] | None = None  # requests collected by plan()
        self._ready: dict[int, tuple[Tokenized, bool, Rollout]] = {}  # rollouts plan() sampled, by micro-batch
        self.recipe = run.recipe
        self.tok = run.tokenizer
        self.guards = [c for c in components if isinstance(c, StabilityGuard)]
        self.measures = [c for c in components if isinstance(c, DisagreementMeasure)]
        self.losses = [c for c in components if isinstance(c, AuxiliaryLoss)]
        self.diagnosed = list(dict.fromkeys([teacher, *components]))  # every component whose diagnose() may run
        req = None
        for c in components:
            req = c.requirements() if req is None else req.merge(c.requirements())
        self.feature_layers = sorted(req.feature_layers) if req else []
        self.token_logp_grad = bool(req and req.token_logp_grad)
        self.temperature = score_temperature(self.recipe)
        # blocks read the LM head's weight after the forward, when FSDP2 has already freed the gathered copy
        self.logit_chunk = 0 if (req and req.full_logprobs) or run.sharded else self.recipe.training.logit_chunk
        # every process must run the same forwards under FSDP2 (each one gathers weights collectively),
        # and a DDP-wrapped student takes one forward per backward: no length groups there
        budget = self.recipe.training.score_max_tokens
        self.teacher_max_tokens = 0 if run.sharded else budget
        self.student_max_tokens = 0 if run.sharded or model is not run.model else budget
        # at least this many shared prompt tokens before the teacher runs them once (0: never)
        self.teacher_share_prefix = 8 if self.recipe.training.share_prompt_prefix and not run.sharded else 0

    def describe_loss(self) -> str:
        """The total loss the run minimises, e.g. ``L = 1·reverse_kl + 0.01·contrastive``."""
        describe = getattr(self.objective, "describe", None)
        if describe is not None:
            return describe(self)
        return "L = " + " + ".join(f"{w:g}·{name}" for name, w in self.term_weights)

    @property
    def term_weights(self) -> list[tuple[str, float]]:
        """The distillation loss's named terms and their weights: the divergence (under its name,
        e.g. ``forward_kl``) first, then each auxiliary loss in recipe order."""
        return [
            (self.divergence.name, self.divergence.config.weight),
            *((a.name, a.config.weight) for a in self.losses),
        ]

    @property
    def unwrapped(self) -> torch.nn.Module:
        return self.run.model

    # -- completions -------------------------------------------------------------------------------
    def sample(self, prompt: Tokenized, *, use_base: bool = False) -> Rollout:
        """One sampled completion per prompt row from the student (``use_base``: its base weights);
        the rollout :meth:`plan` already sampled for this micro-batch when it asked for the same."""
        if self._planned is not None:
            self._planned.append((self.micro_index, prompt, use_base))
            raise PlannedSample
        ready = self._ready.pop(self.micro_index, None)
        if ready is not None and ready[1] == use_base and torch.equal(ready[0].ids, prompt.ids):
            return ready[2]
        start = time.perf_counter()
        try:
            return sample(self.generator, self.unwrapped, self.tok, prompt, self.recipe.generation, use_base=use_base)
        finally:
            self.generate_seconds += time.perf_counter() - start

    def gold(self, records: list[dict[str, Any]]) -> Rollout:
        """The records' reference completions (ending with EOS) as a rollout."""
        device = self.run.device
        ids, mask = tokenize_completions(self.tok, [r["gold"] for r in records], self.recipe.generation.max_new_tokens)
        return Rollout(ids.to(device), mask.to(device), mask.to(device), torch.zeros(len(records), dtype=torch.bool))

    def rollout(self, seqs: list[list[int]], truncated: torch.Tensor) -> Rollout:
        """Token sequences (one per row, EOS included where present) as a right-padded rollout."""
        device = self.run.device
        ids, present = pad_right(seqs, pad_token_id(self.tok))
        loss_mask = present.clone()
        if self.recipe.generation.mask_truncated:
            loss_mask[truncated] = 0.0
        return Rollout(ids.to(device), present.to(device), loss_mask.to(device), truncated)

    # -- scoring -----------------------------------------------------------------------------------
    def score_teacher(
        self,
        texts: Sequence[str],
        completion_ids,
        present,
        *,
        temperature: float,
        full_logprobs: bool,
        feature_layers: Sequence[str] = (),
        keep_hidden: bool = False,
    ) -> Scores:
        start = time.perf_counter()
        prompt = tokenize_prompts(self.tok, list(texts))
        reps = len(texts) // completion_ids.shape[0]
        cids, pres = completion_ids.repeat(reps, 1), present.repeat(reps, 1)
        try:
            with torch.no_grad(), self.teacher.teacher_forward() as fwd:
                # a teacher that is a module of its own (a frozen copy, a full-weight model) carries the
                # feature hooks itself; a plain callable runs the student's modules
                hooked = fwd if isinstance(fwd, torch.nn.Module) else self.unwrapped
                return score(
                    fwd,
                    hooked,
                    prompt,
                    cids,
                    pres,
                    temperature=temperature,
                    full_logprobs=full_logprobs,
                    feature_layers=feature_layers,
                    logit_chunk=self.logit_chunk,
                    keep_hidden=keep_hidden,
                    max_tokens=self.teacher_max_tokens,
                    share_prefix=self.teacher_share_prefix,
                )
        finally:
            self.teacher_seconds += time.perf_counter() - start

    def divergence_of(self, student: Scores, teacher: Scores, ids: torch.Tensor) -> torch.Tensor:
        """The per-token divergence (B, T); fills in token log-probs left to the block computation."""
        if student.hidden is not None and teacher.hidden is not None:
            assert student.head is not None and teacher.head is not None  # kept with the hidden states
            div, student.token_logps, teacher.token_logps = divergence_and_token_logprobs(
                self.divergence.per_token,
                student.hidden,
                student.head,
                teacher.hidden,
                teacher.head,
                ids,
                self.temperature,
                chunk=self.logit_chunk,
                token_grad=self.token_logp_grad,
            )
            return div
        for s in (student, teacher):  # a head that is not a plain linear layer on one side: full log-probs
            if s.logprobs is None:
                assert s.hidden is not None and s.head is not None  # scored in blocks: the head's input was kept
                s.logprobs = block_logprobs(s.hidden, *s.head, self.temperature)
                s.token_logps = s.logprobs.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
        return self.divergence.per_token(teacher.logprobs, student.logprobs)

    # -- losses --------------------------------------------------------------------------------------
    @staticmethod
    def rollout_logs(roll: Rollout) -> dict[str, float]:
        return {
            "completion/length": float(roll.present.sum(-1).float().mean()),
            "completion/truncated": float(roll.truncated.float().mean()),
        }

    def score_student(
        self,
        prompt: Tokenized,
        roll: Rollout,
        *,
        temperature: float | None = None,
        full_logprobs: bool = False,
        feature_layers: Sequence[str] = (),
        keep_hidden: bool = False,
    ) -> Scores:
        """The student's teacher-forced scores of ``roll`` after ``prompt`` (with gradient)."""
        return score(
            self.model,
            self.unwrapped,
            prompt,
            roll.ids,
            roll.present,
            temperature=self.temperature if temperature is None else temperature,
            full_logprobs=full_logprobs,
            feature_layers=feature_layers,
            logit_chunk=self.logit_chunk,
            keep_hidden=keep_hidden,
            max_tokens=self.student_max_tokens,
        )

    def nll(self, prompt: Tokenized, roll: Rollout) -> MicroResult:
        """Cross-entropy of ``roll`` under the student at temperature 1 (SFT, SSD)."""
        student = self.score_student(prompt, roll, temperature=1.0)
        nll = masked_mean(-student.token_logps, roll.loss_mask, normalization=self.objective.config.normalization)
        return MicroResult(nll, {"nll": nll}, self.rollout_logs(roll), int(roll.loss_mask.sum()))

    def distill(self, records: list[dict[str, Any]], prompt: Tokenized, roll: Rollout) -> MicroResult:
        """The divergence from the teacher (shown ``teacher_prompt``) on ``roll``, through the
        recipe's guards and disagreement weights, plus its auxiliary terms."""
        logs = self.rollout_logs(roll)
        tokens = int(roll.loss_mask.sum())
        normalization = self.objective.config.normalization
        blocks = self.logit_chunk > 0
        student = self.score_student(
            prompt, roll, full_logprobs=not blocks, feature_layers=self.feature_layers, keep_hidden=blocks
        )
        teacher = self.score_teacher(
            [r["teacher_prompt"] for r in records],
            roll.ids,
            roll.present,
            temperature=self.temperature,
            full_logprobs=not blocks,
            feature_layers=self.feature_layers,
            keep_hidden=blocks,
        )
        div = self.divergence_of(student, teacher, roll.ids)

        def score_contexts(contexts, *, temperature, full_logprobs=False, feature_layers=()):
            return self.score_teacher(
                contexts,
                roll.ids,
                roll.present,
                temperature=temperature,
                full_logprobs=full_logprobs,
                feature_layers=feature_layers,
            )

        batch = DistillBatch(
            records=records,
            completion_ids=roll.ids,
            completion_mask=roll.loss_mask,
            student=student,
            teacher=teacher,
            temperature=self.temperature,
            step=self.step,
            score_contexts=score_contexts,
        )
        logs["divergence/raw_mean"] = _masked_avg(div.detach(), roll.loss_mask)
        token_w, seq_w = None, None
        for guard in self.guards:
            div = guard.transform_divergence(div, roll.loss_mask, batch)
            w = guard.token_weights(roll.loss_mask, batch)
            if w is not None:
                token_w = w.detach() if token_w is None else token_w * w.detach()
        for measure in self.measures:
            mw = measure.weights(batch)
            logs.update({f"{measure.name}/{k}": v for k, v in mw.logs.items()})
            if mw.token is not None:
                token_w = mw.token.detach() if token_w is None else token_w * mw.token.detach()
            if mw.sequence is not None:
                seq_w = mw.sequence.detach() if seq_w is None else seq_w * mw.sequence.detach()
        terms = {self.divergence.name: masked_mean(div, roll.loss_mask, token_w, seq_w, normalization)}
        for aux in self.losses:  # each term under its component's name (two of one type stay apart)
            term = aux.compute(batch)
            terms[aux.name] = term.value
            logs.update({f"{aux.name}/{k}": v for k, v in term.logs.items()})
        # a weight of 0 keeps the graph, adds 0; the divergence's term at least: a tensor, not sum's start 0
        total = cast(torch.Tensor, sum(w * terms[name] for name, w in self.term_weights))
        logs.update(loss_shares(terms, dict(self.term_weights)))
        if self.diagnose:
            for c in self.diagnosed:
                logs.update({f"{c.name}/{k}": v for k, v in c.diagnose(batch).items()})
        logs.update(batch.logs)
        logs["divergence/mean"] = _masked_avg(div.detach(), roll.loss_mask)
        if token_w is not None:
            logs["weights/token_mean"] = _masked_avg(token_w, roll.loss_mask)
            logs["weights/token_min"] = float(token_w[roll.loss_mask > 0].min()) if tokens else 1.0
        if seq_w is not None:
            logs["weights/sequence_mean"] = float(seq_w.mean())
        return MicroResult(total, terms, logs, tokens)

    def plan(
        self, step: int, count: int, prepare: Callable[[int], tuple[list[dict[str, Any]], torch.Generator]]
    ) -> None:
        """Sample the rollouts of a whole optimizer step together (``generation.rollout_per_step``).

        ``prepare(j)`` sets up micro-batch ``j`` of ``count`` as training will (its seeds set) and
        returns its ``(records, rng)``. Each micro-batch's objective runs up to its first :meth:`sample`
        call, which is recorded instead; then every recorded request (per ``use_base``) is sampled
        in one generation call (``generation.max_batch_rows`` rows at most) and kept for the
        training pass, where the same call returns it."""
        self._ready.clear()
        requests: list[tuple[int, Tokenized, bool]] = []
        self._planned = requests
        try:
            for j in range(count):
                self.micro_index = j
                records, rng = prepare(j)
                try:
                    self(records, step, rng)
                except PlannedSample:
                    pass
        finally:
            self._planned = None
        gen = self.recipe.generation
        for use_base in sorted({r[2] for r in requests}):
            asked = [r for r in requests if r[2] == use_base]
            start = time.perf_counter()
            rolls = sample_together(
                self.generator,
                self.unwrapped,
                self.tok,
                [r[1] for r in asked],
                gen,
                use_base=use_base,
                max_rows=gen.max_batch_rows,
            )
            self.generate_seconds += time.perf_counter() - start
            for (j, prompt, _), roll in zip(asked, rolls, strict=True):
                self._ready[j] = (prompt, use_base, roll)

    # -- the micro-step ----------------------------------------------------------------------------
    def __call__(self, records: list[dict[str, Any]], step: int, step_rng: torch.Generator) -> MicroResult:
        device = self.run.device
        repeats = self.recipe.generation.num_generations
        if repeats > 1:  # several rollouts per prompt: each prompt's row repeated, sampled independently
            records = [r for r in records for _ in range(repeats)]
        prompt = tokenize_prompts(self.tok, [r["prompt"] for r in records])
        prompt.ids, prompt.mask = prompt.ids.to(device), prompt.mask.to(device)
        self.step = step
        return self.objective.loss(self, records, prompt, step_rng)


def loss_shares(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> dict[str, float]:
    """``share/loss/<term>``: each weighted term's part of the sum of their magnitudes (none for a
    single term, whose share is 1)."""
    if len(terms) < 2:
        return {}
    sizes = {n: abs(weights.get(n, 1.0) * float(t.detach())) for n, t in terms.items()}
    total = sum(sizes.values())
    return {f"share/loss/{n}": (v / total if total > 0 else 0.0) for n, v in sizes.items()}


def gradient_shares(
    terms: dict[str, torch.Tensor], weights: dict[str, float], params: Sequence[torch.Tensor]
) -> dict[str, float]:
    """``grad/<term>_norm`` and ``share/grad/<term>``: the gradient norm of each weighted term alone
    (one extra backward per term, the graph kept for the real one) and its part of their sum."""
    if len(terms) < 2:
        return {}
    norms = {}
    for n, t in terms.items():
        w = weights.get(n, 1.0)
        if w == 0 or not t.requires_grad:
            norms[n] = 0.0
            continue
        grads = [g for g in torch.autograd.grad(w * t, params, retain_graph=True, allow_unused=True) if g is not None]
        norms[n] = float(torch.stack([g.float().pow(2).sum() for g in grads]).sum().sqrt()) if grads else 0.0
    total = sum(norms.values())
    return {
        **{f"grad/{n}_norm": v for n, v in norms.items()},
        **{f"share/grad/{n}": (v / total if total > 0 else 0.0) for n, v in norms.items()},
    }


def _masked_avg(x: torch.Tensor, mask: torch.Tensor) -> float:
    return float((x * mask).sum() / mask.sum().clamp(min=1))
