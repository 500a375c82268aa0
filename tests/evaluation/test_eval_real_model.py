"""Smoke evaluation of the embedded SmolLM2-135M-Instruct (slow: real weights on CPU)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from unisd.cli.main import main

pytestmark = pytest.mark.slow


def test_smollm2_smoke_eval(real_model_dir: Path, shared_data: Path, tmp_path: Path) -> None:
    os.environ["UNISD_EVAL_MAX_GEN_TOKS"] = "128"
    try:
        rc = main(
            [
                "eval",
                "--model",
                "smollm2-135m-instruct",
                "--tasks",
                "cose,unisd_mbpp,cose_mc",
                "--limit",
                "3",
                "--batch-size",
                "4",
                "--data-dir",
                str(shared_data),
                "-o",
                str(tmp_path),
            ]
        )
    finally:
        os.environ.pop("UNISD_EVAL_MAX_GEN_TOKS", None)
    assert rc == 0
    summary = json.loads((tmp_path / "results.json").read_text())["unisd"]["summary"]
    assert set(summary) == {"unisd_cose", "unisd_mbpp", "unisd_cose_mc"}
    # (the 135M model rarely gives a letter in the spec's output format: 9 of 64 CoS-E train items at
    # 48 tokens; "extracted" used to be inflated by the article "A" and echoed option lists)
    assert "extracted" in summary["unisd_cose"]
    assert all(0.0 <= row[k] <= 1.0 for row in summary.values() for k in row if k != "n" and not k.endswith("_stderr"))
