"""One process per run directory at a time (issue 28): an OS lock held for the life of the process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from unisd.files import DirectoryBusy, hold_directory, lock_path

HOLD = textwrap.dedent("""\
    import sys, time
    from unisd.files import hold_directory
    with hold_directory(sys.argv[1]):
        print("held", flush=True)
        time.sleep(60)
    """)


def test_a_held_directory_is_refused_naming_its_holder_and_a_killed_holder_frees_it(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(DirectoryBusy, match=rf"{run} is in use by another run: pid {holder.pid} on .*started 20"),
            hold_directory(run),
        ):
            pass
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs; the kernel drops the lock
        holder.wait()
    assert lock_path(run).exists()  # what a killed holder leaves: an unlocked file, taken over
    with hold_directory(run), hold_directory(run):  # the same process again: not a second holder
        pass
    assert not lock_path(run).exists() and not run.exists()  # nothing left behind, nothing created


def test_two_trainings_started_together_on_one_directory_exactly_one_trains(tiny_model_dir, records_file, tmp_path):
    out = tmp_path / "run"
    sets = [
        "generation.max_new_tokens=6",
        "training.batch_size=2",
        "training.grad_accum=1",
        "lora.r=4",
        "logging.progress_bar=false",
        "logging.tensorboard=false",
        "evaluation.heldout=0",
    ]
    argv = [
        sys.executable,
        "-m",
        "unisd.cli.main",
        "train",
        "-r",
        "vanilla",
        "--model",
        str(tiny_model_dir),
        "--data",
        str(records_file),
        "-o",
        str(out),
        "--max-steps",
        "3",
        *[a for s in sets for a in ("--set", s)],
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], [err[-2000:] for _, err in results]
    loser = next(err for rc, err in results if rc == 2)
    assert f"{out} is in use by another run: pid" in loser and "Traceback" not in loser
    steps = [line for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert len(steps) == 3  # one run's steps, not two interleaved
