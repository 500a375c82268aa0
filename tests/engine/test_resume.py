"""Exact resume: a run killed with SIGKILL and resumed reproduces the uninterrupted run's losses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from unisd.engine import checkpoint as ckpt


def _cmd(tiny_model_dir, records_file, out: Path, *extra: str) -> list[str]:
    sets = [
        f"model.name_or_path={tiny_model_dir}",
        f"data.dataset={{type: jsonl, path: '{records_file}'}}",
        "generation.max_new_tokens=8",
        "training.batch_size=2",
        "training.grad_accum=2",
        "lora.r=4",
        "optim.lr=1e-2",
        "checkpoint.every_steps=1",
        "checkpoint.keep_last=2",
        "logging.progress_bar=false",
    ]
    argv = [
        sys.executable,
        "-m",
        "unisd.cli.main",
        "train",
        "--recipe",
        "unisd-ema",
        "--max-steps",
        "5",
        "--output-dir",
        str(out),
        "--set",
        "components.ema.every=2",
    ]
    for s in sets:
        argv += ["--set", s]
    return argv + list(extra)


def _losses(out: Path) -> list[tuple[int, float]]:
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    return [(r["step"], r["loss/total"]) for r in rows]


@pytest.mark.parametrize("rollout_per_step", ["false", "true"])
def test_sigkill_and_resume_reproduce_the_loss_curve(tiny_model_dir, records_file, tmp_path, rollout_per_step):
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    full = tmp_path / "full"
    option = ("--set", f"generation.rollout_per_step={rollout_per_step}")
    subprocess.run(
        _cmd(tiny_model_dir, records_file, full, *option), check=True, env=env, capture_output=True, timeout=300
    )
    reference = _losses(full)
    assert [s for s, _ in reference] == [1, 2, 3, 4, 5]

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _cmd(tiny_model_dir, records_file, killed, *option), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 240
    while time.time() < deadline:
        m = killed / "metrics.jsonl"
        if m.exists() and len(m.read_text().splitlines()) >= 3:
            break
        if proc.poll() is not None:
            pytest.fail(f"training exited early: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.latest_complete(killed / "checkpoints") is not None
    res = subprocess.run(
        _cmd(tiny_model_dir, records_file, killed, *option, "--resume", "auto"),
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr.decode()[-3000:]
    resumed = _losses(killed)
    assert [s for s, _ in resumed] == [1, 2, 3, 4, 5]
    for (s, a), (_, b) in zip(reference, resumed, strict=True):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-9), f"step {s}: {a} vs {b}"


def test_corrupt_checkpoint_is_never_loaded(tmp_path):
    root = tmp_path / "checkpoints"
    ckpt.save_checkpoint(root, 1, {"x": {"a": 1}}, {"step": 1}, keep_last=5)
    ckpt.save_checkpoint(root, 2, {"x": {"a": 2}}, {"step": 2}, keep_last=5)
    (root / "step-00000002" / "x.pt").write_bytes(b"garbage")
    (root / "step-00000003").mkdir()  # a directory without a manifest (torn write)
    with pytest.warns(UserWarning, match="corrupt"):
        latest = ckpt.latest_complete(root)
    assert latest == root / "step-00000001"
    with pytest.raises(ckpt.CheckpointError, match="checksum"):
        ckpt.load_checkpoint(root / "step-00000002")


def test_keep_last_prunes_old_checkpoints(tmp_path):
    root = tmp_path / "c"
    for s in range(1, 5):
        ckpt.save_checkpoint(root, s, {"x": s}, {"step": s}, keep_last=2)
    assert [p.name for p in ckpt.list_checkpoints(root)] == ["step-00000003", "step-00000004"]


def test_output_dir_holding_another_run_is_refused(tiny_model_dir, records_file, tmp_path):
    out = tmp_path / "run"
    cmd = _cmd(tiny_model_dir, records_file, out)
    cmd[cmd.index("5")] = "1"
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    res = subprocess.run(cmd, capture_output=True, timeout=300)
    assert res.returncode == 2 and b"already holds a run" in res.stderr


@pytest.mark.parametrize(
    "kind, message",
    [("DEEPSPEED", "DEEPSPEED, which UniSD does not support"), ("FSDP", "FSDP version 1; UniSD shards with FSDP2")],
)
def test_unsupported_sharded_setups_are_refused_before_any_work(kind, message, make_recipe, tmp_path, monkeypatch):
    from accelerate.utils import DistributedType

    from unisd.engine.trainer import Trainer
    from unisd.errors import UserError

    trainer = Trainer(make_recipe("vanilla"), tmp_path / "run")
    monkeypatch.setattr(type(trainer.accelerator), "distributed_type", property(lambda self: DistributedType[kind]))
    with pytest.raises(UserError, match=message):
        trainer.setup()
    assert not (tmp_path / "run").exists()
