"""Child side of :mod:`unisd.evaluation.sandbox` (stdlib only; run as ``python -I -S -B this.py``).

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
statements compare with plain values only, see :func:`_strict_asserts`), and only if both ran to
their end writes the secret to the proof descriptor. The harness counts a pass only when it reads
exactly that, so exiting early (``os._exit(0)``, a fresh ``posix`` module, the runner's own exit
function) never scores.

Exit codes: 0 completed; 1 the program raised (incl. ``SystemExit``); 3 ``MemoryError``;
2 the runner itself failed. A signal ``n`` that kills the program exits the chain with 128 + n.
"""

from __future__ import annotations

import ast
import builtins
import io
import json
import linecache
import os
import platform
import resource
import signal
import subprocess
import sys

EXIT_OK, EXIT_FAILED, EXIT_RUNNER, EXIT_OOM = 0, 1, 2, 3
NOBODY = 65534
HOME = "/sandbox"

# ---------------------------------------------------------------------------------- libc


def _libc():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return ctypes, libc


def _check(rc: int, what: str) -> None:
    if rc != 0:
        import ctypes

        raise OSError(f"{what}: {os.strerror(ctypes.get_errno())}")


_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP = 1, 38, 22


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies (and exit now if it already has)."""
    ctypes, libc = _libc()
    parent = os.getppid()
    _check(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    if os.getppid() != parent:
        os._exit(EXIT_RUNNER)


# ---------------------------------------------------------------------------------- namespaces

_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
_CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MNT_DETACH = 2
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}


def _wait_status_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else EXIT_RUNNER


def _relay(pid: int) -> None:
    """The host side of a fork: wait for ``pid`` and exit with its outcome."""
    for fd in (0, 1, 2):
        try:
            os.close(fd)
        except OSError:
            pass
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    os._exit(_wait_status_code(status))


def enter_namespaces(read_roots: list[str], quota_bytes: int, max_inodes: int) -> bool:
    """Move into fresh namespaces with a minimal root (see the module docstring).

    The calling process stays outside as a relay; the caller continues as PID 1 of the new PID
    namespace. Returns whether the program will run as host ``nobody``."""
    ctypes, libc = _libc()
    host_root = os.geteuid() == 0
    uid, gid = os.geteuid(), os.getegid()
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    child = os.fork()
    if child == 0:  # unshares, waits for its maps, then forks PID 1
        os.close(ready_r)
        os.close(go_w)
        die_with_parent()
        flags = _CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWIPC | _CLONE_NEWNET | _CLONE_NEWUTS
        ok = libc.unshare(flags) == 0
        os.write(ready_w, b"1" if ok else b"0")
        if not ok or os.read(go_r, 1) != b"1":
            os._exit(EXIT_RUNNER)
        os.close(go_r)
        os.close(ready_w)
        pid1 = os.fork()
        if pid1 != 0:
            _relay(pid1)
        die_with_parent()
        _build_root(read_roots, quota_bytes, max_inodes, host_root)
        return host_root
    os.close(ready_w)
    os.close(go_r)
    if os.read(ready_r, 1) != b"1":
        os.waitpid(child, 0)
        raise OSError("unshare(user, mount, pid, ipc, net, uts namespaces) is not permitted on this host")
    try:
        # host root maps itself (to build the root) and nobody (to run the program); others map themselves
        uid_map = f"0 0 1\n{NOBODY} {NOBODY} 1\n" if host_root else f"0 {uid} 1\n"
        gid_map = f"0 0 1\n{NOBODY} {NOBODY} 1\n" if host_root else f"0 {gid} 1\n"
        if not host_root:
            with open(f"/proc/{child}/setgroups", "w") as fh:
                fh.write("deny")
        with open(f"/proc/{child}/uid_map", "w") as fh:
            fh.write(uid_map)
        with open(f"/proc/{child}/gid_map", "w") as fh:
            fh.write(gid_map)
    except OSError:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        raise
    os.write(go_w, b"1")
    os.close(go_w)
    _relay(child)
    raise AssertionError("unreachable")


def _mount(libc, source, target, fstype, flags, data, what: str) -> None:
    enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
    _check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {what}")


def _locked_flags(path: str) -> int:
    """The source mount's flags a remount in a user namespace must keep (else EPERM)."""
    f = os.statvfs(path).f_flag
    flags = f & (_MS_NODEV | _MS_NOEXEC | 1024 | 2048)  # ST_ and MS_ agree on nodev/noexec/noatime/nodiratime
    return flags | ((1 << 21) if f & 4096 else 0)  # ST_RELATIME → MS_RELATIME


def _build_root(read_roots: list[str], quota_bytes: int, max_inodes: int, host_root: bool) -> None:
    """A tmpfs root with read-only binds of ``read_roots``, device files, and the tmpfs home."""
    ctypes, libc = _libc()
    _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE, None, "/ private")
    new = "/tmp"  # any existing directory: the tmpfs mounted on it becomes the root
    _mount(libc, "unisd-root", new, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=1m,mode=0755", "root tmpfs")
    for path in read_roots:
        target = new + path
        if os.path.islink(path):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.lexists(target):
                os.symlink(os.readlink(path), target)
            continue
        if not os.path.exists(path) or os.path.lexists(target):
            continue
        if os.path.isdir(path):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "w").close()
        _mount(libc, path, target, None, _MS_BIND | _MS_REC, None, f"bind {path}")
        nodev = 0 if path.startswith("/dev/") else _MS_NODEV
        _mount(libc, None, target, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | nodev | _locked_flags(path),
               None, f"read-only {path}")
    home = new + HOME
    os.makedirs(home)
    owner = f",uid={NOBODY},gid={NOBODY}" if host_root else ""
    _mount(libc, "unisd-home", home, "tmpfs", _MS_NOSUID | _MS_NODEV,
           f"size={quota_bytes},nr_inodes={max_inodes},mode=0700{owner}", "home tmpfs (quota)")
    os.makedirs(new + "/.old")
    machine = platform.machine()
    if machine not in _SYS_PIVOT_ROOT:
        raise OSError(f"pivot_root: no syscall number for {machine}")
    _check(libc.syscall(_SYS_PIVOT_ROOT[machine], os.fsencode(new), os.fsencode(new + "/.old")), "pivot_root")
    os.chdir("/")
    _check(libc.umount2(b"/.old", _MNT_DETACH), "umount old root")
    os.rmdir("/.old")
    _mount(libc, None, "/", None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV, None, "root read-only")
    if host_root:
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)
        die_with_parent()  # a credential change clears the parent-death signal


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

_SECCOMP_MODE_FILTER = 2

_ARCH = {  # machine → (AUDIT_ARCH, syscall numbers)
    "x86_64": (0xC000003E, {
        "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "clone3": 435,
        "socket": 41, "kill": 62, "tkill": 200, "tgkill": 234, "prlimit64": 302, "ptrace": 101,
        "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_open": 434, "pidfd_getfd": 438,
        "pidfd_send_signal": 424, "io_uring_setup": 425, "unshare": 272, "setns": 308,
        "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "bpf": 321,
        "perf_event_open": 298, "keyctl": 250, "add_key": 248, "request_key": 249,
        "kexec_load": 246, "init_module": 175, "finit_module": 313, "delete_module": 176,
        "reboot": 169, "userfaultfd": 323, "personality": 135, "kcmp": 312,
        "open_by_handle_at": 304, "mknod": 133, "mknodat": 259, "capset": 126,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "mount_setattr": 442, "shmget": 29, "shmat": 30, "shmctl": 31,
        "semget": 64, "semop": 65, "semctl": 66, "semtimedop": 220, "msgget": 68, "msgsnd": 69,
        "msgrcv": 70, "msgctl": 71, "mq_open": 240, "setpriority": 141, "ioprio_set": 251,
    }),
    "aarch64": (0xC00000B7, {
        "clone": 220, "execve": 221, "execveat": 281, "clone3": 435, "socket": 198,
        "kill": 129, "tkill": 130, "tgkill": 131, "prlimit64": 261, "ptrace": 117,
        "process_vm_readv": 270, "process_vm_writev": 271, "pidfd_open": 434, "pidfd_getfd": 438,
        "pidfd_send_signal": 424, "io_uring_setup": 425, "unshare": 97, "setns": 268, "mount": 40,
        "umount2": 39, "pivot_root": 41, "chroot": 51, "bpf": 280, "perf_event_open": 241,
        "keyctl": 219, "add_key": 217, "request_key": 218, "kexec_load": 104, "init_module": 105,
        "finit_module": 273, "delete_module": 106, "reboot": 142, "userfaultfd": 282,
        "personality": 92, "kcmp": 272, "open_by_handle_at": 265, "mknodat": 33, "capset": 91,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "mount_setattr": 442, "shmget": 194, "shmat": 196, "shmctl": 195,
        "semget": 190, "semop": 193, "semctl": 191, "semtimedop": 192, "msgget": 186, "msgsnd": 189,
        "msgrcv": 188, "msgctl": 187, "mq_open": 180, "setpriority": 140, "ioprio_set": 30,
    }),
}
# file metadata syscalls, refused when the program runs without its own mount namespace (Landlock
# does not cover metadata, and the host's files would be reachable)
_METADATA = {
    "x86_64": {"chmod": 90, "fchmod": 91, "fchmodat": 268, "fchmodat2": 452, "chown": 92, "fchown": 93,
               "lchown": 94, "fchownat": 260, "utime": 132, "utimes": 235, "futimesat": 261, "utimensat": 280,
               "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190, "removexattr": 197, "lremovexattr": 198,
               "fremovexattr": 199},
    "aarch64": {"fchmod": 52, "fchmodat": 53, "fchmodat2": 452, "fchownat": 54, "fchown": 55, "utimensat": 88,
                "setxattr": 5, "lsetxattr": 6, "fsetxattr": 7, "removexattr": 14, "lremovexattr": 15,
                "fremovexattr": 16},
}
# syscalls allowed only on the calling process: (argument index, allowed values besides getpid())
_SELF_ONLY = {"kill": (0, ()), "tkill": (0, ()), "tgkill": (0, ()), "prlimit64": (0, (0,)),
              "setpriority": (1, (0,)), "ioprio_set": (1, (0,))}


def no_new_privs_and_drop_caps() -> None:
    ctypes, libc = _libc()
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()
    _check(libc.capset(ctypes.byref(header), data), "capset")


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
    abi = libc.syscall(_SYS_LL_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        raise OSError(f"landlock unavailable: {os.strerror(ctypes.get_errno())}")
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
        raise OSError(f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")

    def allow(path: str, rights: int) -> None:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return
        try:
            if not os.path.isdir(path):
                rights &= file_rights
            rule = PathBeneath(rights & fs, fd)
            _check(libc.syscall(_SYS_LL_ADD_RULE, ctypes.c_int(rfd), ctypes.c_int(1), ctypes.byref(rule), ctypes.c_uint32(0)),
                   f"landlock_add_rule({path})")
        finally:
            os.close(fd)

    try:
        for root in read_roots:
            allow(root, _LL_READ_FILE | _LL_READ_DIR)
        allow("/dev/null", _LL_READ_FILE | _LL_WRITE_FILE | _LL_TRUNCATE)
        allow(home, fs)
        _check(libc.syscall(_SYS_LL_RESTRICT, ctypes.c_int(rfd), ctypes.c_uint32(0)), "landlock_restrict_self")
    finally:
        os.close(rfd)
    return int(abi)


def seccomp(metadata: bool = False) -> None:
    """Install a deny-list seccomp-bpf filter (see module docstring); ``metadata`` also refuses the
    file metadata syscalls."""
    import errno

    ctypes, libc = _libc()
    machine = platform.machine()
    if machine not in _ARCH:
        raise OSError(f"seccomp: no syscall table for {machine}")
    audit_arch, nr = _ARCH[machine]
    nr = {**nr, **(_METADATA[machine] if metadata else {})}
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
    if "clone" in nr:  # threads only (CLONE_THREAD = 0x10000)
        prog += [(jeq, 0, 4, nr["clone"]), (ld, 0, 0, 16), (jset, 0, 1, 0x10000),
                 (ret, 0, 0, allow), (ret, 0, 0, deny(errno.EPERM))]
    pid = os.getpid()
    for name, (arg, extra) in _SELF_ONLY.items():  # the low 32 bits of the pid argument
        ok = [pid, *extra]
        body = [(ld, 0, 0, 16 + 8 * arg)]
        for i, value in enumerate(ok):
            body.append((jeq, len(ok) - i, 0, value))  # → allow
        body += [(ret, 0, 0, deny(errno.EPERM)), (ret, 0, 0, allow)]
        prog += [(jeq, 0, len(body), nr[name])] + body
    prog += [(jeq, 0, 1, nr["clone3"]), (ret, 0, 0, deny(errno.ENOSYS))]  # glibc falls back to clone
    for name, number in nr.items():
        if name not in ("clone", "clone3", *_SELF_ONLY):
            prog += [(jeq, 0, 1, number), (ret, 0, 0, deny(errno.EPERM))]
    prog.append((ret, 0, 0, allow))

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(Filter))]

    filters = (Filter * len(prog))(*[Filter(*ins) for ins in prog])
    fprog = Prog(len(prog), filters)
    _check(libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")


# ---------------------------------------------------------------------------------- python guard

# audit events refused once the candidate runs: frame and object-graph introspection (which could
# reach the runner's proof), tracing, ctypes, process creation, sockets
_DENIED_EVENTS = frozenset({
    "sys._getframe", "sys._current_frames", "sys._current_exceptions", "sys.settrace", "sys.setprofile",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "os.fork", "os.forkpty", "os.exec",
    "os.posix_spawn", "os.spawn", "os.system", "os.kill", "os.killpg", "os.startfile", "pty.spawn",
    "subprocess.Popen", "socket.__new__", "socket.socketpair", "socket.fromfd", "socket.bind",
    "socket.connect", "socket.sendto", "socket.sendmsg", "cpython.PyInterpreterState_Clear",
    "cpython._PySys_ClearAuditHooks", "sys.remote_exec",
})
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
            if kwargs.get("dir_fd") is not None or kwargs.get("src_dir_fd") is not None or kwargs.get("dst_dir_fd") is not None:
                raise PermissionError(f"{name} with dir_fd is disabled in the sandbox")
            if not all(inside(a, [home_r]) for a in args[:nargs]):
                raise PermissionError(f"{name} outside the sandbox directory")
            return fn(*args, **kwargs)
        return guarded

    for mod in (os, sys.modules.get("posix")):
        if mod is None:
            continue
        for name in ("system", "popen", "fork", "forkpty", "vfork", "kill", "killpg", "abort",
                     "execv", "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe",
                     "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp",
                     "spawnvpe", "posix_spawn", "posix_spawnp", "setuid", "setgid", "chroot",
                     "putenv", "unsetenv", "pidfd_open"):
            if hasattr(mod, name):
                setattr(mod, name, blocked(f"os.{name}"))
        for name, n in (("remove", 1), ("unlink", 1), ("rmdir", 1), ("removedirs", 1),
                        ("rename", 2), ("replace", 2), ("renames", 2), ("link", 2), ("symlink", 2),
                        ("truncate", 1), ("chmod", 1), ("chown", 1), ("lchown", 1), ("mkdir", 1),
                        ("makedirs", 1), ("chdir", 1), ("utime", 1), ("setxattr", 1), ("removexattr", 1),
                        ("mkfifo", 1), ("mknod", 1)):
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


# ---------------------------------------------------------------------------------- checks

def plain_value_checks():
    """``(operand, truth)`` for rewritten ``assert`` statements: compared operands that are not
    plain data become opaque, equal only to another opaque object whose own ``==`` agrees and never
    to a plain value, so an ``__eq__`` that returns ``True`` cannot pass a test; a truth value must
    come from plain data. Plain data: built-in scalars and containers (recursively), a few standard
    library types (``Counter``, ``OrderedDict``, ``deque``, ``Fraction``, ``Decimal``, dates), and
    subclasses of built-ins that override none of their comparison or container methods
    (namedtuples, ``IntEnum``). Closures over their own built-ins, so nothing the program can reach
    changes them."""
    import collections
    import datetime
    import decimal
    import fractions

    _all, _bool, _iter, _type, _name = all, bool, iter, type, (lambda v: type(v).__name__)
    mro_of, vars_of = type.__dict__["__mro__"].__get__, type.__dict__["__dict__"].__get__
    scalars = (bool, int, float, complex, str, bytes, bytearray, type(None), range)
    sequences = (list, tuple, set, frozenset)
    trusted = {collections.Counter: dict, collections.OrderedDict: dict, collections.defaultdict: dict,
               collections.deque: list, fractions.Fraction: None, decimal.Decimal: None, datetime.date: None,
               datetime.datetime: None, datetime.time: None, datetime.timedelta: None}
    methods = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__bool__", "__len__",
               "__iter__", "__contains__", "__getitem__", "keys", "items", "values")

    def kind(t):
        """The built-in whose semantics ``t`` has (``None``: not plain data)."""
        if t in scalars or t in sequences or t is dict:
            return t
        if t in trusted:
            return trusted[t] or t
        mro = mro_of(t)
        for i, c in enumerate(mro):
            if c in scalars or c in sequences or c is dict:
                overridden = any(m in vars_of(k) for k in mro[:i] for m in methods)
                return None if overridden else c
        return None

    def plain(value, depth=0) -> bool:
        k = kind(_type(value))
        if k is None or depth > 50:
            return False
        if k is dict:
            return _all(plain(a, depth + 1) and plain(b, depth + 1) for a, b in dict.items(value))
        if k in sequences:
            return _all(plain(v, depth + 1) for v in _iter(value))  # the built-in's own iteration
        return True

    class Opaque:
        __slots__ = ("value",)

        def __init__(self, value) -> None:
            self.value = value

        def __eq__(self, other) -> bool:
            return _type(other) is Opaque and _bool(self.value == other.value)

        def __ne__(self, other) -> bool:
            return not self.__eq__(other)

        def __contains__(self, item) -> bool:
            return False

        def __bool__(self) -> bool:
            raise AssertionError(f"a test's truth value came from a {_name(self.value)} object")

        __hash__ = None  # type: ignore[assignment]

    def operand(value):
        return value if plain(value) else Opaque(value)

    def truth(value):
        if not plain(value):
            raise AssertionError(f"a test's truth value came from a {_name(value)} object")
        return value

    return operand, truth


class _StrictAsserts(ast.NodeTransformer):
    """In ``assert`` tests: compared operands, ``not``/``and``/``or`` operands and bare tests go
    through the plain-value checks above."""

    def __init__(self, operand: str, truth: str) -> None:
        self.operand, self.truth = operand, truth

    def _call(self, name: str, node: ast.expr) -> ast.Call:
        return ast.copy_location(ast.Call(ast.Name(name, ast.Load()), [node], []), node)

    def _test(self, node: ast.expr) -> ast.expr:
        if isinstance(node, ast.Compare):
            node.left = self._call(self.operand, node.left)
            node.comparators = [self._call(self.operand, c) for c in node.comparators]
            return node
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            node.operand = self._test(node.operand)
            return node
        if isinstance(node, ast.BoolOp):
            node.values = [self._test(v) for v in node.values]
            return node
        return self._call(self.truth, node)

    def visit_Assert(self, node: ast.Assert) -> ast.Assert:
        node.test = self._test(node.test)
        return node


def _strict_asserts(source: str, filename: str, operand: str, truth: str):
    tree = _StrictAsserts(operand, truth).visit(ast.parse(source, filename))
    return compile(ast.fix_missing_locations(tree), filename, "exec", dont_inherit=True, optimize=0)


# ---------------------------------------------------------------------------------- main


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
        checks_code = _strict_asserts(checks, "<checks>", "__unisd_operand__", "__unisd_truth__") if checks.strip() else None
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
