"""Entry point of the sandbox child (stdlib only; run as ``python -I -S -B run.py``).

The harness writes one JSON payload to stdin: the limits, the candidate ``solution``, the harness's
own ``checks`` and a per-run secret. The runner reads it, stdin becomes ``/dev/null``, and it
locks itself down in layers before anything of the candidate runs (each layer reported on failure;
``strict`` makes any failure fatal):

1. namespaces: a fresh user, mount, PID, IPC, network and UTS namespace. The program is PID 1 of
   its own PID namespace (no process outside it can be named, so none can be signalled, ptraced
   or re-limited), sees a new root holding only the read roots (read-only binds) and a
   size-limited tmpfs as its home (the disk quota), has no SysV IPC shared with the host and no
   network. When the runner starts as host root the program runs as host ``nobody`` (uid 65534),
   so it owns no host file; ``PR_SET_PDEATHSIG`` ties every process of the chain to the evaluator;
2. resource limits (CPU, address space, file size, processes, open files, core dumps);
3. ``PR_SET_NO_NEW_PRIVS`` and an empty capability set;
4. Landlock: reads only below the read roots, writes only in the home, no TCP, no signals out;
5. seccomp-bpf: no fork/exec/socket/ptrace/mount/namespace/SysV IPC syscalls, signals and
   ``prlimit64`` only on itself;
6. Python-level guards: an audit hook refusing frame and object-graph introspection, ``ctypes``,
   tracing, process spawning and socket creation (sockets are refused when created, so modules
   such as ``asyncio`` and ``ssl`` import), and path checks on the file functions.

A pass is proven, not assumed: the runner runs the solution, then the checks (their ``assert``
statements compare with plain values only, see :func:`strict_asserts`), and only if both ran to
their end writes the secret to the proof descriptor. The harness counts a pass only when it reads
exactly that, so exiting early (``os._exit(0)``, a fresh ``posix`` module, the runner's own exit
function) never scores.

Exit codes: 0 completed; 1 the program raised (incl. ``SystemExit``); 3 ``MemoryError``;
2 the runner itself failed. A signal ``n`` that kills the program exits the chain with 128 + n.
"""

from __future__ import annotations

import builtins
import json
import linecache
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling modules (-I leaves them out)

from checks import strict_asserts, plain_value_checks  # noqa: E402
from guard import audit_guard, python_guard  # noqa: E402
from isolation import HOME, enter_namespaces  # noqa: E402
from kernel import apply_rlimits, die_with_parent, landlock, no_new_privs_and_drop_caps, seccomp  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_RUNNER, EXIT_OOM = 0, 1, 2, 3


def _emitter(secret: bytes, fd: int):
    write = os.write

    def emit() -> None:
        write(fd, secret)
    return emit


def _describe(exc: BaseException) -> str:
    """Type, message and the failing top-level line of the program or checks, without running the
    candidate's ``__str__`` or reading frames."""
    tb = exc.__traceback__
    tb = tb.tb_next if tb is not None else None  # the first entry is the runner's own exec call
    where = f" at line {tb.tb_lineno}" if tb is not None else ""
    return f"{type(exc).__name__}{where}: {BaseException.__str__(exc)}"


def main() -> None:
    exit_now, write = os._exit, os.write
    try:
        payload = json.loads(sys.stdin.buffer.read())
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        cfg = payload["config"]
        emit = _emitter(payload.pop("secret").encode(), cfg["proof_fd"])
        solution, checks = payload.pop("solution"), payload.pop("checks")
        die_with_parent()
        roots, home, problems = cfg["read_roots"], HOME, []
        if cfg.get("namespaces", True):
            try:
                enter_namespaces(roots, cfg["quota_bytes"], cfg["max_inodes"])
            except Exception as exc:  # noqa: BLE001 - reported; the other layers still apply
                problems.append(f"namespaces: {exc}")
        if problems or not cfg.get("namespaces", True):
            home = cfg["fallback_home"]
            os.mkdir(home, 0o700)
        apply_rlimits(cfg)
        for name, layer in (("no_new_privs", no_new_privs_and_drop_caps),
                            ("landlock", lambda: landlock(roots, home)),
                            ("seccomp", lambda: seccomp(metadata=home != HOME))):
            try:
                layer()
            except Exception as exc:  # noqa: BLE001 - reported, then the next layer still applies
                problems.append(f"{name}: {exc}")
        if problems and cfg.get("strict"):
            raise OSError("sandbox layers unavailable: " + "; ".join(problems))
        for line in problems if cfg.get("report_layers") else ():
            print(f"[sandbox] {line}", file=sys.stderr)
        os.chdir(home)
        os.environ["HOME"] = os.environ["TMPDIR"] = home
        armed = [False]
        if cfg.get("python_guard", True):
            audit_guard(armed)
            python_guard(roots, home)
        filename = os.path.join(home, "program.py")
        linecache.cache[filename] = (len(solution), None, solution.splitlines(True), filename)
        checks_code = strict_asserts(checks, "<checks>", "__unisd_operand__", "__unisd_truth__") if checks.strip() else None
        pristine_builtins = dict(builtins.__dict__)
        operand, truth = plain_value_checks()
        run, fresh_dict, builtins_module, compile_ = exec, dict, builtins, compile
        program_module = type(sys)("__main__")
        sys.modules["__main__"] = program_module  # the program's module, not the runner's
    except BaseException:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        exit_now(EXIT_RUNNER)
    status = EXIT_OK
    sys.argv = ["program.py"]
    stage = "program"
    try:
        armed[0] = True
        namespace = program_module.__dict__
        namespace["__builtins__"] = builtins_module
        run(compile_(solution, filename, "exec", dont_inherit=True, optimize=0), namespace)
        if checks_code is not None:
            stage = "checks"
            builtins_module.__dict__.clear()  # the checks see the real built-ins, whatever the program did
            builtins_module.__dict__.update(pristine_builtins)
            scope = fresh_dict(namespace)
            scope.update(__builtins__=builtins_module, __unisd_operand__=operand, __unisd_truth__=truth)
            run(checks_code, scope)
    except MemoryError:
        status = EXIT_OOM
        write(2, b"MemoryError\n")
    except SystemExit as exc:
        status = EXIT_FAILED
        write(2, f"{stage} exited early (SystemExit)\n".encode())
        del exc
    except BaseException as exc:  # noqa: BLE001
        status = EXIT_FAILED
        try:
            write(2, f"{stage} failed: {_describe(exc)}\n".encode("utf-8", "replace"))
        except BaseException:  # noqa: BLE001
            write(2, f"{stage} failed\n".encode())
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    if status == EXIT_OK:
        emit()
    exit_now(status)


if __name__ == "__main__":
    main()
