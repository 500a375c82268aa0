"""Run untrusted (model-written) Python programs in a locked-down subprocess.

Model output is never executed in the evaluating process. Each program runs in a fresh
``python -I -S -B`` child (standard library only) with:

- a throw-away temporary directory as working directory, ``HOME`` and ``TMPDIR``;
- a scrubbed environment;
- resource limits (CPU seconds, address space, file size, processes, open files, no core dumps);
- a wall-clock timeout that kills the child's whole process group;
- no network: a fresh network namespace (``unshare -n``, or ``unshare -rn`` without root) when the
  host allows it, plus socket/TCP blocking inside the child;
- in-child kernel layers (no-new-privs + dropped capabilities, Landlock filesystem rules,
  seccomp process/socket filter) and a Python-level guard; see ``_sandbox_runner.py``;
- stdout/stderr written to size-limited files, of which only the tails are returned.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Sequence

Status = Literal["passed", "failed", "timeout", "error", "oom"]
RUNNER = Path(__file__).with_name("_sandbox_runner.py")


@dataclass(frozen=True)
class SandboxLimits:
    """Per-program limits. ``cpu_s`` defaults to ``ceil(timeout_s) + 1``."""

    timeout_s: float = 10.0
    cpu_s: int | None = None
    memory_bytes: int = 1 << 30
    file_size_bytes: int = 8 << 20
    max_processes: int = 64
    max_open_files: int = 64
    tail_chars: int = 4000
    network_namespace: bool = True
    strict: bool = False  # fail (status "error") when a kernel layer cannot be installed
    python_guard: bool = True  # the in-interpreter guard (off only to test the kernel layers)


@dataclass
class SandboxResult:
    """Outcome of one program."""

    status: Status
    returncode: int | None
    duration_s: float
    stdout_tail: str = ""
    stderr_tail: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def _read_roots() -> list[str]:
    """Directories the child may read: the standard library and system libraries."""
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")}
    roots |= {p for p in ("/usr", "/lib", "/lib64", "/lib32", "/dev/urandom", "/dev/zero") if os.path.exists(p)}
    return sorted(os.path.realpath(r) for r in roots)


@functools.lru_cache(maxsize=1)
def _netns_prefix() -> tuple[str, ...]:
    """The ``unshare`` prefix that works on this host, or ``()``."""
    exe = shutil.which("unshare")
    if not exe or not sys.platform.startswith("linux"):
        return ()
    for prefix in ((exe, "-n"), (exe, "-r", "-n")):
        try:
            ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        if ok:
            return prefix
    return ()


def _tail(path: Path, chars: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 4 * chars))
            return fh.read().decode("utf-8", "replace")[-chars:]
    except OSError:
        return ""


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _classify(rc: int | None, timed_out: bool, stderr: str) -> Status:
    if timed_out or rc in (-signal.SIGXCPU, -signal.SIGKILL):
        return "timeout"
    if rc == 0:
        return "passed"
    if rc == 3 or (rc == 1 and stderr.rstrip().endswith("MemoryError")):
        return "oom"
    if rc == 1:
        return "failed"
    if rc == -signal.SIGXFSZ:
        return "failed"
    return "error"


def run_program(program: str, limits: SandboxLimits | None = None) -> SandboxResult:
    """Execute ``program`` (code and its tests, one string) in the sandbox."""
    limits = limits or SandboxLimits()
    work = Path(tempfile.mkdtemp(prefix="unisd-sandbox-"))
    home = work / "home"
    home.mkdir(mode=0o700)
    start = time.monotonic()
    try:
        (work / "program.py").write_text(program, encoding="utf-8")
        cfg = {
            "program_path": str(work / "program.py"),
            "home": str(home),
            "read_roots": _read_roots(),
            "cpu_s": limits.cpu_s or math.ceil(limits.timeout_s) + 1,
            "memory_bytes": limits.memory_bytes,
            "file_size_bytes": limits.file_size_bytes,
            "max_processes": limits.max_processes,
            "max_open_files": limits.max_open_files,
            "strict": limits.strict,
            "python_guard": limits.python_guard,
            "report_layers": True,
        }
        (work / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(home), "LANG": "C.UTF-8",
               "PYTHONHASHSEED": "0"}
        prefix = _netns_prefix() if limits.network_namespace else ()
        cmd = [*prefix, sys.executable, "-I", "-S", "-B", str(RUNNER), str(work / "config.json")]
        with open(work / "stdout", "wb") as out, open(work / "stderr", "wb") as err:
            try:
                proc = subprocess.Popen(cmd, cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=err, start_new_session=True, close_fds=True)
            except OSError as exc:
                return SandboxResult("error", None, 0.0, stderr_tail=f"cannot start sandbox: {exc}")
            timed_out = False
            try:
                rc = proc.wait(timeout=limits.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
                rc = proc.wait()
            _kill_group(proc)  # nothing may outlive the program
        stderr = _tail(work / "stderr", limits.tail_chars)
        return SandboxResult(_classify(rc, timed_out, stderr), rc, time.monotonic() - start,
                             _tail(work / "stdout", limits.tail_chars), stderr,
                             {"netns": bool(prefix)})
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_many(programs: Sequence[str], limits: SandboxLimits | None = None, max_workers: int = 2) -> list[SandboxResult]:
    """Run several programs with a small thread pool (each one in its own subprocess)."""
    if not programs:
        return []
    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        return list(pool.map(lambda p: run_program(p, limits), programs))


_PROBE = """
import os, socket
for name, fn in [("fork", os.fork), ("socket", lambda: socket.socket())]:
    try:
        fn()
        print(name, "allowed")
    except Exception:
        print(name, "blocked")
"""


def isolation_report() -> dict:
    """Which layers are active on this host (runs a tiny probe program)."""
    res = run_program(_PROBE, SandboxLimits(timeout_s=20))
    problems = [ln[len("[sandbox] "):] for ln in res.stderr_tail.splitlines() if ln.startswith("[sandbox] ")]
    return {"status": res.status, "netns": bool(_netns_prefix()), "layer_problems": problems,
            "probe": res.stdout_tail.strip().splitlines()}
