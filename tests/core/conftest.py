"""Fixtures of the core tests: a clean plugin host around every test, and a factory of real
on-disk distributions that expose ``unisd`` entry points."""

from __future__ import annotations

import importlib
import itertools
import sys
import textwrap
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import unisd.plugins as plugins

UNISD_ENV = (
    "UNISD_DISABLE_PLUGIN_AUTOLOAD",
    "UNISD_PLUGINS",
    "UNISD_BLOCK_PLUGINS",
    "UNISD_SKIP_BROKEN_PLUGINS",
    "UNISD_TRACE_PLUGINS",
)


@pytest.fixture(autouse=True)
def _clean_plugin_state(monkeypatch: pytest.MonkeyPatch):
    """No UNISD_* plugin variable leaks in or out; the process-wide host is forgotten before and
    after each test so that every test sees (and leaves) a host built from a clean environment."""
    for var in UNISD_ENV:
        monkeypatch.delenv(var, raising=False)
    plugins.reset_host()
    yield
    plugins.reset_host()


_counter = itertools.count()


def unique(prefix: str) -> str:
    """A module/distribution name no other test (or earlier run in this process) has used."""
    return f"{prefix}_{next(_counter)}_{uuid.uuid4().hex[:8]}"


@dataclass
class FakeDist:
    root: Path
    name: str
    version: str
    modules: list[str] = field(default_factory=list)


class DistFactory:
    """Writes ``<root>/<name>-<version>.dist-info/{METADATA,entry_points.txt}`` plus modules in a
    fresh directory per distribution, and prepends the directory to ``sys.path``."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp_path, self.monkeypatch = tmp_path, monkeypatch
        self.modules: list[str] = []

    @staticmethod
    def unique(prefix: str) -> str:
        return unique(prefix)

    def module(self, name: str, source: str, root: Path | None = None) -> Path:
        """A top-level module ``name`` (on sys.path), without any distribution metadata."""
        if root is None:
            root = self.tmp_path / unique("mods")
            root.mkdir()
            self.monkeypatch.syspath_prepend(str(root))
        path = root / f"{name}.py"
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        self.modules.append(name)
        importlib.invalidate_caches()
        return path

    def dist(
        self,
        name: str,
        entry_points: dict[str, str],
        modules: dict[str, str] | None = None,
        version: str = "1.2.3",
        group: str = "unisd",
    ) -> FakeDist:
        root = self.tmp_path / unique("site")
        root.mkdir()
        info = root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: test plugin\n", encoding="utf-8"
        )
        eps = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text(f"[{group}]\n{eps}", encoding="utf-8")
        for mod, src in (modules or {}).items():
            self.module(mod, src, root=root)
        self.monkeypatch.syspath_prepend(str(root))
        importlib.invalidate_caches()
        return FakeDist(root, name, version, list(modules or {}))

    def cleanup(self) -> None:
        for name in self.modules:
            for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
                del sys.modules[key]
        importlib.invalidate_caches()


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    factory = DistFactory(tmp_path, monkeypatch)
    yield factory
    factory.cleanup()


@pytest.fixture
def unique_name():
    """``unique_name("prefix")`` → a fresh module-safe name."""
    return unique
