"""Runtime hooks: PluginHost.call, component objects as hook implementations, and a meta-test
that every hookspec is documented and actually invoked by the engine."""

from __future__ import annotations

import ast
import inspect
import re
import types
from pathlib import Path

import pluggy
import pytest

from unisd import hookimpl, hookspecs
from unisd.components.base import Component, ComponentConfig
from unisd.components.kinds import StabilityGuard
from unisd.plugins import PluginError, PluginHost, UniSDPluginManager

ROOT = Path(__file__).resolve().parents[2]
ENGINE_SOURCES = sorted((ROOT / "unisd" / "engine").glob("*.py")) + [ROOT / "unisd" / "plugins.py"]


def _specs() -> dict[str, types.FunctionType]:
    marker = f"{hookspecs.PROJECT}_spec"
    return {n: f for n, f in vars(hookspecs).items() if inspect.isfunction(f) and hasattr(f, marker)}


@pytest.fixture
def host() -> PluginHost:
    return PluginHost().load()


class _Cfg(ComponentConfig):
    type: str = "hooked"


class HookedGuard(StabilityGuard):
    """A component implementing runtime hooks as plain (unmarked) methods."""

    Config = _Cfg
    unisd_not_a_method = "an attribute that only looks like a hook"

    def __init__(self, config=None) -> None:
        super().__init__(config or _Cfg())
        self.steps: list[tuple[int, dict]] = []
        self.restored = None

    def unisd_on_step_end(self, run, step, metrics):
        self.steps.append((step, metrics))

    def unisd_checkpoint_state(self, run):
        return {"hooked": {"n": len(self.steps)}}

    def unisd_load_checkpoint_state(self, run, state):
        self.restored = state.get("hooked")


# -- PluginHost.call -----------------------------------------------------------------------------
def test_call_passes_only_the_arguments_an_implementation_asks_for(host):
    seen = {}

    class Plug:
        @hookimpl
        def unisd_on_step_end(self, step):  # a subset of (run, step, metrics)
            seen["step"] = step

    host.register_plugin(Plug(), "subset", package="pkg-subset")
    assert host.call("unisd_on_step_end", run=object(), step=7, metrics={"loss": 1.0}) == []
    assert seen == {"step": 7}


def test_call_collects_non_none_results_in_pluggy_call_order(host):
    def make(tag):
        class P:
            @hookimpl
            def unisd_checkpoint_state(self, run):
                return {tag: run}

            @hookimpl
            def unisd_on_train_end(self, run):
                return None

        return P()

    host.register_plugin(make("first"), "first")
    host.register_plugin(make("second"), "second")
    # same order as pluggy's own hook call (last registered first), None results dropped
    assert host.call("unisd_checkpoint_state", run=1) == host.pm.hook.unisd_checkpoint_state(run=1)
    assert host.call("unisd_checkpoint_state", run=1) == [{"second": 1}, {"first": 1}]
    assert host.call("unisd_on_train_end", run=1) == []


def test_call_error_names_plugin_package_and_hook(host):
    class Faulty:
        @hookimpl
        def unisd_on_step_end(self, run, step, metrics):
            raise ZeroDivisionError("step went wrong")

    host.register_plugin(Faulty(), "faulty-plugin", package="pkg-faulty")
    with pytest.raises(PluginError) as ei:
        host.call("unisd_on_step_end", run=None, step=3, metrics={})
    assert str(ei.value) == (
        "plugin 'faulty-plugin' from package 'pkg-faulty' raised in hook "
        "unisd_on_step_end: ZeroDivisionError: step went wrong"
    )
    assert isinstance(ei.value.__cause__, ZeroDivisionError)


def test_call_error_from_a_component_names_the_component_registration(host):
    class Exploding(HookedGuard):
        def unisd_on_train_start(self, run):
            raise RuntimeError("no GPU")

    host.pm.register(Exploding(), name="component:exploding:1")
    with pytest.raises(
        PluginError, match=r"^plugin 'component:exploding:1' raised in hook unisd_on_train_start: RuntimeError: no GPU$"
    ):
        host.call("unisd_on_train_start", run=None)


def test_call_stops_at_the_first_failing_implementation(host):
    calls = []

    class Ok:
        def __init__(self, tag):
            self.tag = tag

        @hookimpl
        def unisd_on_train_end(self, run):
            calls.append(self.tag)

    class Bad:
        @hookimpl
        def unisd_on_train_end(self, run):
            raise ValueError("bad")

    host.register_plugin(Ok("a"), "a")
    host.register_plugin(Bad(), "bad")
    host.register_plugin(Ok("c"), "c")
    with pytest.raises(PluginError, match="'bad'"):
        host.call("unisd_on_train_end", run=None)
    assert calls == ["c"]  # pluggy order (LIFO): c ran, bad raised, a never ran


def test_call_of_unknown_hook_fails(host):
    with pytest.raises(AttributeError):
        host.call("unisd_on_nothing", run=None)


def test_trace_prints_each_hook_call(monkeypatch, capsys):
    monkeypatch.setenv("UNISD_TRACE_PLUGINS", "1")
    host = PluginHost().load()
    capsys.readouterr()
    host.pm.register(HookedGuard(), name="component:hooked:9")
    host.call("unisd_on_step_end", run=None, step=1, metrics={})
    assert "[unisd-trace] unisd_on_step_end -> component:hooked:9" in capsys.readouterr().err


# -- component objects as hook implementations ------------------------------------------------------
def test_component_methods_are_hooks_without_markers(host):
    comp = HookedGuard()
    name = host.pm.register(comp, name="component:hooked:1")
    assert name == "component:hooked:1"
    impls = {hc.name for hc in host.pm.get_hookcallers(comp)}
    assert impls == {"unisd_on_step_end", "unisd_checkpoint_state", "unisd_load_checkpoint_state"}
    host.call("unisd_on_step_end", run=None, step=1, metrics={"loss": 0.5})
    host.call("unisd_on_step_end", run=None, step=2, metrics={"loss": 0.4})
    assert comp.steps == [(1, {"loss": 0.5}), (2, {"loss": 0.4})]
    assert host.call("unisd_checkpoint_state", run=None) == [{"hooked": {"n": 2}}]
    host.call("unisd_load_checkpoint_state", run=None, state={"hooked": {"n": 5}})
    assert comp.restored == {"n": 5}
    host.pm.unregister(comp)
    assert host.call("unisd_checkpoint_state", run=None) == []


def test_plain_objects_and_modules_need_markers():
    pm = UniSDPluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)

    class NotAComponent:
        def unisd_on_train_end(self, run):
            raise AssertionError("must not be called")

    mod = types.ModuleType("unmarked_module")
    mod.unisd_on_train_end = lambda run: None
    pm.register(NotAComponent(), name="plain")
    pm.register(mod, name="module")
    assert pm.hook.unisd_on_train_end.get_hookimpls() == []
    # a Component subclass is accepted unmarked
    pm.register(HookedGuard(), name="component")
    assert [i.plugin_name for i in pm.hook.unisd_on_step_end.get_hookimpls()] == ["component"]


def test_component_hook_with_wrong_arguments_is_rejected(host):
    class Wrong(HookedGuard):
        def unisd_on_step_end(self, run, step, metrics, extra):
            pass

    with pytest.raises(pluggy.PluginValidationError, match="extra"):
        host.pm.register(Wrong(), name="component:wrong:1")


def test_component_with_a_misspelt_hook_is_caught_by_check_pending():
    pm = UniSDPluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)

    class Typo(HookedGuard):
        def unisd_on_stepend(self, run):
            pass

    pm.register(Typo(), name="typo")
    with pytest.raises(pluggy.PluginValidationError, match="unisd_on_stepend"):
        pm.check_pending()


def test_base_component_is_a_valid_plugin_with_no_hooks(host):
    comp = Component(ComponentConfig(type="bare"))
    host.pm.register(comp, name="bare")
    assert host.pm.get_hookcallers(comp) == []


# -- hookspec meta-test ----------------------------------------------------------------------------
def test_hookspecs_are_the_expected_set():
    assert set(_specs()) >= {
        "unisd_register",
        "unisd_on_train_start",
        "unisd_on_step_end",
        "unisd_checkpoint_state",
        "unisd_load_checkpoint_state",
        "unisd_on_train_end",
    }


def test_every_hookspec_has_a_docstring():
    missing = [n for n, f in _specs().items() if len((inspect.getdoc(f) or "").strip()) < 20]
    assert not missing, f"hookspecs without a (meaningful) docstring: {missing}"


def test_every_hookspec_is_invoked_by_the_engine():
    """unisd_register by the plugin host; every runtime hook through its typed host method, called
    from the engine."""
    engine = "\n".join(p.read_text(encoding="utf-8") for p in ENGINE_SOURCES if p.name != "plugins.py")
    assert "hook.unisd_register" in (ROOT / "unisd" / "plugins.py").read_text(encoding="utf-8")
    missing = [
        n for n in _specs() if n != "unisd_register" and not re.search(rf"host\.{n.removeprefix('unisd_')}\(", engine)
    ]
    assert not missing, (
        f"hookspecs never invoked in the engine: {missing} (a hook nobody calls is a broken promise to plugin authors)"
    )


def test_every_runtime_hook_has_a_typed_host_method(host, monkeypatch):
    """``host.on_step_end(run, step, metrics)`` and the like: the spec's arguments, in its order,
    handed to that hook and no other."""
    seen = []
    monkeypatch.setattr(host, "call", lambda hook, **kwargs: seen.append((hook, kwargs)) or [])
    for name, spec in _specs().items():
        if name == "unisd_register":
            continue
        method = getattr(PluginHost, name.removeprefix("unisd_"), None)
        assert method is not None, f"PluginHost has no typed method for {name}"
        params = list(inspect.signature(spec).parameters)
        assert list(inspect.signature(method).parameters)[1:] == params, name
        seen.clear()
        getattr(host, name.removeprefix("unisd_"))(*[f"<{p}>" for p in params])
        assert seen == [(name, {p: f"<{p}>" for p in params})]


def _host_calls() -> list[tuple[str, str, int, str, set[str]]]:
    out = []
    for path in ENGINE_SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "call"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and node.args[0].value.startswith("unisd_")
            ):
                out.append((path.name, node.args[0].value, node.lineno, "", {k.arg for k in node.keywords}))
    return out


def test_engine_passes_every_hookspec_argument():
    """PluginHost.call hands an implementation ``kwargs[name]`` for each argument it declares: a call
    site that omits one of the spec's arguments would crash any plugin that asks for it."""
    specs = _specs()
    calls = _host_calls()
    assert calls, "no host.call('unisd_…') found in the engine"
    problems = []
    for fname, hook, line, _, kwargs in calls:
        if hook not in specs:
            problems.append(f"{fname}:{line}: calls unknown hook {hook}")
            continue
        expected = set(inspect.signature(specs[hook]).parameters)
        if kwargs != expected:
            problems.append(f"{fname}:{line}: {hook} called with {sorted(kwargs)}, spec has {sorted(expected)}")
    assert not problems, "\n".join(problems)


def test_runtime_hooks_go_through_the_plugin_manager(host):
    """host.call runs pm.hook: a pluggy wrapper sees the call, and a failure names the raising plugin."""
    from unisd import hookimpl
    from unisd.plugins import PluginError

    seen = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def unisd_on_step_end(self, run, step, metrics):
            seen.append(("before", step))
            result = yield
            seen.append(("after", step))
            return result

    class Broken:
        @hookimpl
        def unisd_on_step_end(self, run, step, metrics):
            raise RuntimeError("boom")

    wrapper = Wrapper()
    host.pm.register(wrapper, name="wrapper-plugin")
    comp = HookedGuard()
    host.pm.register(comp, name="component:hooked:7")
    host.call("unisd_on_step_end", run=None, step=3, metrics={})
    assert seen == [("before", 3), ("after", 3)] and comp.steps == [(3, {})]
    broken = Broken()
    host.pm.register(broken, name="component:broken:1")
    with pytest.raises(
        PluginError, match=r"plugin 'component:broken:1' raised in hook unisd_on_step_end: RuntimeError: boom"
    ):
        host.call("unisd_on_step_end", run=None, step=4, metrics={})
    for p in (wrapper, comp, broken):
        host.pm.unregister(p)


def test_the_register_hook_names_every_registry():
    from unisd.registries import Registries

    doc = inspect.getdoc(hookspecs.unisd_register)
    missing = [name for name in vars(Registries()) if f"``{name}``" not in doc]
    assert not missing, f"unisd_register's docstring does not name the registries {missing}"
