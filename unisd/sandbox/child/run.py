"""Entry point of the sandbox child (stdlib only; run as ``python -I -S -B run.py``).

The harness writes one JSON payload to stdin: the limits and the candidate ``solution``. The runner
reads it, stdin becomes ``/dev/null``, and it
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

The checks do not run here. Once the solution has run to its end the runner says ``ready`` on the
reply descriptor (with a nonce the judge gave on stdin) and serves the judge's requests from the call descriptor, one JSON line each:
call a name the solution defined (or an object it returned earlier), read an attribute, compare
two of its objects, list an iterable. Arguments and results cross as plain data
(:mod:`wire`); the judge, in the evaluator's own interpreter, runs the checks on what comes back.
Nothing the program does here can change them.

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

from guard import audit_guard, python_guard  # noqa: E402
from isolation import HOME, enter_namespaces  # noqa: E402
from kernel import apply_rlimits, die_with_parent, landlock, no_new_privs_and_drop_caps, seccomp  # noqa: E402
from wire import decode, encode, keeper  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_RUNNER, EXIT_OOM = 0, 1, 2, 3


#: the largest request the runner reads (the judge's arguments are small)
MAX_REQUEST = 64 << 20


def _server(namespace: dict, call_fd: int, reply_fd: int, nonce: str):
    """The loop that answers the judge, with every function it uses taken before the program runs
    (a program that breaks them only loses its own answers)."""
    read, write, loads, dumps, text = os.read, os.write, json.loads, json.dumps, BaseException.__str__
    refs: list = []
    keep = keeper(refs)

    def resolve(index: int, _type: str):
        if not 0 <= index < len(refs):
            raise ValueError(f"no object {index}")
        return refs[index]

    def answer(req: dict):
        op, target = req["op"], req["target"]
        if "ref" in target:
            obj = resolve(target["ref"], "")
        elif target["name"] in namespace:
            obj = namespace[target["name"]]
        else:
            raise NameError(f"name {target['name']!r} is not defined by the program")
        if op == "call":
            args = decode(req["args"], resolve)
            kwargs = {k: v for k, v in decode(req["kwargs"], resolve)}
            return obj(*args, **kwargs)
        if op == "attr":
            return getattr(obj, req["name"])
        if op == "eq":
            return bool(obj == decode(req["other"], resolve))
        if op == "list":
            return list(obj)
        raise ValueError(f"unknown request {op!r}")

    def send(message: dict) -> None:
        data = (dumps(message) + "\n").encode()
        while data:
            data = data[write(reply_fd, data) :]

    def serve() -> None:
        send({"ready": nonce})  # the judge's nonce (from stdin, gone before the program ran): no earlier line counts
        buffer = b""
        while True:
            while b"\n" not in buffer:
                chunk = read(call_fd, 1 << 16)
                if not chunk:
                    return
                buffer += chunk
                if len(buffer) > MAX_REQUEST:
                    return
            line, buffer = buffer.split(b"\n", 1)
            req = loads(line)
            try:
                reply = {"id": req["id"], "ok": encode(answer(req), keep)}
            except MemoryError:
                reply = {"id": req["id"], "raise": "MemoryError", "msg": ""}
            except BaseException as exc:  # noqa: BLE001 - the program's exceptions go back to the checks
                try:
                    msg = text(exc)[:500]
                except BaseException:  # noqa: BLE001
                    msg = ""
                reply = {
                    "id": req["id"],
                    "raise": type(exc).__name__ if type(type(exc).__name__) is str else "Exception",
                    "msg": msg if type(msg) is str else "",
                }
            send(reply)

    return serve


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
        solution, nonce = payload.pop("solution"), payload.pop("nonce")
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
        for name, layer in (
            ("no_new_privs", no_new_privs_and_drop_caps),
            ("landlock", lambda: landlock(roots, home)),
            ("seccomp", lambda: seccomp(metadata=home != HOME)),
        ):
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
        run, builtins_module, compile_ = exec, builtins, compile
        program_module = type(sys)("__main__")
        sys.modules["__main__"] = program_module  # the program's module, not the runner's
        serve = _server(program_module.__dict__, cfg["call_fd"], cfg["reply_fd"], nonce)
        del payload, nonce
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
        stage = "serving the checks"
        serve()
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
    exit_now(status)


if __name__ == "__main__":
    main()
