"""Containment cases for the code-execution sandbox."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from unisd.sandbox import SandboxLimits, isolation_report, run_many, run_program

FAST = SandboxLimits(timeout_s=3)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def kernel_layers() -> bool:
    report = isolation_report()
    return report["status"] == "passed" and not report["layer_problems"]


def test_correct_program_passes() -> None:
    res = run_program("def add(a, b):\n    return a + b\nassert add(2, 3) == 5\nprint('ok')", FAST)
    assert res.passed and res.status == "passed" and res.stdout_tail == "ok\n"


def test_failing_assert_fails() -> None:
    res = run_program("assert 1 + 1 == 3", FAST)
    assert res.status == "failed" and "AssertionError" in res.stderr_tail


def test_syntax_error_and_early_exit_fail() -> None:
    assert run_program("def f(:\n  pass", FAST).status == "failed"
    res = run_program("import sys\nsys.exit(0)\nassert False", FAST)
    assert res.status == "failed" and "exited early" in res.stderr_tail


def test_infinite_loop_times_out() -> None:
    res = run_program("while True:\n    pass", SandboxLimits(timeout_s=1))
    assert res.status == "timeout" and res.duration_s < 5


def test_sleep_times_out() -> None:
    res = run_program("import time\ntime.sleep(60)", SandboxLimits(timeout_s=1))
    assert res.status == "timeout"


def test_memory_bomb_is_contained() -> None:
    res = run_program("x = bytearray(8 * 1024 ** 3)", FAST)
    assert res.status == "oom" and not res.passed


@pytest.mark.parametrize("guard", [True, False])
def test_fork_bomb_is_contained(guard: bool, kernel_layers: bool) -> None:
    if not guard and not kernel_layers:
        pytest.skip("kernel layers unavailable on this host")
    res = run_program("import os\nwhile True:\n    os.fork()", SandboxLimits(timeout_s=3, python_guard=guard))
    assert res.status == "failed" and "PermissionError" in res.stderr_tail


def test_huge_output_is_capped() -> None:
    limits = SandboxLimits(timeout_s=5, file_size_bytes=1 << 20, tail_chars=500)
    res = run_program("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", limits)
    assert res.status == "failed" and len(res.stdout_tail) <= 500 and "File too large" in res.stderr_tail


@pytest.mark.parametrize("guard", [True, False])
def test_process_spawning_is_blocked(guard: bool, kernel_layers: bool, tmp_path: Path) -> None:
    if not guard and not kernel_layers:
        pytest.skip("kernel layers unavailable on this host")
    marker = tmp_path / "spawned"
    prog = f"import os, subprocess\ntry:\n    os.system('touch {marker}')\nexcept PermissionError:\n    pass\nsubprocess.run(['true'])"
    res = run_program(prog, SandboxLimits(timeout_s=3, python_guard=guard))
    assert res.status == "failed" and not marker.exists()


@pytest.mark.parametrize("guard", [True, False])
def test_writes_outside_sandbox_are_blocked(guard: bool, kernel_layers: bool, tmp_path: Path) -> None:
    if not guard and not kernel_layers:
        pytest.skip("kernel layers unavailable on this host")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    for prog in (
        f"open({str(victim)!r}, 'w').write('gone')",
        f"import os\nos.remove({str(victim)!r})",
        f"import shutil\nshutil.rmtree({str(tmp_path)!r})",
        f"open({str(tmp_path / 'new.txt')!r}, 'w')",
    ):
        res = run_program(prog, SandboxLimits(timeout_s=3, python_guard=guard))
        assert res.status == "failed", prog
    assert victim.read_text() == "keep me" and not (tmp_path / "new.txt").exists()


@pytest.mark.parametrize("guard", [True, False])
def test_caller_files_are_not_readable(guard: bool, kernel_layers: bool, tmp_path: Path) -> None:
    if not guard and not kernel_layers:
        pytest.skip("kernel layers unavailable on this host")
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    for target in (secret, REPO / "pyproject.toml"):
        res = run_program(
            f"import io\nprint(io.FileIO({str(target)!r}).read())", SandboxLimits(timeout_s=3, python_guard=guard)
        )
        # refused (Landlock, guard) or simply not there (the program's root holds only the read roots)
        assert res.status == "failed" and "TOPSECRET" not in res.stdout_tail
        assert "PermissionError" in res.stderr_tail or "FileNotFoundError" in res.stderr_tail


@pytest.mark.parametrize("guard", [True, False])
def test_network_is_blocked(guard: bool, kernel_layers: bool) -> None:
    if not guard and not kernel_layers:
        pytest.skip("kernel layers unavailable on this host")
    res = run_program(
        "import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 80))",
        SandboxLimits(timeout_s=3, python_guard=guard),
    )
    assert res.status == "failed" and "PermissionError" in res.stderr_tail


def test_signals_to_other_processes_are_blocked() -> None:
    res = run_program(f"import os\nos.kill({os.getpid()}, 9)", FAST)
    assert res.status == "failed"


def test_stdlib_threads_and_home_dir_work() -> None:
    prog = (
        "import collections, heapq, json, math, random, re, tempfile, threading\n"
        "open('a.txt', 'w').write('hi')\nassert open('a.txt').read() == 'hi'\n"
        "with tempfile.TemporaryDirectory() as d:\n    pass\n"
        "box = []\nt = threading.Thread(target=lambda: box.append(1))\nt.start(); t.join()\nassert box == [1]\n"
    )
    assert run_program(prog, FAST).passed


def test_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNISD_SECRET_TOKEN", "abc123")
    res = run_program("import os\nprint(sorted(os.environ))\nassert 'UNISD_SECRET_TOKEN' not in os.environ", FAST)
    assert res.passed and "UNISD_SECRET_TOKEN" not in res.stdout_tail


def test_run_many_keeps_order() -> None:
    progs = ["assert True", "assert False", "print('x')"]
    assert [r.status for r in run_many(progs, FAST, max_workers=2)] == ["passed", "failed", "passed"]


def test_the_signal_cleanup_cannot_deadlock_on_its_own_lock():
    """SIGINT/SIGTERM may arrive while the main thread holds the registry lock of live sandboxes
    (adding or removing one); the handler runs in that same thread, so the lock must be re-entrant."""
    import subprocess
    import sys

    code = (
        "import signal, unisd.sandbox as S\n"
        "with S._LIVE_LOCK:\n"
        "    S._kill_live(signal.SIGUSR1, None)\n"
        "print('returned')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "returned", out.stderr
