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

The verdict is not the child's: the harness's ``checks`` run in this interpreter (``judge.py``)
and reach the candidate only through requests whose arguments and results cross as plain data,
so nothing the candidate can patch takes part in them. See ``docs/evaluation.md`` (threat model
and containment table).
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
from typing import Literal
from collections.abc import Sequence

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
    """A candidate ``solution`` (run in the sandbox) and the harness's ``checks`` (run by the judge
    outside it, after the solution ran to its end). ``trusted``: the task's own code the checks need
    (imports, helpers), run by the judge before them; ``calls``: names the program must define,
    always taken from it (the entry point, even where ``trusted`` has a stub of it)."""

    solution: str
    checks: str = ""
    trusted: str = ""
    calls: tuple[str, ...] = ()

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
    roots |= {
        p
        for p in ("/usr", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache", "/dev/null", "/dev/urandom", "/dev/zero")
        if os.path.lexists(p)
    }
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


def _classify(rc: int | None, timed_out: bool, stderr: str) -> Status:
    """The status of a program that ended before the judge's verdict (or had no checks)."""
    # the runner's chain reports a signal n as 128 + n
    sig = -rc if rc is not None and rc < 0 else rc - 128 if rc is not None and rc > 128 else None
    if timed_out or sig in (signal.SIGXCPU, signal.SIGKILL):
        return "timeout"
    if rc == 0:
        return "failed"  # ended without saying the solution ran to its end
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
    """Execute ``program`` in the sandbox. A :class:`CheckedProgram` passes only when its solution ran
    to its end and then the judge ran every check to its end (``extra["proven"]``); a plain string
    (or one without checks) passes when its solution ran to its end."""
    from unisd.sandbox.judge import CandidateTimeout, Channel, ChannelClosed, run_checks

    limits = limits or SandboxLimits()
    program = program if isinstance(program, CheckedProgram) else CheckedProgram(program)
    _sweep_stale_dirs()
    _install_signal_cleanup()
    # the home when namespaces are off or unavailable (the runner creates it then; with namespaces
    # the home is a tmpfs that vanishes with the program, and nothing is written on the host)
    fallback = os.path.join(tempfile.gettempdir(), f"unisd-sandbox-{os.getpid()}-{secrets.token_hex(6)}")
    call_r, call_w = os.pipe()
    reply_r, reply_w = os.pipe()
    fds = {"call_r": call_r, "call_w": call_w, "reply_r": reply_r, "reply_w": reply_w}
    start = time.monotonic()
    proc = None
    try:
        cfg = {
            "read_roots": _read_roots(),
            "fallback_home": fallback,
            "call_fd": call_r,
            "reply_fd": reply_w,
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
        nonce = secrets.token_hex(16)
        payload = json.dumps({"config": cfg, "solution": program.solution, "nonce": nonce})
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        cmd = [sys.executable, "-I", "-S", "-B", str(RUNNER)]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(
                    cmd,
                    cwd="/",
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    close_fds=True,
                    pass_fds=(call_r, reply_w),
                )
            except OSError as exc:
                return SandboxResult("error", None, 0.0, stderr_tail=f"cannot start sandbox: {exc}")
            with _LIVE_LOCK:
                _LIVE.add(proc)
            for end in ("call_r", "reply_w"):  # the child's ends
                os.close(fds.pop(end))
            assert proc.stdin is not None  # stdin=PIPE
            try:
                proc.stdin.write(payload.encode())
                proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            channel = Channel(fds["call_w"], fds["reply_r"], start + limits.timeout_s, nonce)
            verdict: Status | None = None
            timed_out, failure = False, ""
            try:
                channel.ready()
                if program.checks.strip():
                    run_checks(channel, program.trusted, program.checks, program.calls)
                verdict = "passed"
            except CandidateTimeout:
                timed_out = True
            except ChannelClosed as exc:
                failure = str(exc)
            except Exception as exc:  # noqa: BLE001 - a failed check: an assert, or an error of the program's answers
                verdict, failure = ("oom" if channel.out_of_memory else "failed"), _check_failure(exc)
            os.close(fds.pop("call_w"))  # the child's server ends; it exits
            try:
                rc = proc.wait(timeout=0 if timed_out else max(0.5, start + limits.timeout_s - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = verdict is None or timed_out
                _kill_group(proc)
                rc = proc.wait()
            _kill_group(proc)  # nothing may outlive the program
            stderr = _tail(err, limits.tail_chars)
            if failure:
                stderr = (stderr + ("\n" if stderr else "") + f"checks failed: {failure}")[-limits.tail_chars :]
            status = verdict or _classify(rc, timed_out, stderr)
            problems = [ln[len("[sandbox] ") :] for ln in stderr.splitlines() if ln.startswith("[sandbox] ")]
            return SandboxResult(
                status,
                rc,
                time.monotonic() - start,
                _tail(out, limits.tail_chars),
                stderr,
                {"layer_problems": problems, "proven": verdict == "passed"},
            )
    finally:
        if proc is not None:
            _kill_group(proc)
            with _LIVE_LOCK:
                _LIVE.discard(proc)
        for fd in fds.values():
            os.close(fd)
        shutil.rmtree(fallback, ignore_errors=True)


def _check_failure(exc: BaseException) -> str:
    """Type, message and line of the check that failed."""
    tb, line = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in ("<checks>", "<task code>"):
            line = tb.tb_lineno
        tb = tb.tb_next
    return f"{type(exc).__name__}" + (f" at line {line}" if line else "") + (f": {exc}" if str(exc) else "")


def run_many(
    programs: Sequence[str | CheckedProgram], limits: SandboxLimits | None = None, max_workers: int = 2
) -> list[SandboxResult]:
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
    return {
        "status": res.status,
        "active": active,
        "layer_problems": problems,
        "probe": res.stdout_tail.strip().splitlines(),
    }


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
            "UNISD_ALLOW_UNSAFE_CODE=1 (or HF_ALLOW_CODE_EVAL=1) to run with the layers that are."
        )
    return report
