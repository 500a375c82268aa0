"""Namespaces of the sandbox child: fresh user, mount, PID, IPC, network and UTS namespaces, a
minimal read-only root with a tmpfs home (the disk quota), and host uid ``nobody`` when started as
root. The calling process stays outside as a relay; the caller continues as PID 1 of the new PID
namespace."""

from __future__ import annotations

import os
import platform
import signal

from kernel import EXIT_RUNNER, check_rc, die_with_parent, libc_handle

NOBODY = 65534
HOME = "/sandbox"

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
    ctypes, libc = libc_handle()
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
    check_rc(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {what}")


def _locked_flags(path: str) -> int:
    """The source mount's flags a remount in a user namespace must keep (else EPERM)."""
    f = os.statvfs(path).f_flag
    flags = f & (_MS_NODEV | _MS_NOEXEC | 1024 | 2048)  # ST_ and MS_ agree on nodev/noexec/noatime/nodiratime
    return flags | ((1 << 21) if f & 4096 else 0)  # ST_RELATIME → MS_RELATIME


def _build_root(read_roots: list[str], quota_bytes: int, max_inodes: int, host_root: bool) -> None:
    """A tmpfs root with read-only binds of ``read_roots``, device files, and the tmpfs home."""
    ctypes, libc = libc_handle()
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
        _mount(
            libc,
            None,
            target,
            None,
            _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | nodev | _locked_flags(path),
            None,
            f"read-only {path}",
        )
    home = new + HOME
    os.makedirs(home)
    owner = f",uid={NOBODY},gid={NOBODY}" if host_root else ""
    _mount(
        libc,
        "unisd-home",
        home,
        "tmpfs",
        _MS_NOSUID | _MS_NODEV,
        f"size={quota_bytes},nr_inodes={max_inodes},mode=0700{owner}",
        "home tmpfs (quota)",
    )
    os.makedirs(new + "/.old")
    machine = platform.machine()
    if machine not in _SYS_PIVOT_ROOT:
        raise OSError(f"pivot_root: no syscall number for {machine}")
    check_rc(libc.syscall(_SYS_PIVOT_ROOT[machine], os.fsencode(new), os.fsencode(new + "/.old")), "pivot_root")
    os.chdir("/")
    check_rc(libc.umount2(b"/.old", _MNT_DETACH), "umount old root")
    os.rmdir("/.old")
    _mount(libc, None, "/", None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV, None, "root read-only")
    if host_root:
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)
        die_with_parent()  # a credential change clears the parent-death signal
