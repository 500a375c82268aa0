"""The sandbox's time per program, side by side for several checkouts (e.g. before and after a change).

Each checkout given (``--checkout PATH``, a git worktree of the revision; the current tree when
none is given) scores, in a fresh Python process of its own, the same programs: a trivial one
(``def f(): return 1`` with one check) repeated, and every MBPP and HumanEval gold solution from
``../shared/data``. The rounds alternate between checkouts so that drift of the machine's load
falls on all of them alike; it prints the median and 90th percentile seconds per program and each
checkout's ratio to the first. Run from the repository root::

    git worktree add /tmp/before <revision>
    python benchmarks/sandbox_speed.py --checkout /tmp/before --checkout . --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import inspect, json, sys, time
from pathlib import Path
from unisd.sandbox import CheckedProgram, SandboxLimits, run_program
from unisd_plugins.evaluation import scoring as M
from unisd_plugins.evaluation.sources import gold_completion, load_docs

data, trivial = Path(sys.argv[1]), int(sys.argv[2])
progs = [CheckedProgram("def f():\n    return 1\n", "assert f() == 1\n")] * trivial
mbpp, he = load_docs("mbpp", data), load_docs("humaneval", data)
ref = "reference" in inspect.signature(M.mbpp_program).parameters  # the gold's names (a checkout that takes them)
progs += [M.mbpp_program(M.extract_code(gold_completion(d)), d["tests"], d["test_imports"], d["test_setup"],
                         **({"reference": d["gold_code"]} if ref else {})) for d in mbpp]
progs += [M.humaneval_program(M.extract_code(gold_completion(d)), d["test"], d["entry_point"], d["original_prompt"]) for d in he]
out = []
for p in progs:
    t = time.perf_counter()
    r = run_program(p, SandboxLimits(timeout_s=10))
    out.append([time.perf_counter() - t, r.passed])
print(json.dumps({"trivial": out[:trivial], "gold": out[trivial:]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--checkout", action="append", default=[], help="a checkout to time (repeatable; default: this one)"
    )
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--trivial", type=int, default=50, help="runs of the trivial program per round")
    args = ap.parse_args()
    checkouts = [Path(c).resolve() for c in args.checkout] or [ROOT]
    times: dict[Path, dict[str, list[float]]] = {c: {"trivial": [], "gold": []} for c in checkouts}
    passed: dict[Path, int] = {}
    for _ in range(args.rounds):
        for c in checkouts:
            env_path = f"{c}:{c / 'plugins'}"
            res = subprocess.run(
                [sys.executable, "-c", WORKER, args.data, str(args.trivial)],
                capture_output=True,
                text=True,
                env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
                cwd=c,
            )
            if res.returncode:
                sys.exit(f"{c}: {res.stderr[-2000:]}")
            r = json.loads(res.stdout.strip().splitlines()[-1])
            for kind in ("trivial", "gold"):
                times[c][kind] += [t for t, _ in r[kind]]
            passed[c] = sum(ok for _, ok in r["gold"])
    print(
        "| checkout | trivial program: median / p90 s | gold programs: median / p90 s | golds passed | ratio (median, gold) |"
    )
    print("|---|---|---|---|---|")
    first = statistics.median(times[checkouts[0]]["gold"])
    for c in checkouts:
        t, g = sorted(times[c]["trivial"]), sorted(times[c]["gold"])
        p90 = lambda v: v[int(0.9 * (len(v) - 1))]  # noqa: E731
        print(
            f"| {c} | {statistics.median(t):.3f} / {p90(t):.3f} | {statistics.median(g):.3f} / {p90(g):.3f} | "
            f"{passed[c]} / {len(g) // args.rounds} | {statistics.median(g) / first:.2f}× |"
        )


if __name__ == "__main__":
    main()
