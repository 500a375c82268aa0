"""Plugin discovery through real ``unisd`` entry points of on-disk distributions, and the
UNISD_* environment variables."""

from __future__ import annotations

import json
import sys
import warnings

import pytest

from unisd import plugins as plugins_mod
from unisd.plugins import PluginError, PluginHost, PluginInfo, get_host, reset_host

BUILTIN_PLUGINS = {
    "divergences",
    "objectives",
    "teachers",
    "agreement",
    "ema",
    "contrastive",
    "feature_matching",
    "clipping",
    "opening",
    "datasets",
    "generation",
    "recipes",
    "experiments",
    "evaluation",
}

PLUGIN_SRC = """
from unisd import hookimpl

@hookimpl
def unisd_register(registry):
    registry.guards.add("{component}", "{impl}:DemoGuard", description="a demo guard")
"""

IMPL_SRC = """
from pydantic import Field
from unisd.components.base import ComponentConfig
from unisd.components.kinds import StabilityGuard


class DemoGuardConfig(ComponentConfig):
    strength: float = Field(0.5, ge=0.0, description="how hard the demo guard pushes")


class DemoGuard(StabilityGuard):
    Config = DemoGuardConfig
"""


@pytest.fixture
def demo(dists, unique_name):
    """A third-party distribution whose plugin registers guard 'demo_guard' lazily from a second
    module (so the implementation is imported only when the guard is used)."""

    def make(component: str = "demo_guard", version: str = "2.5.0", ep_name: str | None = None):
        plug, impl = unique_name("demo_plugin"), unique_name("demo_impl")
        ep = ep_name or unique_name("demo")
        d = dists.dist(
            unique_name("unisd-demo").replace("_", "-"),
            {ep: plug},
            version=version,
            modules={plug: PLUGIN_SRC.format(component=component, impl=impl), impl: IMPL_SRC},
        )
        d.ep, d.plugin, d.impl = ep, plug, impl
        return d

    return make


def _builtin_names(host: PluginHost) -> set[str]:
    return {n for n, info in host.plugins.items() if info.builtin}


# -- built-ins ------------------------------------------------------------------------------------
def test_builtins_come_from_the_unisd_distribution():
    host = PluginHost().load()
    assert _builtin_names(host) == BUILTIN_PLUGINS
    from unisd import __version__

    for name in BUILTIN_PLUGINS:
        info = host.plugins[name]
        assert info.package == "unisd" and info.version == __version__
        assert info.module == f"unisd_plugins.{name}"
    assert host.registries.guards.origin("clip") == "unisd"
    assert host.registries.divergences.names() == ["forward_kl", "jsd", "reverse_kl"]
    # start-up froze every registry
    assert all(reg.frozen for reg in host.registries)


def test_get_host_is_cached_until_reset():
    h1 = get_host()
    assert get_host() is h1
    reset_host()
    h2 = get_host()
    assert h2 is not h1 and h2.registries.guards.names() == h1.registries.guards.names()


# -- third-party distributions -------------------------------------------------------------------
def test_third_party_entry_point_registers_with_distribution_origin(demo):
    d = demo()
    host = PluginHost().load()
    assert host.plugins[d.ep] == PluginInfo(d.ep, d.plugin, d.name, "2.5.0", False)
    guards = host.registries.guards
    assert guards.origin("demo_guard") == d.name
    assert guards.entry("demo_guard").description == "a demo guard"
    assert host.origin_version(d.name) == "2.5.0"
    # registration is lazy: the implementation module is imported only on get
    assert d.plugin in sys.modules and d.impl not in sys.modules
    cls = guards.get("demo_guard")
    assert cls.__module__ == d.impl
    # built-ins are untouched
    assert _builtin_names(host) == BUILTIN_PLUGINS and guards.origin("clip") == "unisd"


def test_third_party_component_is_usable_in_recipes_and_schema(demo):
    demo()
    from unisd.recipe import recipe_model, validate

    recipe = validate({"components": [{"type": "demo_guard", "strength": 2.0}]})
    assert recipe.components[0].type == "demo_guard" and recipe.components[0].strength == 2.0
    schema = json.dumps(recipe_model().model_json_schema())
    assert "demo_guard" in schema and "how hard the demo guard pushes" in schema
    from unisd.recipe import RecipeError

    with pytest.raises(RecipeError, match=r"components\[0\]\.strength: Input should be greater than or equal to 0"):
        validate({"components": [{"type": "demo_guard", "strength": -1}]})


def test_plugins_list_cli_shows_third_party_package_and_version(demo, capsys):
    d = demo(version="7.0.1")
    from unisd.cli.main import main

    assert main(["plugins", "list", "--kind", "guard", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert by_name["demo_guard"] == {
        "kind": "guard",
        "name": "demo_guard",
        "package": d.name,
        "version": "7.0.1",
        "description": "a demo guard",
    }
    assert by_name["clip"]["package"] == "unisd"


def test_plugin_failing_to_import_names_entry_point_and_package(dists, unique_name):
    mod = unique_name("broken_plugin")
    d = dists.dist(
        "unisd-broken-" + mod[-8:], {"brokenep": mod}, modules={mod: "import a_module_that_does_not_exist_xyz\n"}
    )
    with pytest.raises(PluginError) as ei:
        PluginHost().load()
    msg = str(ei.value)
    assert f"plugin 'brokenep' from package '{d.name}' failed to import ({mod})" in msg
    assert "ModuleNotFoundError" in msg and "a_module_that_does_not_exist_xyz" in msg
    assert "UNISD_SKIP_BROKEN_PLUGINS=1" in msg  # tells how to get past it
    assert isinstance(ei.value.__cause__, ModuleNotFoundError)


def test_entry_point_naming_a_missing_module(dists, unique_name):
    missing = unique_name("not_there")
    d = dists.dist(unique_name("unisd-ghost").replace("_", "-"), {"ghost": missing})
    with pytest.raises(PluginError, match=rf"plugin 'ghost' from package '{d.name}' failed to import \({missing}\)"):
        PluginHost().load()


def test_skip_broken_plugins_warns_and_keeps_the_rest(dists, unique_name, demo, monkeypatch):
    mod = unique_name("broken_plugin")
    bad = dists.dist(
        unique_name("unisd-bad").replace("_", "-"),
        {"badep": mod},
        modules={mod: "raise RuntimeError('plugin exploded')\n"},
    )
    good = demo()
    monkeypatch.setenv("UNISD_SKIP_BROKEN_PLUGINS", "1")
    with pytest.warns(
        UserWarning, match=rf"plugin 'badep' from package '{bad.name}' failed to import.*plugin exploded.*skipped"
    ):
        host = PluginHost().load()
    assert "badep" not in host.plugins
    assert host.registries.guards.origin("demo_guard") == good.name
    assert _builtin_names(host) == BUILTIN_PLUGINS
    assert len(host.skipped) == 1 and "badep" in host.skipped[0][0]


@pytest.mark.parametrize("value", ["0", "false", "no", ""])
def test_skip_broken_flag_off_values(dists, unique_name, monkeypatch, value):
    mod = unique_name("broken_plugin")
    dists.dist(unique_name("unisd-bad").replace("_", "-"), {"badep": mod}, modules={mod: "raise RuntimeError('x')\n"})
    monkeypatch.setenv("UNISD_SKIP_BROKEN_PLUGINS", value)
    with pytest.raises(PluginError, match="badep"):
        PluginHost().load()


def test_skipped_plugins_are_reported_by_plugins_list(dists, unique_name, monkeypatch, capsys):
    mod = unique_name("broken_plugin")
    dists.dist(
        unique_name("unisd-bad").replace("_", "-"), {"badep": mod}, modules={mod: "raise RuntimeError('boom')\n"}
    )
    monkeypatch.setenv("UNISD_SKIP_BROKEN_PLUGINS", "1")
    from unisd.cli.main import main

    with pytest.warns(UserWarning):
        assert main(["plugins", "list"]) == 0
    out = capsys.readouterr().out
    assert "skipped: plugin 'badep'" in out and "clip" in out


CLASH_SRC = """
from unisd import hookimpl

@hookimpl
def unisd_register(registry):
    registry.divergences.add("forward_kl", "somewhere.else:MyKL")
"""


@pytest.fixture
def clash(dists, unique_name):
    """A third-party distribution whose plugin registers divergence 'forward_kl', a built-in name.
    Its entry-point name sorts before every built-in's."""
    mod = unique_name("clash_plugin")
    d = dists.dist(unique_name("unisd-clash").replace("_", "-"), {"aaa_clash": mod}, modules={mod: CLASH_SRC})
    d.ep = "aaa_clash"
    return d


def test_component_name_taken_by_a_builtin_names_both_packages(clash):
    with pytest.raises(PluginError) as ei:
        PluginHost().load()
    msg = str(ei.value)
    assert "raised in hook unisd_register: DuplicateEntryError: divergence 'forward_kl' is registered twice" in msg
    assert "by unisd (unisd_plugins.divergences" in msg
    assert f"by {clash.name} (somewhere.else:MyKL)" in msg


def test_component_name_clash_is_blamed_on_the_third_party_plugin(clash):
    with pytest.raises(PluginError) as ei:
        PluginHost().load()
    msg = str(ei.value)
    assert msg.startswith(f"plugin 'aaa_clash' from package '{clash.name}' raised in hook unisd_register"), msg
    assert f"registered twice: by unisd (unisd_plugins.divergences.functions:ForwardKL) and by {clash.name}" in msg


def test_component_name_clash_skipped_keeps_builtin(clash, monkeypatch):
    monkeypatch.setenv("UNISD_SKIP_BROKEN_PLUGINS", "1")
    with pytest.warns(UserWarning, match="registered twice"):
        host = PluginHost().load()
    divs = host.registries.divergences
    assert divs.origin("forward_kl") == "unisd"
    assert {"jsd", "reverse_kl"} <= set(divs.names())


def test_builtins_are_loaded_before_third_party_plugins(demo, monkeypatch, capsys):
    """Loading order is documented as built-ins first, whatever the entry-point names."""
    d = demo(ep_name="aaaa_first_by_name")
    monkeypatch.setenv("UNISD_TRACE_PLUGINS", "1")
    PluginHost().load()
    loads = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("[unisd-plugins] loading ")]
    mine = loads.index(f"[unisd-plugins] loading aaaa_first_by_name = {d.plugin} from {d.name}")
    builtin_idx = [i for i, ln in enumerate(loads) if ln.endswith(" from unisd")]
    assert len(builtin_idx) == len(BUILTIN_PLUGINS) and max(builtin_idx) < mine


def test_builtins_run_unisd_register_before_third_party_plugins(demo, monkeypatch, capsys):
    d = demo()
    monkeypatch.setenv("UNISD_TRACE_PLUGINS", "1")
    PluginHost().load()
    regs = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("[unisd-plugins] unisd_register: ")]
    mine = regs.index(f"[unisd-plugins] unisd_register: {d.ep} ({d.name})")
    builtin_idx = [i for i, ln in enumerate(regs) if ln.endswith(" (unisd)")]
    assert max(builtin_idx) < mine


def test_entry_point_name_taken_by_a_builtin_plugin(dists, unique_name):
    mod = unique_name("impostor")
    d = dists.dist(unique_name("unisd-impostor").replace("_", "-"), {"clipping": mod}, modules={mod: "X = 1\n"})
    with pytest.raises(PluginError) as ei:
        PluginHost().load()
    msg = str(ei.value)
    assert "plugin name 'clipping' is used by unisd (unisd_plugins.clipping)" in msg
    assert f"and by {d.name} ({mod})" in msg
    assert mod not in sys.modules  # the impostor is never imported


def test_plugin_raising_in_unisd_register_names_package_and_hook(dists, unique_name):
    mod = unique_name("raising_plugin")
    d = dists.dist(
        unique_name("unisd-raiser").replace("_", "-"),
        {"raiser": mod},
        modules={
            mod: """
        from unisd import hookimpl

        @hookimpl
        def unisd_register(registry):
            raise ValueError("cannot register today")
    """
        },
    )
    with pytest.raises(PluginError) as ei:
        PluginHost().load()
    assert str(ei.value).startswith(
        f"plugin 'raiser' from package '{d.name}' raised in hook unisd_register: ValueError: cannot register today"
    )
    assert isinstance(ei.value.__cause__, ValueError)


def test_plugin_with_a_bad_hook_signature_is_not_a_valid_plugin(dists, unique_name):
    mod = unique_name("badsig_plugin")
    d = dists.dist(
        unique_name("unisd-badsig").replace("_", "-"),
        {"badsig": mod},
        modules={
            mod: """
        from unisd import hookimpl

        @hookimpl
        def unisd_register(registry, not_a_hook_argument):
            pass
    """
        },
    )
    with pytest.raises(
        PluginError, match=rf"plugin 'badsig' from package '{d.name}' is not a valid plugin(?s:.*)not_a_hook_argument"
    ):
        PluginHost().load()


TYPO_SRC = """
from unisd import hookimpl

@hookimpl
def unisd_on_stepend(run, step):  # typo of unisd_on_step_end
    pass
"""


def test_plugin_implementing_an_unknown_hook_is_reported_as_plugin_error(dists, unique_name):
    mod = unique_name("typo_plugin")
    d = dists.dist(unique_name("unisd-typo").replace("_", "-"), {"typo": mod}, modules={mod: TYPO_SRC})
    with pytest.raises(PluginError, match=rf"'typo'.*{d.name}.*unisd_on_stepend"):
        PluginHost().load()


def test_skip_broken_plugins_skips_a_plugin_with_an_unknown_hook(dists, unique_name, monkeypatch):
    mod = unique_name("typo_plugin")
    dists.dist(unique_name("unisd-typo").replace("_", "-"), {"typo": mod}, modules={mod: TYPO_SRC})
    monkeypatch.setenv("UNISD_SKIP_BROKEN_PLUGINS", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        host = PluginHost().load()
    assert "typo" not in host.plugins


# -- environment variables --------------------------------------------------------------------------
def test_disable_autoload_hides_third_party_but_keeps_builtins(demo, monkeypatch):
    d = demo()
    monkeypatch.setenv("UNISD_DISABLE_PLUGIN_AUTOLOAD", "1")
    host = PluginHost().load()
    assert d.ep not in host.plugins and "demo_guard" not in host.registries.guards
    assert d.plugin not in sys.modules  # not even imported
    assert _builtin_names(host) == BUILTIN_PLUGINS
    assert "clip" in host.registries.guards
    # and the same distribution is loaded once the variable is gone
    monkeypatch.delenv("UNISD_DISABLE_PLUGIN_AUTOLOAD")
    assert "demo_guard" in PluginHost().load().registries.guards


def test_unisd_plugins_loads_module_plugins(dists, unique_name, monkeypatch):
    impl = unique_name("env_impl")
    dists.module(impl, IMPL_SRC)
    mods = []
    for comp in ("env_guard_a", "env_guard_b"):
        m = unique_name("env_plugin")
        dists.module(m, PLUGIN_SRC.format(component=comp, impl=impl))
        mods.append(m)
    monkeypatch.setenv("UNISD_PLUGINS", f" {mods[0]} ,{mods[1]},")
    host = PluginHost().load()
    for m, comp in zip(mods, ("env_guard_a", "env_guard_b"), strict=True):
        info = host.plugins[m]
        assert info.module == m and info.builtin is False and info.package != "unisd"
        assert host.registries.guards.origin(comp) == info.package
    assert _builtin_names(host) == BUILTIN_PLUGINS


def test_unisd_plugins_loads_even_with_autoload_disabled(dists, unique_name, monkeypatch):
    impl, m = unique_name("env_impl"), unique_name("env_plugin")
    dists.module(impl, IMPL_SRC)
    dists.module(m, PLUGIN_SRC.format(component="env_guard", impl=impl))
    monkeypatch.setenv("UNISD_PLUGINS", m)
    monkeypatch.setenv("UNISD_DISABLE_PLUGIN_AUTOLOAD", "true")
    assert "env_guard" in PluginHost().load().registries.guards


def test_unisd_plugins_missing_module(unique_name, monkeypatch):
    missing = unique_name("no_env_plugin")
    monkeypatch.setenv("UNISD_PLUGINS", missing)
    with pytest.raises(
        PluginError, match=rf"plugin module '{missing}' from UNISD_PLUGINS failed to import: ModuleNotFoundError"
    ):
        PluginHost().load()


def test_block_plugins_blocks_third_party_and_builtin(demo, monkeypatch):
    d = demo()
    monkeypatch.setenv("UNISD_BLOCK_PLUGINS", f"{d.ep}, clipping")
    host = PluginHost().load()
    assert d.ep not in host.plugins and "clipping" not in host.plugins
    assert d.plugin not in sys.modules
    assert "demo_guard" not in host.registries.guards and "clip" not in host.registries.guards
    assert "forward_kl" in host.registries.divergences
    assert host.pm.is_blocked("clipping") and host.pm.is_blocked(d.ep)
    assert _builtin_names(host) == BUILTIN_PLUGINS - {"clipping"}


def test_trace_plugins_prints_loading_to_stderr(demo, monkeypatch, capsys):
    d = demo()
    monkeypatch.setenv("UNISD_TRACE_PLUGINS", "1")
    monkeypatch.setenv("UNISD_BLOCK_PLUGINS", "ema")
    host = PluginHost().load()
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err
    assert f"[unisd-plugins] loading {d.ep} = {d.plugin} from {d.name}" in err
    assert "[unisd-plugins] loading clipping = unisd_plugins.clipping from unisd" in err
    assert "[unisd-plugins] blocked ema (unisd)" in err
    assert f"[unisd-plugins] unisd_register: {d.ep} ({d.name})" in err
    assert host.trace is True


def test_trace_mentions_autoload_skip(demo, monkeypatch, capsys):
    d = demo()
    monkeypatch.setenv("UNISD_TRACE_PLUGINS", "yes")
    monkeypatch.setenv("UNISD_DISABLE_PLUGIN_AUTOLOAD", "1")
    PluginHost().load()
    assert f"not autoloading {d.ep} ({d.name})" in capsys.readouterr().err


def test_no_trace_output_by_default(demo, capfd):
    demo()
    PluginHost().load()
    captured = capfd.readouterr()
    assert "[unisd-plugins]" not in captured.err and "[unisd-trace]" not in captured.err


def test_env_is_read_at_host_creation(demo, monkeypatch):
    # get_host() caches; reset_host() is how a changed environment takes effect
    d = demo()
    assert "demo_guard" in get_host().registries.guards
    monkeypatch.setenv("UNISD_BLOCK_PLUGINS", d.ep)
    assert "demo_guard" in get_host().registries.guards
    reset_host()
    assert "demo_guard" not in get_host().registries.guards
    assert plugins_mod._HOST is not None
