"""Python-level guards of the sandbox child: an audit hook (frame and object-graph introspection,
tracing, ctypes, process and socket creation) and path checks on the file functions. Best effort:
the kernel layers are the boundary."""

from __future__ import annotations

import builtins
import io
import os
import signal
import subprocess
import sys

# audit events refused once the candidate runs: frame and object-graph introspection (which could
# reach the runner's state or its nonce), tracing, ctypes, process creation, sockets
_DENIED_EVENTS = frozenset(
    {
        "sys._getframe",
        "sys._current_frames",
        "sys._current_exceptions",
        "sys.settrace",
        "sys.setprofile",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "os.fork",
        "os.forkpty",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.system",
        "os.kill",
        "os.killpg",
        "os.startfile",
        "pty.spawn",
        "subprocess.Popen",
        "socket.__new__",
        "socket.socketpair",
        "socket.fromfd",
        "socket.bind",
        "socket.connect",
        "socket.sendto",
        "socket.sendmsg",
        "cpython.PyInterpreterState_Clear",
        "cpython._PySys_ClearAuditHooks",
        "sys.remote_exec",
    }
)
_DENIED_ATTRS = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
_DENIED_IMPORTS = frozenset({"ctypes", "_ctypes", "_posixsubprocess", "pty", "multiprocessing", "_multiprocessing"})


def audit_guard(armed: list) -> None:
    """Install the audit hook; it refuses only while ``armed[0]`` is true (hooks cannot be removed)."""

    def hook(event: str, args: tuple) -> None:
        if not armed[0]:
            return
        if event in _DENIED_EVENTS or event.startswith("ctypes."):
            # ValueError: what the standard library expects from a frame lookup that fails
            raise (ValueError if event == "sys._getframe" else PermissionError)(f"{event} is disabled in the sandbox")
        if event == "object.__getattr__" and len(args) > 1 and args[1] in _DENIED_ATTRS:
            raise PermissionError(f"reading {args[1]} is disabled in the sandbox")
        if event == "import" and args and str(args[0]).split(".")[0] in _DENIED_IMPORTS:
            raise PermissionError(f"importing {args[0]} is disabled in the sandbox")

    sys.addaudithook(hook)


def python_guard(read_roots: list[str], home: str) -> None:
    """Best-effort in-interpreter guard; the kernel layers above are the real boundary."""
    import shutil

    real = os.path.realpath
    home_r = real(home)
    read_r = [real(r) for r in read_roots] + [home_r, "/dev/null", "/dev/urandom"]

    def inside(path, roots) -> bool:
        if isinstance(path, int):
            return True
        p = real(os.fsdecode(os.fspath(path)))
        return any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots)

    def blocked(name: str):
        def refuse(*_a, **_k):
            raise PermissionError(f"{name} is disabled in the sandbox")

        return refuse

    def home_only(name: str, fn, nargs: int = 1):
        def guarded(*args, **kwargs):
            if (
                kwargs.get("dir_fd") is not None
                or kwargs.get("src_dir_fd") is not None
                or kwargs.get("dst_dir_fd") is not None
            ):
                raise PermissionError(f"{name} with dir_fd is disabled in the sandbox")
            if not all(inside(a, [home_r]) for a in args[:nargs]):
                raise PermissionError(f"{name} outside the sandbox directory")
            return fn(*args, **kwargs)

        return guarded

    for mod in (os, sys.modules.get("posix")):
        if mod is None:
            continue
        for name in (
            "system",
            "popen",
            "fork",
            "forkpty",
            "vfork",
            "kill",
            "killpg",
            "abort",
            "execv",
            "execve",
            "execl",
            "execle",
            "execlp",
            "execlpe",
            "execvp",
            "execvpe",
            "spawnl",
            "spawnle",
            "spawnlp",
            "spawnlpe",
            "spawnv",
            "spawnve",
            "spawnvp",
            "spawnvpe",
            "posix_spawn",
            "posix_spawnp",
            "setuid",
            "setgid",
            "chroot",
            "putenv",
            "unsetenv",
            "pidfd_open",
        ):
            if hasattr(mod, name):
                setattr(mod, name, blocked(f"os.{name}"))
        for name, n in (
            ("remove", 1),
            ("unlink", 1),
            ("rmdir", 1),
            ("removedirs", 1),
            ("rename", 2),
            ("replace", 2),
            ("renames", 2),
            ("link", 2),
            ("symlink", 2),
            ("truncate", 1),
            ("chmod", 1),
            ("chown", 1),
            ("lchown", 1),
            ("mkdir", 1),
            ("makedirs", 1),
            ("chdir", 1),
            ("utime", 1),
            ("setxattr", 1),
            ("removexattr", 1),
            ("mkfifo", 1),
            ("mknod", 1),
        ):
            if hasattr(mod, name):
                setattr(mod, name, home_only(f"os.{name}", getattr(mod, name), n))
    for name in ("rmtree", "move", "chown", "copy", "copy2", "copyfile", "copytree"):
        n = 1 if name in ("rmtree", "chown") else 2
        setattr(shutil, name, home_only(f"shutil.{name}", getattr(shutil, name), n))
    for name in ("Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"):
        setattr(subprocess, name, blocked(f"subprocess.{name}"))
    # the socket module keeps its classes (asyncio, ssl, http.client subclass them at import);
    # creating a socket is refused by the audit hook (and by seccomp)

    real_open, real_os_open = builtins.open, os.open

    def checked_open(file, mode="r", *args, **kwargs):
        writing = any(c in mode for c in "wax+")
        if not inside(file, [home_r, "/dev/null"] if writing else read_r):
            raise PermissionError(f"open({file!r}) outside the sandbox")
        return real_open(file, mode, *args, **kwargs)

    def checked_os_open(path, flags, *args, **kwargs):
        writing = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
        if not inside(path, [home_r, "/dev/null"] if writing else read_r):
            raise PermissionError(f"os.open({path!r}) outside the sandbox")
        return real_os_open(path, flags, *args, **kwargs)

    builtins.open = io.open = checked_open
    os.open = checked_os_open
    import _signal

    real_signal = _signal.signal

    def frameless_signal(signum, handler):  # a handler's frame argument would reach the runner
        if callable(handler):
            inner = handler
            handler = lambda n, _frame: inner(n, None)  # noqa: E731
        return real_signal(signum, handler)

    signal.signal = _signal.signal = frameless_signal
    for name in _DENIED_IMPORTS:
        sys.modules[name] = None  # type: ignore[assignment]
