"""Hostile programs against the sandbox, in the style of MultiPL-E's ``safe_subprocess`` tests.

Each attack is checked three ways: the score it gets, survivors (``pgrep`` on the runner's command
line), and its side effects on the host. ``python_guard=False`` runs check the kernel layers alone.
The containment table in ``docs/evaluation.md`` names the test of every attack.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from unisd_plugins.evaluation import scoring as M
from unisd.evaluation import sandbox as S
from unisd.sandbox import SandboxLimits, CheckedProgram, isolation_report, run_program

FAST = SandboxLimits(timeout_s=4)
KERNEL_ONLY = SandboxLimits(timeout_s=4, python_guard=False)
SQUARE = "def square(x):\n    return x * x\n"
CHECKS = "assert square(3) == 9\nassert square(0) == 0\n"


@pytest.fixture(scope="module", autouse=True)
def kernel_layers() -> None:
    report = isolation_report()
    if report["layer_problems"] or report["status"] != "passed":
        pytest.skip(f"kernel layers unavailable on this host: {report['layer_problems']}")


def survivors() -> list[str]:
    """Runner processes of this checkout (the full path: another checkout's test run on the same
    machine has its own sandboxes, which are not ours to count)."""
    out = subprocess.run(["pgrep", "-af", str(S.RUNNER)], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if "pgrep" not in ln]


@pytest.fixture(autouse=True)
def no_survivors():
    yield
    deadline = time.monotonic() + 3
    while survivors() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert survivors() == []


def scores(solution: str, checks: str = CHECKS, limits: SandboxLimits = FAST) -> S.SandboxResult:
    return run_program(CheckedProgram(solution, checks), limits)


# ------------------------------------------------------------------------------ a pass is proven


def test_a_correct_solution_passes_with_proof() -> None:
    res = scores(SQUARE)
    assert res.passed and res.extra["proven"]


@pytest.mark.parametrize(
    "exit_trick",
    [
        "import os\nos._exit(0)",
        "import sys\nsys._getframe(1).f_globals['exit_now'](0)",  # the runner's own exit function
        "import _imp, sys\nposix = _imp.create_builtin(type(sys.__spec__)('posix', None, origin='built-in'))\nposix._exit(0)",
        "import sys\nsys.modules.pop('ctypes', None)\nimport ctypes\nctypes.CDLL(None).exit(0)",
        "import sys\nsys.exit(0)",
        "raise SystemExit(0)",
        "import atexit, os\natexit.register(lambda: os._exit(0))\nraise KeyboardInterrupt",
        "import signal, os\nsignal.signal(signal.SIGTERM, lambda *a: os._exit(0))\nos.kill(os.getpid(), signal.SIGTERM)",
        "import os\nos.write(3, b'0' * 48)\nos._exit(0)",  # writing a guess to the proof pipe
        "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'ok')\n    except OSError:\n        pass\nos._exit(0)",
    ],
)
def test_no_exit_path_before_the_checks_scores(exit_trick: str) -> None:
    res = scores(exit_trick)
    assert not res.passed and not res.extra.get("proven")


def test_exit_tricks_score_zero_on_mbpp_and_humaneval() -> None:
    do_nothing = "import os\nos._exit(0)\ndef square(x):\n    pass\n"
    mbpp = M.mbpp_program(do_nothing, ["assert square(3) == 9"])
    he = M.humaneval_program(do_nothing, "def check(f):\n    assert f(3) == 9\n", "square")
    assert M.code_pass_at_1([mbpp, he], timeout_s=4) == [0.0, 0.0]
    assert M.code_pass_at_1([M.mbpp_program(SQUARE, ["assert square(3) == 9"])], timeout_s=4) == [1.0]


@pytest.mark.parametrize(
    "rigged",
    [
        "class Yes:\n    def __eq__(self, other):\n        return True\ndef square(x):\n    return Yes()\n",
        "class Yes(int):\n    def __eq__(self, other):\n        return True\ndef square(x):\n    return Yes(1)\n",
        "class T:\n    def __bool__(self):\n        return True\ndef square(x):\n    return T()\n",
    ],
)
def test_objects_that_equal_everything_do_not_pass(rigged: str) -> None:
    checks = CHECKS if "__bool__" not in rigged else "assert square(3)\n"
    assert not scores(rigged, checks).passed


def test_builtins_patched_by_the_program_do_not_reach_the_checks() -> None:
    rigged = "import builtins\nbuiltins.sorted = lambda *a, **k: [1, 2]\ndef f(x):\n    return [2, 1]\n"
    assert not scores(rigged, "assert sorted(f(0)) == [1, 2] and f(0) == [1, 2]\n").passed
    assert scores("def f(x):\n    return [2, 1]\n", "assert sorted(f(0)) == [1, 2]\n").passed


# ------------------------------------------------------------------------------ other processes


def test_the_evaluator_cannot_be_relimited_or_signalled() -> None:
    me = os.getpid()
    before = resource.getrlimit(resource.RLIMIT_CPU), resource.getrlimit(resource.RLIMIT_NOFILE)
    for prog in (
        f"import resource, os\nresource.prlimit({me}, resource.RLIMIT_CPU, (1, 1))",
        "import resource, os\nresource.prlimit(os.getppid(), resource.RLIMIT_NOFILE, (3, 3))",
        f"import os, signal\nos.kill({me}, signal.SIGKILL)",
        f"import os\nos.killpg({os.getpgid(0)}, 9)",
    ):
        for limits in (FAST, KERNEL_ONLY):
            assert not run_program(prog + "\nraise SystemExit(1)", limits).passed
    assert (resource.getrlimit(resource.RLIMIT_CPU), resource.getrlimit(resource.RLIMIT_NOFILE)) == before


def test_the_program_sees_no_process_outside_its_namespace() -> None:
    res = run_program("import os\nprint(os.getpid(), os.getppid(), os.path.exists('/proc/1'))", KERNEL_ONLY)
    assert res.passed and res.stdout_tail.split() == ["1", "0", "False"]


@pytest.mark.parametrize("limits", [FAST, KERNEL_ONLY], ids=["guard", "kernel"])
def test_fork_bombs_and_orphans_leave_no_survivors(limits: SandboxLimits) -> None:
    for prog in (
        "import os\nwhile True:\n    os.fork()",
        "import os, time\nif os.fork() == 0:\n    time.sleep(60)",
        "import threading, time\n[threading.Thread(target=time.sleep, args=(60,), daemon=True).start() for _ in range(50)]\ntime.sleep(60)",
    ):
        res = run_program(prog, SandboxLimits(timeout_s=2, python_guard=limits.python_guard))
        assert not res.passed


def _evaluator(tmp_path: Path, program: str) -> subprocess.Popen:
    script = tmp_path / "evaluator.py"
    # SIGINT as an evaluator started from a terminal has it: a test run started as a background job
    # of a non-interactive shell inherits SIGINT ignored, and so would the evaluator
    script.write_text(
        textwrap.dedent(f"""\
        import signal
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from unisd.sandbox import SandboxLimits, run_program
        print("started", flush=True)
        run_program({program!r}, SandboxLimits(timeout_s=120))
        """)
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 10
    while not survivors() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert survivors(), "the sandbox did not start"
    return proc


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_the_sandbox_dies_with_its_evaluator(tmp_path: Path, how: int) -> None:
    proc = _evaluator(tmp_path, "import time\ntime.sleep(120)")
    time.sleep(0.3)
    proc.send_signal(how)
    try:
        proc.wait(timeout=10)
    finally:  # a failure here must not leave the sandbox to the next tests (it dies with a SIGKILLed evaluator)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 5
    while survivors() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert survivors() == []
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"unisd-sandbox-{proc.pid}-*"))


def test_stdin_is_empty_not_blocking() -> None:
    res = run_program("input()", SandboxLimits(timeout_s=10))
    assert res.status == "failed" and "EOFError" in res.stderr_tail and res.duration_s < 5


# ------------------------------------------------------------------------------ the host


@pytest.mark.parametrize(
    "limits",
    [FAST, KERNEL_ONLY, SandboxLimits(timeout_s=4, python_guard=False, namespaces=False)],
    ids=["guard", "kernel", "kernel-without-namespaces"],
)
def test_no_metadata_changes_outside(tmp_path: Path, limits: SandboxLimits) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    os.chmod(victim, 0o640)
    before = victim.stat()
    path = str(victim)
    for prog in (
        f"import os\nos.chmod({path!r}, 0o777)",
        f"import os\nos.utime({path!r}, (0, 0))",
        f"import os\nos.setxattr({path!r}, 'user.x', b'1')",
        f"import os\nfd = os.open({str(tmp_path)!r}, os.O_PATH)\nos.chmod('victim.txt', 0o777, dir_fd=fd)",
        "import os\nos.chmod('/usr/bin/env', 0o777)",
        "import os\nos.utime('/usr/lib', (0, 0))",
    ):
        assert not run_program(prog, limits).passed, prog
    after = victim.stat()
    assert (after.st_mode, after.st_mtime_ns, os.listxattr(victim)) == (before.st_mode, before.st_mtime_ns, [])
    assert oct(os.stat("/usr/bin/env").st_mode & 0o777) != "0o777"


def test_nothing_outside_the_read_roots_is_visible(tmp_path: Path) -> None:
    (tmp_path / "here.txt").write_text("x")
    for path in (tmp_path / "here.txt", Path(__file__), Path("/etc/passwd"), Path("/proc/self/status")):
        res = run_program(f"import os\nos.stat({str(path)!r})", KERNEL_ONLY)
        assert not res.passed and "FileNotFoundError" in res.stderr_tail, path


def _sysv_segments() -> int:
    return len(Path("/proc/sysvipc/shm").read_text().splitlines()) - 1


def test_sysv_shared_memory_is_refused_and_leaves_nothing() -> None:
    before = _sysv_segments()
    prog = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "shmid = libc.shmget(0, 768 << 20, 0o1666)\nassert shmid >= 0, ctypes.get_errno()"
    )
    assert not run_program(prog, KERNEL_ONLY).passed
    assert not run_program(prog, FAST).passed
    assert _sysv_segments() == before


def test_the_home_has_a_total_disk_quota() -> None:
    prog = "for i in range(60):\n    open(f'f{i}', 'wb').write(b'x' * ((8 << 20) - 1))"
    res = run_program(prog, SandboxLimits(timeout_s=10, disk_quota_bytes=64 << 20))
    assert not res.passed and "No space left" in res.stderr_tail
    small = run_program(
        "open('a', 'wb').write(b'x' * (1 << 20))", SandboxLimits(timeout_s=10, disk_quota_bytes=4 << 20)
    )
    assert small.passed


def test_the_program_runs_as_nobody_when_the_evaluator_is_root() -> None:
    res = run_program("import os\nprint(os.getuid(), os.getgid())", FAST)
    expected = ["65534", "65534"] if os.geteuid() == 0 else ["0", "0"]
    assert res.passed and res.stdout_tail.split() == expected


# ------------------------------------------------------------------------------ what must keep working


def test_socket_modules_import_and_sockets_are_refused_on_use() -> None:
    prog = "import asyncio, ssl, http.client, urllib.request, smtplib, socketserver\n" + SQUARE
    assert scores(prog).passed
    res = run_program("import socket\nsocket.socket()", FAST)
    assert not res.passed and "PermissionError" in res.stderr_tail
    assert not run_program("import asyncio\nasyncio.run(asyncio.open_connection('127.0.0.1', 80))", FAST).passed


def test_common_stdlib_still_works() -> None:
    prog = (
        "import collections, dataclasses, enum, functools, itertools, logging, re, typing, heapq, math, fractions\n"
        "P = collections.namedtuple('P', 'a b')\nlogging.getLogger('x').warning('w')\n"
        "@dataclasses.dataclass\nclass D:\n    a: int\n"
        "class E(enum.Enum):\n    A = 1\n"
        "def square(x):\n    return P(x, x).a * D(x).a\n"
    )
    assert scores(prog).passed


def test_evaluation_refuses_without_kernel_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    S.isolation_report.cache_clear()
    monkeypatch.setattr(
        S, "isolation_report", lambda: {"status": "passed", "active": [], "layer_problems": ["seccomp: EPERM"]}
    )
    for name in S.ALLOW_ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(S.SandboxUnavailable, match="UNISD_ALLOW_UNSAFE_CODE=1"):
        M.code_pass_at_1([M.mbpp_program(SQUARE, ["assert square(3) == 9"])])
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    assert M.code_pass_at_1([M.mbpp_program(SQUARE, ["assert square(3) == 9"])], timeout_s=4) == [1.0]


@pytest.mark.parametrize(
    "solution, checks, passes",
    [
        (
            "import collections\nP = collections.namedtuple('P', 'a b')\ndef f(): return P(1, 2)",
            "assert f() == (1, 2)",
            True,
        ),
        (
            "import collections\nclass P(collections.namedtuple('P', 'a b')):\n    def __eq__(s, o): return True\ndef f(): return P(9, 9)",
            "assert f() == (1, 2)",
            False,
        ),
        ("import enum\nclass C(enum.IntEnum):\n    A = 1\ndef f(): return C.A", "assert f() == 1", True),
        ("import collections\ndef f(): return collections.Counter('aab')", "assert f() == {'a': 2, 'b': 1}", True),
        ("class D(dict):\n    def __eq__(s, o): return True\ndef f(): return D()", "assert f() == {'a': 2}", False),
        ("class Y:\n    def __eq__(s, o): return True\ndef f(): return [Y()]", "assert f() == [1]", False),
        ("class Y:\n    def __eq__(s, o): return True\ndef f(): return Y()", "assert 1 == f()", False),
        ("class Y:\n    def __ne__(s, o): return False\ndef f(): return Y()", "assert not (f() != 1)", False),
        ("from fractions import Fraction\ndef f(): return Fraction(1, 2)", "assert f() == 0.5", True),
        ("def f(): return (i for i in range(2))", "assert list(f()) == [0, 1]", True),
        ("def f(): return None", "assert f() is None", True),
        ("def f(): return []", "assert not f()", True),
        (
            "class N:\n    def __init__(s, v): s.v = v\n    def __eq__(s, o): return isinstance(o, N) and s.v == o.v\ndef f(): return N(1)",
            "assert f() == N(1)",
            True,
        ),  # the task's own class on both sides compares as it defines
    ],
)
def test_plain_value_checks(solution: str, checks: str, passes: bool) -> None:
    assert scores(solution + "\n", checks + "\n").passed is passes


# ------------------------------------------------------------------------------ forged verdicts

FORGE = textwrap.dedent("""\
    class _Any:
        def __eq__(s, o): return True
        def __ne__(s, o): return False
        __lt__ = __le__ = __gt__ = __ge__ = __contains__ = __eq__
        def __bool__(s): return True
        def __call__(s, *a, **k): return s
        def __getattr__(s, n): return s
        def __iter__(s): return iter(())
        def __len__(s): return 0
        def __hash__(s): return 0
        def __abs__(s): return 0
        def __sub__(s, o): return s
        __rsub__ = __add__ = __radd__ = __mul__ = __rmul__ = __truediv__ = __sub__
    _ANY = _Any()
    """)


def _forgeries(shared_data: Path) -> list[tuple[str, object]]:
    """For every module attribute and built-in any MBPP or HumanEval check uses (found in the checks
    themselves), and for the standard-library classes the old plain-value rule trusted: a wrong
    program for a task whose checks use it, which replaces it with an object equal to everything
    and defines the task's functions to return that object."""
    import ast
    import builtins

    from unisd_plugins.evaluation.sources import load_docs

    tasks = [
        ("mbpp", d, "\n".join([d["test_setup"], *d["tests"]]), M.defined_names(d["gold_code"]))
        for d in load_docs("mbpp", shared_data)
    ]
    tasks += [("humaneval", d, d["test"], (d["entry_point"],)) for d in load_docs("humaneval", shared_data)]
    targets: dict[str, tuple] = {}
    for kind, doc, checks, names in tasks:
        for node in ast.walk(ast.parse(checks)):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("math", "copy", "random", "string")
            ):
                targets.setdefault(f"{node.value.id}.{node.attr}", (kind, doc, names))
            elif isinstance(node, ast.Name) and hasattr(builtins, node.id):
                targets.setdefault(f"builtins.{node.id}", (kind, doc, names))
    first = tasks[0]
    for cls in (
        "collections.Counter.__eq__",
        "collections.OrderedDict.__eq__",
        "fractions.Fraction.__eq__",
        "builtins.AssertionError",
        "builtins.isinstance",
        "builtins.bool",
    ):
        targets.setdefault(cls, first[:2] + (first[3],))
    out = []
    for target, (kind, doc, names) in sorted(targets.items()):
        module, _, attr = target.rpartition(".")
        wrong = FORGE + f"import {module.split('.')[0]}\nsetattr({module}, {attr!r}, _ANY)\n"
        wrong += "".join(f"def {n}(*a, **k):\n    return _ANY\n" for n in names)
        if kind == "mbpp":
            program = M.mbpp_program(wrong, doc["tests"], doc["test_imports"], doc["test_setup"], doc["gold_code"])
        else:
            program = M.humaneval_program(wrong, doc["test"], doc["entry_point"], doc["original_prompt"])
        out.append((target, program))
    return out


def test_a_wrong_program_that_replaces_what_the_checks_use_never_passes(shared_data: Path) -> None:
    forgeries = _forgeries(shared_data)
    assert len(forgeries) >= 20 and {"math.isclose", "builtins.abs", "builtins.set", "builtins.sum"} <= {
        t for t, _ in forgeries
    }
    scores = M.code_pass_at_1([p for _, p in forgeries], timeout_s=4)
    assert {t: s for (t, _), s in zip(forgeries, scores, strict=True) if s} == {}


def test_the_checks_reach_the_program_only_through_data() -> None:
    # the program sees no check: it cannot read the expected values, and what it sends back is data
    spy = "import sys\ndef square(x):\n    print(sorted(k for k in globals() if not k.startswith('__')))\n    return x * x\n"
    res = scores(spy)
    assert res.passed and "CHECKS" not in res.stdout_tail and "assert" not in res.stdout_tail
    # a reply forged on the channel before the solution ends is not a verdict
    fake = (
        'import os\nfor fd in range(3, 4096):\n    try:\n        os.write(fd, b\'{"ready": true}\\n{"id": 1, "ok": 9}\\n\')\n'
        "    except OSError:\n        pass\n"
    )
    assert not scores(fake + "def square(x):\n    return 0\n", "assert square(3) == 9\n").passed
    assert scores(fake + SQUARE, "assert square(3) == 9\n").passed is False  # the forged lines end the run
    assert scores(SQUARE, "assert square(3) == 9\n").passed
