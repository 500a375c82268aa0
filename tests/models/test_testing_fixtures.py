"""The shared test environment of tests/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def test_offline_environment() -> None:
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        assert os.environ[key] == "1"
    assert Path(os.environ["HF_HOME"]).is_dir()
    assert os.environ["UNISD_CACHE"]


def test_tiny_fixtures_share_a_tokenizer(tiny_model_dir: Path, tiny_qwen_dir: Path) -> None:
    assert (tiny_model_dir / "tokenizer.json").read_bytes() == (tiny_qwen_dir / "tokenizer.json").read_bytes()


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_accelerate_state_is_reset_between_tests(precision: str) -> None:
    from accelerate import Accelerator

    acc = Accelerator(cpu=True, mixed_precision=precision)  # would clash with the previous test's state
    assert acc.state.mixed_precision == precision
