"""Instruction induction (spec §2a.3): the model itself writes generic task instructions from a few
training examples; each item's K contexts are instructions drawn with replacement (seeded).

Instructions are cached on disk under a key of model, data and prompt, so a rerun (or a resumed
run) reuses them instead of generating again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from typing import ClassVar


from unisd.components.kinds import ContextBuilder
from unisd.api import write_atomically
from unisd_plugins.agreement.builders import donor_pool
from unisd_plugins.datasets.prompts import build_induction_context
from unisd_plugins.agreement.config import InductionConfig

log = logging.getLogger("unisd.agreement")

META_PROMPT = (
    "Below are {n} solved examples of one kind of task.\n\n{examples}\n\n"
    "Write ONE concise, general instruction (3-4 sentences) that would help someone solve ANY task of this "
    "kind well. Do not mention any specific example, name, number or answer from above. "
    "Output only the instruction."
)


class InductionContexts(ContextBuilder):
    """Contexts ``## General Instruction for Your Answer`` + an induced instruction + the prompt."""

    Config: ClassVar = InductionConfig

    def build(self, records, *, run=None):
        if run is None:
            raise ValueError("induction needs the model: build contexts inside a training run")
        instructions = self.instructions(records, run)
        rng = random.Random(self.config.seed)
        return [
            [build_induction_context(r["prompt"], rng.choice(instructions)) for _ in range(self.config.k)]
            for r in records
        ]

    def cache_key(self, records, run) -> str:
        c = self.config
        blob = json.dumps(
            [
                run.recipe.model.name_or_path,
                [r["id"] for r in records],
                META_PROMPT,
                c.num_instructions,
                c.num_demos,
                c.seed,
                c.temperature,
                c.max_new_tokens,
            ]
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def instructions(self, records, run) -> list[str]:
        path = run.cache_dir / "induction" / f"{self.cache_key(records, run)}.json"
        if path.exists():
            return json.loads(path.read_text())
        from unisd.api import generate_texts

        c = self.config
        rng = random.Random(c.seed)
        out: list[str] = []
        log.info("inducing %d instructions with the model (cached in %s)", c.num_instructions, path)
        pool = donor_pool(records, run)
        for i in range(c.num_instructions):
            demos = rng.sample(pool, min(c.num_demos, len(pool)))
            examples = "\n\n".join(
                f"Example {j + 1}:\n{d['prompt']}\nSolution:\n{d['gold']}" for j, d in enumerate(demos)
            )
            (text,) = generate_texts(
                run.model,
                run.tokenizer,
                [META_PROMPT.format(n=len(demos), examples=examples)],
                temperature=c.temperature,
                max_new_tokens=c.max_new_tokens,
                seed=c.seed + i,
                device=run.device,
                base=True,
            )
            if text.strip():
                out.append(text.strip())
        if not out:
            raise RuntimeError("instruction induction produced no instructions (the model generated only empty text)")
        write_atomically(path, lambda tmp: tmp.write_text(json.dumps(out, indent=1)))
        return out
