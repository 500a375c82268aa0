"""Fixtures for reliability tests: a tiny model, a small records file, and a recipe factory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unisd.recipe import load_recipe


def write_records(path: Path, n: int = 24) -> Path:
    """Synthetic arithmetic records in the training-record schema."""
    rows = []
    for i in range(n):
        a, b = i % 7 + 1, (3 * i) % 5 + 2
        q = f"What is {a} plus {b}? Reply with the number."
        rows.append({
            "id": f"add-{i}", "prompt": q,
            "teacher_prompt": f"\n{q}\n\nThis is an example for a response to the question:\n{a + b}\n\nCarefully study the reference solution, then solve the problem below with your own approach.\n",
            "gold": f"{a} + {b} = {a + b}. The answer is {a + b}.", "answer": str(a + b),
            "meta": {"task": "math"}, "demo": f"Question: {q}\nAnswer: {a + b}", "retrieval_text": q,
            "negative_prompt": f"\n{q}\n\nThis is an example for a response to the question:\n{a + b + 3}\n\nCarefully study the reference solution, then solve the problem below with your own approach.\n",
        })
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def records_file(tmp_path_factory) -> Path:
    return write_records(tmp_path_factory.mktemp("records") / "train.jsonl")


@pytest.fixture
def make_recipe(tiny_model_dir, records_file):
    """``make_recipe(name, *overrides)``: a shipped recipe shrunk to the tiny model."""

    def make(name: str = "vanilla", *overrides: str):
        base = [
            f"model.name_or_path={tiny_model_dir}",
            f"data.dataset={{type: jsonl, path: '{records_file}'}}",
            "generation.max_new_tokens=8", "training.batch_size=2", "training.grad_accum=2",
            "training.max_steps=3", "lora.r=4", "lora.alpha=8", "optim.lr=1e-2", "checkpoint.every_steps=1",
            "logging.progress_bar=false", "logging.tensorboard=false",
        ]
        return load_recipe(name, [*base, *overrides])

    return make
