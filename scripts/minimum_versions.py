"""Print pip constraints that pin every declared dependency to its lower bound.

    python scripts/minimum_versions.py [--extra embedded ...] > constraints.txt
    pip install 'torch==2.13.0' -c constraints.txt -e '.[dev,embedded]'
    python scripts/minimum_versions.py --extra embedded --check   # in that environment


CI installs these and runs the quick tests, so a lower bound in pyproject.toml is one the code has
run against. torch is left out: the only CPU build on the CI machine's disk is 2.13.0, and an older
release from PyPI is a CUDA build of several GB. A dependency without a ``>=`` bound is an error.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
UNCHECKED = {"torch"}


def lower_bounds(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    declared = list(project["dependencies"])
    for extra in extras:
        if extra not in project.get("optional-dependencies", {}):
            raise SystemExit(f"{pyproject}: no extra named {extra!r}")
        declared += project["optional-dependencies"][extra]
    pins = []
    for text in declared:
        req = Requirement(text)
        if req.name in UNCHECKED:
            continue
        lows = [s.version for s in req.specifier if s.operator == ">="]
        if len(lows) != 1:
            raise SystemExit(f"{pyproject}: {text!r} needs exactly one '>=' lower bound")
        pins.append(f"{req.name}=={lows[0]}")
    return pins


def check(pins: list[str]) -> int:
    """Print each pinned package's installed version; 1 if one is missing or not at its bound."""
    wrong = 0
    for pin in pins:
        name, bound = pin.split("==")
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "missing"
        ok = installed != "missing" and Version(installed) == Version(bound)
        wrong += not ok
        print(f"{name:<22} {bound:<10} {installed:<10} {'ok' if ok else 'NOT AT THE BOUND'}")
    return 1 if wrong else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", action="append", default=[], help="also pin this extra's dependencies")
    parser.add_argument("--check", action="store_true", help="check the installed versions against the pins")
    args = parser.parse_args(argv)
    pins = lower_bounds(ROOT / "pyproject.toml", args.extra)
    if args.check:
        return check(pins)
    sys.stdout.write("".join(f"{pin}\n" for pin in pins))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
