"""Every extension kind is a component that receives the run's hooks: a dataset adapter, a
generation backend and a context builder that an agreement measure builds (``run.adopt``), all
from a plugin module, with no core edit."""

from __future__ import annotations

import sys
import textwrap

import pytest

from unisd.plugins import get_host, reset_host

PLUGIN = textwrap.dedent("""
    from unisd import hookimpl
    from unisd_plugins.agreement.builders import RandomContexts
    from unisd_plugins.datasets.jsonl import JsonlAdapter
    from unisd_plugins.generation.hf import HFGenerate

    CALLS = []


    class Counting:
        def unisd_on_train_start(self, run):
            CALLS.append((self.kind, "start", run.step))

        def unisd_on_step_end(self, run, step):
            CALLS.append((self.kind, "step", step))

        def unisd_on_train_end(self, run):
            CALLS.append((self.kind, "end", run.step))


    class CountingJsonl(Counting, JsonlAdapter):
        pass


    class CountingHF(Counting, HFGenerate):
        pass


    class CountingContexts(Counting, RandomContexts):
        pass


    @hookimpl
    def unisd_register(registry):
        registry.datasets.add("counting_jsonl", CountingJsonl)
        registry.generators.add("counting_hf", CountingHF)
        registry.context_builders.add("counting_contexts", CountingContexts)
""")


@pytest.fixture
def counting(tmp_path, monkeypatch):
    (tmp_path / "counting_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("UNISD_PLUGINS", "counting_plugin")
    reset_host()
    get_host()
    yield sys.modules["counting_plugin"]
    sys.modules.pop("counting_plugin", None)
    monkeypatch.delenv("UNISD_PLUGINS")
    reset_host()


def test_adapters_backends_and_adopted_builders_receive_the_run_hooks(counting, make_recipe, records_file, tmp_path):
    from unisd.runs.launch import train

    recipe = make_recipe(
        "vanilla",
        f"data.dataset={{type: counting_jsonl, path: '{records_file}'}}",
        "generation.backend=counting_hf",
        "components=[{type: agreement, contexts: {type: counting_contexts, k: 2}}]",
        "training.max_steps=2",
    )
    train(recipe, tmp_path / "run")
    for kind in ("dataset", "generator", "context_builder"):
        assert [c[1:] for c in counting.CALLS if c[0] == kind] == [
            ("start", 0),
            ("step", 1),
            ("step", 2),
            ("end", 2),
        ], kind
    # the run's hooks end with the run: a second run's components start from nothing
    assert not [p for p in get_host().pm.get_plugins() if isinstance(p, counting.Counting)]
