"""Kernel layers of the sandbox child: libc access, the parent-death signal, resource limits,
no-new-privs with no capabilities, Landlock and seccomp."""

from __future__ import annotations

import os
import platform
import resource
import signal

EXIT_RUNNER = 2  # the runner itself failed


def libc_handle():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return ctypes, libc


def check_rc(rc: int, what: str) -> None:
    if rc != 0:
        import ctypes

        raise OSError(f"{what}: {os.strerror(ctypes.get_errno())}")


_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP = 1, 38, 22


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies (and exit now if it already has)."""
    ctypes, libc = libc_handle()
    parent = os.getppid()
    check_rc(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    if os.getppid() != parent:
        os._exit(EXIT_RUNNER)


# ---------------------------------------------------------------------------------- namespaces


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


_SECCOMP_MODE_FILTER = 2

_ARCH = {  # machine → (AUDIT_ARCH, syscall numbers)
    "x86_64": (
        0xC000003E,
        {
            "clone": 56,
            "fork": 57,
            "vfork": 58,
            "execve": 59,
            "execveat": 322,
            "clone3": 435,
            "socket": 41,
            "kill": 62,
            "tkill": 200,
            "tgkill": 234,
            "prlimit64": 302,
            "ptrace": 101,
            "process_vm_readv": 310,
            "process_vm_writev": 311,
            "pidfd_open": 434,
            "pidfd_getfd": 438,
            "pidfd_send_signal": 424,
            "io_uring_setup": 425,
            "unshare": 272,
            "setns": 308,
            "mount": 165,
            "umount2": 166,
            "pivot_root": 155,
            "chroot": 161,
            "bpf": 321,
            "perf_event_open": 298,
            "keyctl": 250,
            "add_key": 248,
            "request_key": 249,
            "kexec_load": 246,
            "init_module": 175,
            "finit_module": 313,
            "delete_module": 176,
            "reboot": 169,
            "userfaultfd": 323,
            "personality": 135,
            "kcmp": 312,
            "open_by_handle_at": 304,
            "mknod": 133,
            "mknodat": 259,
            "capset": 126,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "mount_setattr": 442,
            "shmget": 29,
            "shmat": 30,
            "shmctl": 31,
            "semget": 64,
            "semop": 65,
            "semctl": 66,
            "semtimedop": 220,
            "msgget": 68,
            "msgsnd": 69,
            "msgrcv": 70,
            "msgctl": 71,
            "mq_open": 240,
            "setpriority": 141,
            "ioprio_set": 251,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "clone": 220,
            "execve": 221,
            "execveat": 281,
            "clone3": 435,
            "socket": 198,
            "kill": 129,
            "tkill": 130,
            "tgkill": 131,
            "prlimit64": 261,
            "ptrace": 117,
            "process_vm_readv": 270,
            "process_vm_writev": 271,
            "pidfd_open": 434,
            "pidfd_getfd": 438,
            "pidfd_send_signal": 424,
            "io_uring_setup": 425,
            "unshare": 97,
            "setns": 268,
            "mount": 40,
            "umount2": 39,
            "pivot_root": 41,
            "chroot": 51,
            "bpf": 280,
            "perf_event_open": 241,
            "keyctl": 219,
            "add_key": 217,
            "request_key": 218,
            "kexec_load": 104,
            "init_module": 105,
            "finit_module": 273,
            "delete_module": 106,
            "reboot": 142,
            "userfaultfd": 282,
            "personality": 92,
            "kcmp": 272,
            "open_by_handle_at": 265,
            "mknodat": 33,
            "capset": 91,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "mount_setattr": 442,
            "shmget": 194,
            "shmat": 196,
            "shmctl": 195,
            "semget": 190,
            "semop": 193,
            "semctl": 191,
            "semtimedop": 192,
            "msgget": 186,
            "msgsnd": 189,
            "msgrcv": 188,
            "msgctl": 187,
            "mq_open": 180,
            "setpriority": 140,
            "ioprio_set": 30,
        },
    ),
}
# file metadata syscalls, refused when the program runs without its own mount namespace (Landlock
# does not cover metadata, and the host's files would be reachable)
_METADATA = {
    "x86_64": {
        "chmod": 90,
        "fchmod": 91,
        "fchmodat": 268,
        "fchmodat2": 452,
        "chown": 92,
        "fchown": 93,
        "lchown": 94,
        "fchownat": 260,
        "utime": 132,
        "utimes": 235,
        "futimesat": 261,
        "utimensat": 280,
        "setxattr": 188,
        "lsetxattr": 189,
        "fsetxattr": 190,
        "removexattr": 197,
        "lremovexattr": 198,
        "fremovexattr": 199,
    },
    "aarch64": {
        "fchmod": 52,
        "fchmodat": 53,
        "fchmodat2": 452,
        "fchownat": 54,
        "fchown": 55,
        "utimensat": 88,
        "setxattr": 5,
        "lsetxattr": 6,
        "fsetxattr": 7,
        "removexattr": 14,
        "lremovexattr": 15,
        "fremovexattr": 16,
    },
}
# syscalls allowed only on the calling process: (argument index, allowed values besides getpid())
_SELF_ONLY = {
    "kill": (0, ()),
    "tkill": (0, ()),
    "tgkill": (0, ()),
    "prlimit64": (0, (0,)),
    "setpriority": (1, (0,)),
    "ioprio_set": (1, (0,)),
}


def no_new_privs_and_drop_caps() -> None:
    import ctypes  # imported here (not taken from libc_handle) so that mypy sees ctypes.Structure below

    _, libc = libc_handle()
    check_rc(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()
    check_rc(libc.capset(ctypes.byref(header), data), "capset")


# Landlock (include/uapi/linux/landlock.h)
_LL_FS_ABI1 = (1 << 13) - 1  # execute … make_sym
_LL_REFER, _LL_TRUNCATE, _LL_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_LL_EXECUTE, _LL_WRITE_FILE, _LL_READ_FILE, _LL_READ_DIR = 1, 2, 4, 8
_LL_NET_ALL = 1 | 2  # bind_tcp | connect_tcp
_LL_SCOPE_ALL = 1 | 2  # abstract unix socket | signal
_SYS_LL_CREATE, _SYS_LL_ADD_RULE, _SYS_LL_RESTRICT = 444, 445, 446


def landlock(read_roots: list[str], home: str) -> int:
    """Restrict the filesystem to ``read_roots`` (read) and ``home`` (full); returns the ABI."""
    import ctypes  # imported here (not taken from libc_handle) so that mypy sees ctypes.Structure below

    _, libc = libc_handle()
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
            check_rc(
                libc.syscall(
                    _SYS_LL_ADD_RULE, ctypes.c_int(rfd), ctypes.c_int(1), ctypes.byref(rule), ctypes.c_uint32(0)
                ),
                f"landlock_add_rule({path})",
            )
        finally:
            os.close(fd)

    try:
        for root in read_roots:
            allow(root, _LL_READ_FILE | _LL_READ_DIR)
        allow("/dev/null", _LL_READ_FILE | _LL_WRITE_FILE | _LL_TRUNCATE)
        allow(home, fs)
        check_rc(libc.syscall(_SYS_LL_RESTRICT, ctypes.c_int(rfd), ctypes.c_uint32(0)), "landlock_restrict_self")
    finally:
        os.close(rfd)
    return int(abi)


def seccomp(metadata: bool = False) -> None:
    """Install a deny-list seccomp-bpf filter (see module docstring); ``metadata`` also refuses the
    file metadata syscalls."""
    import ctypes  # imported here (not taken from libc_handle) so that mypy sees ctypes.Structure below
    import errno

    _, libc = libc_handle()
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
        (ld, 0, 0, 4),
        (jeq, 1, 0, audit_arch),
        (ret, 0, 0, 0x80000000),  # wrong arch → kill
        (ld, 0, 0, 0),
    ]
    if machine == "x86_64":
        prog += [(jge, 0, 1, 0x40000000), (ret, 0, 0, deny(errno.ENOSYS))]  # x32 ABI
    if "clone" in nr:  # threads only (CLONE_THREAD = 0x10000)
        prog += [
            (jeq, 0, 4, nr["clone"]),
            (ld, 0, 0, 16),
            (jset, 0, 1, 0x10000),
            (ret, 0, 0, allow),
            (ret, 0, 0, deny(errno.EPERM)),
        ]
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
    check_rc(libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")
