"""Experiment trackers through accelerate (logging.report_to), with W&B in offline mode."""

from __future__ import annotations

import pytest

from unisd.runs.launch import train
from unisd.errors import UserError


def test_wandb_offline_gets_every_step_and_the_recipe(make_recipe, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    train(make_recipe("vanilla", "training.max_steps=2", "logging.report_to=[wandb]"), run)
    logs = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(logs) == 1  # one offline run under the run directory, `wandb sync`-able
    data = logs[0].read_bytes()  # its records: the recipe as config, and every step's metrics
    assert b"optim.lr" in data and b"divergence.type" in data and data.count(b"loss/total") >= 2


def test_a_tracker_that_cannot_log_is_refused_before_training(make_recipe, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "no-login"))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    with pytest.raises(UserError, match="wandb has no login here; .*WANDB_MODE=offline"):
        train(make_recipe("vanilla", "logging.report_to=[wandb]"), tmp_path / "run")
    with pytest.raises(Exception, match="report_to"):
        make_recipe("vanilla", "logging.report_to=[wandbb]")
    assert not (tmp_path / "run").exists()
