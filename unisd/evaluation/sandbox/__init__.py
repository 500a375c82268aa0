"""Run untrusted (model-written) Python programs in a locked-down subprocess.

Model output is never executed in the evaluating process. Each program runs in a fresh
``python -I -S -B`` child (standard library only) that gets everything on stdin (no file of the
host is written for it) and writes stdout/stderr to anonymous, size-limited files, of which only
the tails are returned. The child (``child/run.py``) then locks itself down: fresh user,
mount, PID, IPC, network and UTS namespaces with a minimal read-only root and a size-limited
tmpfs home, host uid ``nobody`` when started as root, resource limits, no-new-privs and no
capabilities, Landlock, seccomp, and Python-level guards (an audit hook and path checks). Every
process of the chain dies with the evaluator (``PR_SET_PDEATHSIG``) and is killed when the
wall-clock timeout passes.

A pass is proven by the harness, not assumed from the exit code: the harness's ``checks`` run
after the candidate's code, and only if both complete does the runner write a per-run secret
(given on stdin, never on disk) to a pipe; the harness counts a pass only when it reads exactly
that secret. See ``docs/evaluation.md`` (containment table) for what each layer stops.
"""

from __future__ import annotations

import functools
import glob
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Sequence

Status = Literal["passed", "failed", "timeout", "error", "oom"]
RUNNER = Path(__file__).with_name("child") / "run.py"
ALLOW_ENV = ("UNISD_ALLOW_UNSAFE_CODE", "HF_ALLOW_CODE_EVAL")  # opt in to running code without the kernel layers


class SandboxUnavailable(RuntimeError):
    """The kernel isolation layers cannot be installed here and nobody opted in to running without them."""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-program limits. ``cpu_s`` defaults to ``ceil(timeout_s) + 1``."""

    timeout_s: float = 10.0
    cpu_s: int | None = None
    memory_bytes: int = 1 << 30
    file_size_bytes: int = 8 << 20
    disk_quota_bytes: int = 64 << 20  # total size of the program's home (a tmpfs)
    max_inodes: int = 4096
    max_processes: int = 64
    max_open_files: int = 64
    tail_chars: int = 4000
    namespaces: bool = True
    strict: bool = False  # fail (status "error") when a kernel layer cannot be installed
    python_guard: bool = True  # the in-interpreter guard (off only to test the kernel layers)


@dataclass(frozen=True)
class CheckedProgram:
    """A candidate ``solution`` and the harness's ``checks`` that must run after it."""

    solution: str
    checks: str = ""

    @property
    def source(self) -> str:
        """Both, as one program (for display)."""
        return f"{self.solution.rstrip()}\n\n{self.checks}" if self.checks.strip() else self.solution


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
    """What the child may read: the standard library, system libraries and a few device files."""
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")}
    roots |= {p for p in ("/usr", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache", "/dev/null", "/dev/urandom",
                          "/dev/zero") if os.path.lexists(p)}
    return sorted(roots)


def _tail(fh, chars: int) -> str:
    try:
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


def _classify(rc: int | None, timed_out: bool, stderr: str, proven: bool) -> Status:
    # the runner's chain reports a signal n as 128 + n
    sig = -rc if rc is not None and rc < 0 else rc - 128 if rc is not None and rc > 128 else None
    if timed_out or sig in (signal.SIGXCPU, signal.SIGKILL):
        return "timeout"
    if rc == 0:
        return "passed" if proven else "failed"
    if rc == 3 or (rc == 1 and stderr.rstrip().endswith("MemoryError")):
        return "oom"
    if rc == 1 or sig == signal.SIGXFSZ:
        return "failed"
    return "error"


_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.RLock()  # re-entrant: the signal handler runs in the main thread, which may hold it
_OLD_HANDLERS: dict[int, object] = {}


def _kill_live(signum, frame) -> None:
    """SIGINT/SIGTERM in the evaluator: kill every running sandbox, then the evaluator's own handling."""
    with _LIVE_LOCK:
        for proc in list(_LIVE):
            _kill_group(proc)
    previous = _OLD_HANDLERS.get(signum)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install_signal_cleanup() -> None:
    if _OLD_HANDLERS or threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)
        if previous in (signal.SIG_IGN, None):
            continue
        _OLD_HANDLERS[signum] = previous
        signal.signal(signum, _kill_live)


@functools.lru_cache(maxsize=1)
def _sweep_stale_dirs() -> None:
    """Remove fallback home directories of evaluators that died without cleaning up."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), "unisd-sandbox-*-*")):
        m = re.search(r"unisd-sandbox-(\d+)-", path)
        if m and not _alive(int(m.group(1))):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_program(program: str | CheckedProgram, limits: SandboxLimits | None = None) -> SandboxResult:
    """Execute ``program`` in the sandbox. A :class:`CheckedProgram` passes only when its checks ran
    to their end after its solution (proven by the runner's secret); a plain string passes when it
    ran to its end."""
    limits = limits or SandboxLimits()
    program = program if isinstance(program, CheckedProgram) else CheckedProgram(program)
    _sweep_stale_dirs()
    _install_signal_cleanup()
    secret = secrets.token_hex(24)
    # the home when namespaces are off or unavailable (the runner creates it then; with namespaces
    # the home is a tmpfs that vanishes with the program, and nothing is written on the host)
    fallback = os.path.join(tempfile.gettempdir(), f"unisd-sandbox-{os.getpid()}-{secrets.token_hex(6)}")
    proof_r, proof_w = os.pipe()
    start = time.monotonic()
    proc = None
    try:
        cfg = {
            "read_roots": _read_roots(),
            "fallback_home": fallback,
            "proof_fd": proof_w,
            "cpu_s": limits.cpu_s or math.ceil(limits.timeout_s) + 1,
            "memory_bytes": limits.memory_bytes,
            "file_size_bytes": limits.file_size_bytes,
            "quota_bytes": limits.disk_quota_bytes,
            "max_inodes": limits.max_inodes,
            "max_processes": limits.max_processes,
            "max_open_files": limits.max_open_files,
            "namespaces": limits.namespaces,
            "strict": limits.strict,
            "python_guard": limits.python_guard,
            "report_layers": True,
        }
        payload = json.dumps({"config": cfg, "secret": secret, "solution": program.solution, "checks": program.checks})
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        cmd = [sys.executable, "-I", "-S", "-B", str(RUNNER)]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(cmd, cwd="/", env=env, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                        start_new_session=True, close_fds=True, pass_fds=(proof_w,))
            except OSError as exc:
                return SandboxResult("error", None, 0.0, stderr_tail=f"cannot start sandbox: {exc}")
            with _LIVE_LOCK:
                _LIVE.add(proc)
            os.close(proof_w)
            proof_w = -1
            timed_out = False
            try:
                try:
                    proc.stdin.write(payload.encode())
                    proc.stdin.close()
                except (BrokenPipeError, OSError):
                    pass
                rc = proc.wait(timeout=limits.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
                rc = proc.wait()
            _kill_group(proc)  # nothing may outlive the program
            proof = _read_proof(proof_r, len(secret))
            stderr = _tail(err, limits.tail_chars)
            status = _classify(rc, timed_out, stderr, proof == secret.encode())
            problems = [ln[len("[sandbox] "):] for ln in stderr.splitlines() if ln.startswith("[sandbox] ")]
            return SandboxResult(status, rc, time.monotonic() - start, _tail(out, limits.tail_chars), stderr,
                                 {"layer_problems": problems, "proven": proof == secret.encode()})
    finally:
        if proc is not None:
            _kill_group(proc)
            with _LIVE_LOCK:
                _LIVE.discard(proc)
        for fd in (proof_r, proof_w):
            if fd >= 0:
                os.close(fd)
        shutil.rmtree(fallback, ignore_errors=True)


def _read_proof(fd: int, size: int) -> bytes:
    """What the runner wrote to the proof pipe (at most a little more than the secret)."""
    os.set_blocking(fd, False)
    data = b""
    try:
        while len(data) <= size:
            chunk = os.read(fd, size + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except BlockingIOError:
        pass
    return data


def run_many(programs: Sequence[str | CheckedProgram], limits: SandboxLimits | None = None,
             max_workers: int = 2) -> list[SandboxResult]:
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


@functools.lru_cache(maxsize=1)
def isolation_report() -> dict:
    """Which layers are active on this host (runs a tiny probe program once per process)."""
    res = run_program(_PROBE, SandboxLimits(timeout_s=20))
    problems = res.extra.get("layer_problems", [])
    layers = ["namespaces", "no_new_privs", "landlock", "seccomp"]
    active = [name for name in layers if not any(p.startswith(name + ":") for p in problems)]
    return {"status": res.status, "active": active, "layer_problems": problems,
            "probe": res.stdout_tail.strip().splitlines()}


def unsafe_code_allowed() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes") for name in ALLOW_ENV)


def require_isolation() -> dict:
    """The isolation report, or :class:`SandboxUnavailable` when a kernel layer is missing and
    nobody opted in (``UNISD_ALLOW_UNSAFE_CODE=1`` or lm-eval's ``HF_ALLOW_CODE_EVAL=1``)."""
    report = isolation_report()
    if (report["status"] != "passed" or report["layer_problems"]) and not unsafe_code_allowed():
        missing = "; ".join(report["layer_problems"]) or f"probe status {report['status']}"
        raise SandboxUnavailable(
            "refusing to execute model-written code: the sandbox's kernel layers are not all available "
            f"here ({missing}). Run where user namespaces, Landlock and seccomp are permitted, or set "
            "UNISD_ALLOW_UNSAFE_CODE=1 (or HF_ALLOW_CODE_EVAL=1) to run with the layers that are.")
    return report
