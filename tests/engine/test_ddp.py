"""Two gloo processes (torchrun + accelerate, gloo) with grad_accum g equal one process with grad_accum 2g (issue: DDP equivalence)."""

import os
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def _run(args, env, timeout=600):
    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-4000:]


def test_two_processes_match_one_with_doubled_accumulation(tiny_model_dir, records_file, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    # accelerate picks up torchrun's environment; ACCELERATE_USE_CPU selects gloo (MULTI_CPU)
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517"]
    env2 = {**env, "ACCELERATE_USE_CPU": "true"}
    _run([sys.executable, str(WORKER), str(tiny_model_dir), str(records_file), str(tmp_path / "one"), "4"], env)
    _run([*launch, str(WORKER), str(tiny_model_dir), str(records_file), str(tmp_path / "two"), "2"], env2)
    one = torch.load(tmp_path / "one" / "params.pt")
    two = torch.load(tmp_path / "two" / "params.pt")
    assert one["world"] == 1 and two["world"] == 2
    assert one["params"].keys() == two["params"].keys()
    moved = 0
    for name, p1 in one["params"].items():
        assert torch.allclose(p1, two["params"][name], atol=1e-5, rtol=1e-4), name
        moved += int(p1.abs().sum() > 0)
    assert moved > 0
