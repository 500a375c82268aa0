"""SIGTERM saves a checkpoint and exits cleanly; bad records are reported or skipped into rejects."""

import json
import signal
import subprocess
import sys
import time

import pytest


def _cmd(tiny_model_dir, data, out, *extra):
    sets = [
        f"model.name_or_path={tiny_model_dir}",
        "generation.max_new_tokens=8",
        "training.batch_size=2",
        "training.grad_accum=2",
        "lora.r=4",
        "checkpoint.every_steps=100",
        "logging.progress_bar=false",
    ]
    argv = [
        sys.executable,
        "-m",
        "unisd.cli.main",
        "train",
        "--recipe",
        "vanilla",
        "--output-dir",
        str(out),
        "--data",
        str(data),
    ]
    for s in sets:
        argv += ["--set", s]
    return argv + list(extra)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_checkpoints_and_exits_cleanly_then_resumes(sig, tiny_model_dir, records_file, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _cmd(tiny_model_dir, records_file, out, "--max-steps", "50"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.time() + 120
    while not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text().strip()):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    ckpts = sorted((out / "checkpoints").glob("step-*"))
    assert ckpts, "no checkpoint written on signal"
    step = int(ckpts[-1].name.split("-")[1])
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == step
    res = subprocess.run(
        _cmd(tiny_model_dir, records_file, out, "--max-steps", str(step + 1), "--resume", "auto"),
        capture_output=True,
        timeout=300,
    )
    # another --max-steps changes no state: the run continues from its checkpoint to the new length
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, step + 2))
    # a field that changes the state is still refused, naming --allow-recipe-change
    res = subprocess.run(
        _cmd(
            tiny_model_dir, records_file, out, "--max-steps", str(step + 2), "--resume", "auto", "--set", "optim.lr=0.5"
        ),
        capture_output=True,
        timeout=300,
    )
    assert res.returncode == 2 and b"recipe differs" in res.stderr and b"--allow-recipe-change" in res.stderr


def _bad_file(tmp_path, records_file):
    lines = records_file.read_text().splitlines()
    bad = (
        lines[:6]
        + [
            '{"id": "broken", "prompt": ',
            json.dumps({**json.loads(lines[0]), "id": "add-1"}),
            json.dumps({**json.loads(lines[0]), "id": "x", "answer": ""}),
        ]
        + lines[6:]
    )
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(bad) + "\n")
    return path


def test_bad_record_stops_with_file_line_and_field(tiny_model_dir, records_file, tmp_path):
    path = _bad_file(tmp_path, records_file)
    res = subprocess.run(
        _cmd(tiny_model_dir, path, tmp_path / "run", "--max-steps", "1"), capture_output=True, timeout=300
    )
    assert res.returncode == 2
    assert f"{path}, line 7" in res.stderr.decode() and "Traceback" not in res.stderr.decode()


def test_bad_records_skipped_into_rejects_file(tiny_model_dir, records_file, tmp_path):
    path = _bad_file(tmp_path, records_file)
    out = tmp_path / "run"
    res = subprocess.run(
        _cmd(tiny_model_dir, path, out, "--max-steps", "1", "--on-bad-record", "skip"), capture_output=True, timeout=300
    )
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    rejects = [json.loads(ln) for ln in (out / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == 3
    assert {r["field"] for r in rejects} >= {"answer", "id"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["records_loaded"] == 24  # every good record kept
