"""Loading a checkpoint never executes code (issue 28, item 7): a manifest proves integrity, not trust."""

from __future__ import annotations

import hashlib
import json
import os
import pickle

import pytest
import torch

from unisd.cli.main import main
from unisd.engine.checkpoint import CheckpointError, MANIFEST, check_sharded_metadata, latest_complete, read_torch


class _RunsCode:
    """Unpickling this calls os.system: the shape of a hostile checkpoint file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _swap_in(ckpt, name: str, marker) -> None:
    """Replace ``ckpt/name`` by a code-running pickle and update the manifest to match, as an attacker would."""
    path = ckpt / name
    with path.open("wb") as fh:
        torch.save({"state": _RunsCode(marker)}, fh)
    manifest = json.loads((ckpt / MANIFEST).read_text())
    manifest["files"][name] = {"bytes": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    (ckpt / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("name", ["components.pt", "rng.pt", "optimizer.pt"])
def test_resuming_a_checkpoint_with_a_code_running_pickle_refuses_and_runs_nothing(
    name, tiny_model_dir, records_file, tmp_path, capsys
):
    run, marker = tmp_path / "run", tmp_path / "pwned"
    argv = [
        "train",
        "-r",
        "vanilla",
        "--model",
        str(tiny_model_dir),
        "--data",
        str(records_file),
        "-o",
        str(run),
        "--max-steps",
        "2",
        "--set",
        "generation.max_new_tokens=4",
        "--set",
        "training.batch_size=2",
        "--set",
        "lora.r=4",
        "--set",
        "checkpoint.every_steps=1",
        "--set",
        "logging.progress_bar=false",
        "--set",
        "logging.tensorboard=false",
        "--set",
        "evaluation.heldout=0",
    ]
    assert main(argv) == 0
    ckpt = latest_complete(run / "checkpoints")
    assert name in json.loads((ckpt / MANIFEST).read_text())["files"]
    _swap_in(ckpt, name, marker)
    capsys.readouterr()
    assert main([*argv[:-20], *argv[-20:]] + ["--resume", "auto", "--max-steps", "3"]) == 2
    err = capsys.readouterr().err
    assert f"{ckpt / name} is not plain state: it names posix.system" in err and "Traceback" not in err
    assert not marker.exists()


def test_the_real_rng_state_and_every_payload_kind_load_as_plain_state(tmp_path):
    import random

    import numpy as np

    from unisd.engine.checkpoint import rng_state, write_torch

    write_torch(tmp_path / "rng.pt", rng_state())
    state = read_torch(tmp_path / "rng.pt")
    assert state["python"] == random.getstate() and np.array_equal(state["numpy"][1], np.random.get_state()[1])


def test_a_sharded_checkpoints_layout_file_is_read_without_running_code(tmp_path):
    import torch.distributed.checkpoint as dcp

    state = tmp_path / "state"
    dcp.save({"w": torch.ones(3, dtype=torch.bfloat16), "step": 4, "name": "x"}, checkpoint_id=str(state), no_dist=True)
    check_sharded_metadata(state)  # what DCP writes passes
    marker = tmp_path / "pwned"
    (state / ".metadata").write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(CheckpointError, match=r"\.metadata is not a checkpoint layout: it names posix\.system"):
        check_sharded_metadata(state)
    assert not marker.exists()
