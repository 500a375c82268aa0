"""Child side of :mod:`unisd.evaluation.sandbox` (stdlib only; run as ``python -I -S -B this.py CONFIG``).

The runner reads its JSON config and the program, then locks itself down before executing the
program in a fresh namespace. Layers, each best effort and reported on failure:

1. resource limits (CPU, address space, file size, processes, open files, core dumps);
2. ``PR_SET_NO_NEW_PRIVS`` and an empty capability set (root loses its privileges);
3. Landlock (Linux ≥ 5.13): reads only below the allowed roots, writes only in the sandbox home,
   no TCP bind/connect, no signals or abstract sockets outside the sandbox (ABI ≥ 6);
4. seccomp-bpf: no fork/vfork/execve/clone-without-CLONE_THREAD, no socket(), no ptrace or
   other process tampering, no namespace/mount/module/key syscalls, kill only of itself;
5. Python-level guards (the "reliability guard" idea): the os/posix/subprocess/socket/shutil
   functions that spawn processes, signal, open sockets or touch files outside the home raise
   ``PermissionError``; ``ctypes`` cannot be imported.

Exit codes: 0 program completed; 1 the program raised (incl. ``SystemExit``); 3 ``MemoryError``;
2 the runner itself failed.
"""

from __future__ import annotations

import builtins
import io
import json
import linecache
import os
import platform
import resource
import socket
import subprocess
import sys
import traceback

EXIT_OK, EXIT_FAILED, EXIT_RUNNER, EXIT_OOM = 0, 1, 2, 3

# ---------------------------------------------------------------------------------- limits


def apply_rlimits(cfg: dict) -> None:
    """Set hard = soft limits so the program cannot raise them again."""
    pairs = [
        (resource.RLIMIT_CPU, cfg["cpu_s"]),
        (resource.RLIMIT_AS, cfg["memory_bytes"]),
        (resource.RLIMIT_FSIZE, cfg["file_size_bytes"]),
        (resource.RLIMIT_NOFILE, cfg["max_open_files"]),
        (resource.RLIMIT_CORE, 0),
    ]
    if hasattr(resource, "RLIMIT_NPROC"):
        pairs.append((resource.RLIMIT_NPROC, cfg["max_processes"]))
    for which, value in pairs:
        if value is None:
            continue
        _soft, hard = resource.getrlimit(which)
        value = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
        resource.setrlimit(which, (value, value))


# ---------------------------------------------------------------------------------- kernel layers

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2

_ARCH = {  # machine → (AUDIT_ARCH, syscall numbers)
    "x86_64": (0xC000003E, {
        "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "clone3": 435,
        "socket": 41, "kill": 62, "tkill": 200, "tgkill": 234, "ptrace": 101,
        "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_open": 434, "pidfd_getfd": 438,
        "pidfd_send_signal": 424, "io_uring_setup": 425, "unshare": 272, "setns": 308,
        "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "bpf": 321,
        "perf_event_open": 298, "keyctl": 250, "add_key": 248, "request_key": 249,
        "kexec_load": 246, "init_module": 175, "finit_module": 313, "delete_module": 176,
        "reboot": 169, "userfaultfd": 323, "personality": 135, "kcmp": 312,
        "open_by_handle_at": 304, "mknod": 133, "mknodat": 259, "capset": 126,
    }),
    "aarch64": (0xC00000B7, {
        "clone": 220, "execve": 221, "execveat": 281, "clone3": 435, "socket": 198,
        "kill": 129, "tkill": 130, "tgkill": 131, "ptrace": 117, "process_vm_readv": 270,
        "process_vm_writev": 271, "pidfd_open": 434, "pidfd_getfd": 438, "pidfd_send_signal": 424,
        "io_uring_setup": 425, "unshare": 97, "setns": 268, "mount": 40, "umount2": 39,
        "pivot_root": 41, "chroot": 51, "bpf": 280, "perf_event_open": 241, "keyctl": 219,
        "add_key": 217, "request_key": 218, "kexec_load": 104, "init_module": 105,
        "finit_module": 273, "delete_module": 106, "reboot": 142, "userfaultfd": 282,
        "personality": 92, "kcmp": 272, "open_by_handle_at": 265, "mknodat": 33, "capset": 91,
    }),
}


def _libc():
    import ctypes

    return ctypes, ctypes.CDLL(None, use_errno=True)


def _errmsg(ctypes) -> str:
    return os.strerror(ctypes.get_errno())


def no_new_privs_and_drop_caps() -> None:
    ctypes, libc = _libc()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(f"prctl(NO_NEW_PRIVS): {_errmsg(ctypes)}")

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(f"capset: {_errmsg(ctypes)}")


# Landlock (include/uapi/linux/landlock.h)
_LL_FS_ABI1 = (1 << 13) - 1  # execute … make_sym
_LL_REFER, _LL_TRUNCATE, _LL_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_LL_EXECUTE, _LL_WRITE_FILE, _LL_READ_FILE, _LL_READ_DIR = 1, 2, 4, 8
_LL_NET_ALL = 1 | 2  # bind_tcp | connect_tcp
_LL_SCOPE_ALL = 1 | 2  # abstract unix socket | signal
_SYS_LL_CREATE, _SYS_LL_ADD_RULE, _SYS_LL_RESTRICT = 444, 445, 446


def landlock(read_roots: list[str], home: str) -> int:
    """Restrict the filesystem to ``read_roots`` (read) and ``home`` (full); returns the ABI."""
    ctypes, libc = _libc()
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(_SYS_LL_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        raise OSError(f"landlock unavailable: {_errmsg(ctypes)}")
    fs = _LL_FS_ABI1 | (_LL_REFER if abi >= 2 else 0) | (_LL_TRUNCATE if abi >= 3 else 0)
    fs |= _LL_IOCTL_DEV if abi >= 5 else 0
    file_rights = _LL_EXECUTE | _LL_WRITE_FILE | _LL_READ_FILE | (fs & (_LL_TRUNCATE | _LL_IOCTL_DEV))

    class Attr(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    attr = Attr(fs, _LL_NET_ALL if abi >= 4 else 0, _LL_SCOPE_ALL if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    rfd = libc.syscall(_SYS_LL_CREATE, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if rfd < 0:
        raise OSError(f"landlock_create_ruleset: {_errmsg(ctypes)}")

    def allow(path: str, rights: int) -> None:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return
        try:
            if not os.path.isdir(path):
                rights &= file_rights
            rule = PathBeneath(rights & fs, fd)
            if libc.syscall(_SYS_LL_ADD_RULE, ctypes.c_int(rfd), ctypes.c_int(1), ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                raise OSError(f"landlock_add_rule({path}): {_errmsg(ctypes)}")
        finally:
            os.close(fd)

    try:
        for root in read_roots:
            allow(root, _LL_READ_FILE | _LL_READ_DIR)
        allow("/dev/null", _LL_READ_FILE | _LL_WRITE_FILE | _LL_TRUNCATE)
        allow(home, fs)
        if libc.syscall(_SYS_LL_RESTRICT, ctypes.c_int(rfd), ctypes.c_uint32(0)) != 0:
            raise OSError(f"landlock_restrict_self: {_errmsg(ctypes)}")
    finally:
        os.close(rfd)
    return int(abi)


def seccomp() -> None:
    """Install a deny-list seccomp-bpf filter (see module docstring)."""
    import errno

    ctypes, libc = _libc()
    machine = platform.machine()
    if machine not in _ARCH:
        raise OSError(f"seccomp: no syscall table for {machine}")
    audit_arch, nr = _ARCH[machine]
    ld, jeq, jset, jge, ret = 0x20, 0x15, 0x45, 0x35, 0x06  # BPF_LD|W|ABS, JMP|JEQ|K, JSET, JGE, RET|K
    allow = 0x7FFF0000

    def deny(err: int) -> int:
        return 0x00050000 | err

    prog: list[tuple[int, int, int, int]] = [
        (ld, 0, 0, 4), (jeq, 1, 0, audit_arch), (ret, 0, 0, 0x80000000),  # wrong arch → kill
        (ld, 0, 0, 0),
    ]
    if machine == "x86_64":
        prog += [(jge, 0, 1, 0x40000000), (ret, 0, 0, deny(errno.ENOSYS))]  # x32 ABI
    pid = os.getpid()
    if "clone" in nr:  # threads only (CLONE_THREAD = 0x10000)
        prog += [(jeq, 0, 4, nr["clone"]), (ld, 0, 0, 16), (jset, 0, 1, 0x10000),
                 (ret, 0, 0, allow), (ret, 0, 0, deny(errno.EPERM))]
    for name in ("kill", "tkill", "tgkill"):  # signals to itself only
        prog += [(jeq, 0, 4, nr[name]), (ld, 0, 0, 16), (jeq, 0, 1, pid),
                 (ret, 0, 0, allow), (ret, 0, 0, deny(errno.EPERM))]
    prog += [(jeq, 0, 1, nr["clone3"]), (ret, 0, 0, deny(errno.ENOSYS))]  # glibc falls back to clone
    for name, number in nr.items():
        if name not in ("clone", "clone3", "kill", "tkill", "tgkill"):
            prog += [(jeq, 0, 1, number), (ret, 0, 0, deny(errno.EPERM))]
    prog.append((ret, 0, 0, allow))

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(Filter))]

    filters = (Filter * len(prog))(*[Filter(*ins) for ins in prog])
    fprog = Prog(len(prog), filters)
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(f"seccomp: {_errmsg(ctypes)}")


# ---------------------------------------------------------------------------------- python guard


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
            if not all(inside(a, [home_r]) for a in args[:nargs]):
                raise PermissionError(f"{name} outside the sandbox directory")
            return fn(*args, **kwargs)
        return guarded

    for mod in (os, sys.modules.get("posix")):
        if mod is None:
            continue
        for name in ("system", "popen", "fork", "forkpty", "vfork", "kill", "killpg", "_exit", "abort",
                     "execv", "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe",
                     "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp",
                     "spawnvpe", "posix_spawn", "posix_spawnp", "setuid", "setgid", "chroot",
                     "putenv", "unsetenv", "pidfd_open"):
            if hasattr(mod, name):
                setattr(mod, name, blocked(f"os.{name}"))
        for name, n in (("remove", 1), ("unlink", 1), ("rmdir", 1), ("removedirs", 1),
                        ("rename", 2), ("replace", 2), ("renames", 2), ("link", 2), ("symlink", 2),
                        ("truncate", 1), ("chmod", 1), ("chown", 1), ("mkdir", 1), ("makedirs", 1),
                        ("chdir", 1), ("utime", 1)):
            if hasattr(mod, name):
                setattr(mod, name, home_only(f"os.{name}", getattr(mod, name), n))
    for name in ("rmtree", "move", "chown", "copy", "copy2", "copyfile", "copytree"):
        n = 1 if name in ("rmtree", "chown") else 2
        setattr(shutil, name, home_only(f"shutil.{name}", getattr(shutil, name), n))
    for name in ("Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"):
        setattr(subprocess, name, blocked(f"subprocess.{name}"))
    for name in ("socket", "create_connection", "create_server", "socketpair", "fromfd"):
        if hasattr(socket, name):
            setattr(socket, name, blocked(f"socket.{name}"))

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
    for name in ("ctypes", "_ctypes", "_posixsubprocess", "pty", "multiprocessing", "_multiprocessing"):
        sys.modules[name] = None  # type: ignore[assignment]


# ---------------------------------------------------------------------------------- main


def main(config_path: str) -> None:
    exit_now = os._exit
    try:
        with open(config_path, encoding="utf-8") as fh:
            cfg = json.load(fh)
        with open(cfg["program_path"], encoding="utf-8") as fh:
            source = fh.read()
        home, roots = cfg["home"], cfg["read_roots"]
        apply_rlimits(cfg)
        problems: list[str] = []
        for name, layer in (("no_new_privs", no_new_privs_and_drop_caps),
                            ("landlock", lambda: landlock(roots, home)), ("seccomp", seccomp)):
            try:
                layer()
            except Exception as exc:  # noqa: BLE001 - reported, then the next layer still applies
                problems.append(f"{name}: {exc}")
        if problems and cfg.get("strict"):
            raise OSError("sandbox layers unavailable: " + "; ".join(problems))
        for line in problems if cfg.get("report_layers") else ():
            print(f"[sandbox] {line}", file=sys.stderr)
        if cfg.get("python_guard", True):
            python_guard(roots, home)
        os.chdir(home)
        filename = os.path.join(home, "program.py")
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        sys.stderr.flush()
        exit_now(EXIT_RUNNER)
    status = EXIT_OK
    sys.argv = ["program.py"]
    try:
        code = compile(source, filename, "exec")
        exec(code, {"__name__": "__main__", "__builtins__": builtins})  # noqa: S102 - sandboxed child
    except MemoryError:
        status = EXIT_OOM
        print("MemoryError", file=sys.stderr)
    except SystemExit as exc:
        status = EXIT_FAILED
        print(f"program exited early (SystemExit {exc.code!r})", file=sys.stderr)
    except BaseException:  # noqa: BLE001
        status = EXIT_FAILED
        try:
            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    exit_now(status)


if __name__ == "__main__":
    main(sys.argv[1])
