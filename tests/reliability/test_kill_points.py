"""SIGKILL at each injection point (generation, backward, checkpoint write), then ``--resume auto``:
no corrupt checkpoint is loaded and the per-step losses equal the uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest


def _cmd(tiny_model_dir, records_file, out: Path, *extra: str) -> list[str]:
    sets = [
        f"model.name_or_path={tiny_model_dir}",
        f"data.dataset={{type: jsonl, path: '{records_file}'}}",
        "generation.max_new_tokens=6",
        "training.batch_size=2",
        "training.grad_accum=2",
        "lora.r=4",
        "optim.lr=1e-2",
        "checkpoint.every_steps=1",
        "logging.progress_bar=false",
        "logging.tensorboard=false",
    ]
    argv = [
        sys.executable,
        "-m",
        "unisd.cli.main",
        "train",
        "--recipe",
        "unisd-star",
        "--max-steps",
        "4",
        "--output-dir",
        str(out),
        "--set",
        "components.ema.every=1",
        "--set",
        "components.agreement.contexts={type: random, k: 2}",
    ]
    for s in sets:
        argv += ["--set", s]
    return argv + list(extra)


def _losses(out: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss/total"]) for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]


@pytest.fixture(scope="module")
def reference(tiny_model_dir, records_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    subprocess.run(_cmd(tiny_model_dir, records_file, out), check=True, capture_output=True, timeout=600)
    return _losses(out)


@pytest.mark.parametrize("point", ["rollout", "backward", "checkpoint_write"])
def test_kill_at_point_then_resume_matches(point, reference, tiny_model_dir, records_file, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "UNISD_FAULT_INJECT": f"{point}:3"}
    killed = subprocess.run(_cmd(tiny_model_dir, records_file, out), env=env, capture_output=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    if point == "checkpoint_write":  # the torn checkpoint is a temp dir, never a step-* dir
        assert not (out / "checkpoints" / "step-00000003").exists()
        assert list((out / "checkpoints").glob(".tmp-step-00000003-*"))
    res = subprocess.run(_cmd(tiny_model_dir, records_file, out, "--resume", "auto"), capture_output=True, timeout=600)
    assert res.returncode == 0, res.stderr.decode()[-3000:]
    resumed = _losses(out)
    assert [s for s, _ in resumed] == [1, 2, 3, 4]
    for (s, a), (_, b) in zip(reference, resumed, strict=True):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-9), f"step {s}: {a} vs {b}"
    assert not list((out / "checkpoints").glob(".tmp-*"))  # stale temp dirs cleaned up
