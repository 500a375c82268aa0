"""The typed, lazy, duplicate-checked :class:`unisd.registry.Registry`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from unisd.components.base import Component
from unisd.registry import (
    DuplicateEntryError,
    FrozenRegistryError,
    Registry,
    RegistryError,
    UnknownEntryError,
)


Base = Component  # an importable base the lazily imported test module can subclass too


class Impl(Base):
    pass


class Other(Base):
    pass


class Unrelated:
    pass


@pytest.fixture
def lazy_module(dists, unique_name):
    """A fresh importable module with ``Impl`` (a Base subclass), ``Wrong`` (not one) and a
    re-export; returns its name. Nothing has imported it yet."""
    name = unique_name("lazy_target")
    dists.module(
        name,
        """
        from unisd.components.base import Component as Base

        IMPORTED = True

        class Impl(Base):
            pass

        class Wrong:
            pass

        instance = Impl(None)
    """,
    )
    assert name not in sys.modules
    return name


# -- add / get ------------------------------------------------------------------------------------
def test_add_object_and_get_returns_it():
    reg = Registry("thing", Base)
    reg.add("impl", Impl, origin="pkg-a", description="an impl")
    assert reg.get("impl") is Impl
    assert "impl" in reg and "nope" not in reg
    assert len(reg) == 1 and list(reg) == ["impl"]
    e = reg.entry("impl")
    assert (e.name, e.origin, e.description, e.loaded, e.lazy_path) == ("impl", "pkg-a", "an impl", True, None)
    assert reg.origin("impl") == "pkg-a"


def test_names_and_entries_are_sorted():
    reg = Registry("thing")
    for n in ("zeta", "alpha", "mu"):
        reg.add(n, object(), origin="o")
    assert reg.names() == ["alpha", "mu", "zeta"]
    assert [e.name for e in reg.entries()] == ["alpha", "mu", "zeta"]


def test_instances_of_base_are_accepted_and_other_objects_rejected_eagerly():
    reg = Registry("thing", Base)
    inst = Impl(None)
    reg.add("inst", inst, origin="o")
    assert reg.get("inst") is inst
    with pytest.raises(RegistryError, match=r"thing 'bad' from pkg-x must be a Component .*Unrelated"):
        reg.add("bad", Unrelated, origin="pkg-x")
    assert "bad" not in reg


@pytest.mark.parametrize("name", ["", " padded", "trailing ", None, 3])
def test_invalid_names_are_rejected(name):
    reg = Registry("thing")
    with pytest.raises(RegistryError, match="name must be a non-empty string"):
        reg.add(name, object(), origin="pkg-z")


def test_lazy_path_is_imported_on_first_get_only(lazy_module):
    reg = Registry("thing", Base)
    reg.add("impl", f"{lazy_module}:Impl", origin="pkg-lazy")
    # registering, listing and looking at the entry import nothing
    assert reg.names() == ["impl"]
    e = reg.entry("impl")
    assert e.loaded is False and e.lazy_path == f"{lazy_module}:Impl"
    assert reg.origin("impl") == "pkg-lazy"
    assert lazy_module not in sys.modules

    cls = reg.get("impl")
    assert lazy_module in sys.modules
    mod = sys.modules[lazy_module]
    assert cls is mod.Impl and issubclass(cls, Base)
    assert reg.entry("impl").loaded is True and reg.entry("impl").lazy_path is None
    assert reg.get("impl") is cls  # cached


def test_lazy_instance_target_checked_with_isinstance(lazy_module):
    reg = Registry("thing", Base)
    reg.add("inst", f"{lazy_module}:instance", origin="o")
    assert isinstance(reg.get("inst"), Base)


# -- idempotence and duplicates ------------------------------------------------------------------
def test_re_adding_same_object_is_a_noop():
    reg = Registry("thing", Base)
    reg.add("impl", Impl, origin="pkg-a", description="first")
    reg.add("impl", Impl, origin="pkg-b", description="second")
    assert len(reg) == 1
    assert reg.origin("impl") == "pkg-a" and reg.entry("impl").description == "first"


def test_re_adding_same_lazy_path_is_a_noop_before_and_after_loading(lazy_module):
    reg = Registry("thing", Base)
    path = f"{lazy_module}:Impl"
    reg.add("impl", path, origin="pkg-a")
    reg.add("impl", path, origin="pkg-a")
    assert lazy_module not in sys.modules  # the duplicate check did not import
    cls = reg.get("impl")
    reg.add("impl", path, origin="pkg-a")  # loaded now: path vs object of the same place
    reg.add("impl", cls, origin="pkg-a")
    assert reg.get("impl") is cls and len(reg) == 1


def test_lazy_path_and_the_object_it_names_are_the_same_target(lazy_module):
    reg = Registry("thing", Base)
    reg.add("impl", f"{lazy_module}:Impl", origin="pkg-a")
    import importlib

    obj = importlib.import_module(lazy_module).Impl
    reg.add("impl", obj, origin="pkg-a")  # same place → no error
    assert reg.get("impl") is obj


def test_re_adding_a_lazy_path_to_a_re_export_after_loading_is_idempotent():
    import json

    reg = Registry("thing")
    reg.add("dec", "json:JSONDecoder", origin="pkg-a")
    assert reg.get("dec") is json.JSONDecoder
    reg.add("dec", "json:JSONDecoder", origin="pkg-a")  # the very same registration again
    reg.add("dec", json.JSONDecoder, origin="pkg-a")


def test_duplicate_with_different_object_names_both_origins():
    reg = Registry("thing", Base)
    reg.add("impl", Impl, origin="pkg-first")
    with pytest.raises(DuplicateEntryError) as ei:
        reg.add("impl", Other, origin="pkg-second")
    msg = str(ei.value)
    assert "thing 'impl' is registered twice" in msg
    assert "pkg-first" in msg and "pkg-second" in msg
    assert f"{__name__}:Impl" in msg and f"{__name__}:Other" in msg
    assert reg.get("impl") is Impl  # the first registration stands


def test_duplicate_with_different_lazy_path_names_both_origins_without_importing(lazy_module):
    reg = Registry("thing", Base)
    reg.add("impl", f"{lazy_module}:Impl", origin="pkg-first")
    with pytest.raises(DuplicateEntryError, match=r"by pkg-first \(.*:Impl\) and by pkg-second \(.*:Wrong\)"):
        reg.add("impl", f"{lazy_module}:Wrong", origin="pkg-second")
    assert lazy_module not in sys.modules


# -- unknown names -------------------------------------------------------------------------------
def test_unknown_name_suggests_close_matches_and_lists_available():
    reg = Registry("divergence")
    for n in ("forward_kl", "reverse_kl", "jsd"):
        reg.add(n, object(), origin="o")
    with pytest.raises(UnknownEntryError) as ei:
        reg.get("forward_lk")
    msg = str(ei.value)
    assert msg.startswith("unknown divergence 'forward_lk'.")
    assert "Did you mean 'forward_kl'" in msg
    assert "Available: forward_kl, jsd, reverse_kl" in msg
    # it is a KeyError too, and str() is not the repr of the message
    assert isinstance(ei.value, KeyError)
    assert not msg.startswith('"')


def test_unknown_name_without_close_match_has_no_hint():
    reg = Registry("divergence")
    reg.add("jsd", object(), origin="o")
    msg = reg.unknown_message("completely-different")
    assert "Did you mean" not in msg and "Available: jsd" in msg


def test_unknown_name_in_empty_registry():
    with pytest.raises(UnknownEntryError, match=r"unknown evaluator 'x'\. Available: \(none registered\)"):
        Registry("evaluator").entry("x")


# -- freezing ------------------------------------------------------------------------------------
def test_freeze_refuses_registration_but_allows_lookup():
    reg = Registry("thing")
    obj = object()
    reg.add("a", obj, origin="o")
    assert not reg.frozen
    reg.freeze()
    assert reg.frozen and "frozen" in repr(reg)
    with pytest.raises(FrozenRegistryError, match=r"cannot register thing 'b' from late-pkg: registries are frozen"):
        reg.add("b", object(), origin="late-pkg")
    # even an idempotent re-add is refused once frozen
    with pytest.raises(FrozenRegistryError):
        reg.add("a", obj, origin="o")
    assert reg.get("a") is obj and reg.names() == ["a"]


# -- type check and bad lazy paths on load --------------------------------------------------------
def test_lazy_target_of_wrong_type_fails_on_load_naming_entry_and_origin(lazy_module):
    reg = Registry("guard", Base)
    reg.add("wrong", f"{lazy_module}:Wrong", origin="pkg-wrong")  # not checked yet
    with pytest.raises(RegistryError) as ei:
        reg.get("wrong")
    msg = str(ei.value)
    assert "guard 'wrong' from pkg-wrong must be a Component" in msg
    assert f"{lazy_module}:Wrong" in msg
    assert reg.entry("wrong").loaded is False  # not cached as loaded
    with pytest.raises(RegistryError, match="must be a Component"):
        reg.get("wrong")  # still fails the second time


def test_lazy_path_without_colon():
    reg = Registry("loss")
    reg.add("x", "some.module.Attr", origin="pkg-c")
    with pytest.raises(
        RegistryError,
        match=r"loss 'x' from pkg-c: lazy target 'some.module.Attr' must look like 'package.module:attribute'",
    ):
        reg.get("x")


def test_lazy_path_with_missing_module(unique_name):
    missing = unique_name("no_such_module")
    reg = Registry("loss")
    reg.add("x", f"{missing}:Thing", origin="pkg-m")
    with pytest.raises(RegistryError) as ei:
        reg.get("x")
    msg = str(ei.value)
    assert f"loss 'x' from pkg-m: cannot import '{missing}'" in msg
    assert "ModuleNotFoundError" in msg


def test_lazy_path_with_module_failing_on_import(dists, unique_name):
    name = unique_name("boom_module")
    dists.module(name, "raise RuntimeError('kaboom at import')\n")
    reg = Registry("loss")
    reg.add("x", f"{name}:Thing", origin="pkg-b")
    with pytest.raises(
        RegistryError, match=rf"loss 'x' from pkg-b: cannot import '{name}': RuntimeError: kaboom at import"
    ):
        reg.get("x")


def test_lazy_path_with_missing_attribute(lazy_module):
    reg = Registry("loss", Base)
    reg.add("x", f"{lazy_module}:Nope", origin="pkg-a")
    with pytest.raises(RegistryError, match=rf"loss 'x' from pkg-a: module '{lazy_module}' has no attribute 'Nope'"):
        reg.get("x")


def test_registry_errors_are_registry_errors():
    # the CLI catches RegistryError: every specific error must be one
    for cls in (DuplicateEntryError, UnknownEntryError, FrozenRegistryError):
        assert issubclass(cls, RegistryError)


# -- the set of registries and the origin-stamping view ------------------------------------------
def test_registries_have_one_registry_per_extension_point():
    from unisd.registries import COMPONENT_KINDS, Registries

    regs = Registries()
    assert set(regs.all()) == {
        "teachers",
        "disagreements",
        "losses",
        "guards",
        "divergences",
        "objectives",
        "context_builders",
        "datasets",
        "evaluators",
        "generators",
        "recipes",
        "experiments",
    }
    assert {r.kind for r in regs} == {
        "teacher",
        "disagreement",
        "loss",
        "guard",
        "divergence",
        "objective",
        "context_builder",
        "dataset",
        "evaluator",
        "generator",
        "recipe",
        "experiment",
    }
    assert set(COMPONENT_KINDS) <= set(regs.all())
    regs.freeze()
    assert all(r.frozen for r in regs)


def test_origin_view_stamps_the_plugin_package():
    from unisd.components.kinds import StabilityGuard
    from unisd.registries import Registries

    class G(StabilityGuard):
        pass

    regs = Registries()
    view = regs.with_origin("pkg-view")
    view.guards.add("g", G, description="d")
    view.guards.add("h", "x.y:H", origin="explicit-origin")
    assert regs.guards.origin("g") == "pkg-view" and regs.guards.origin("h") == "explicit-origin"
    assert view.guards.names() == ["g", "h"] and view.guards.get("g") is G  # other attributes pass through
    with pytest.raises(RegistryError, match="guard 'bad' from pkg-view must be a StabilityGuard"):
        view.guards.add("bad", Unrelated)


def test_a_plugin_names_the_default_entry_of_a_kind():
    from unisd.registry import DuplicateEntryError, Registry

    reg = Registry("teacher")
    assert reg.default is None
    reg.add("base", object(), origin="a", default=True)
    reg.add("other", object(), origin="b")
    assert reg.default == "base"
    with pytest.raises(DuplicateEntryError, match="teacher default is claimed twice: 'base' by a and 'mine' by c"):
        reg.add("mine", object(), origin="c", default=True)


def test_the_builtin_default_teacher_is_base_and_the_core_names_no_teacher():
    from unisd.plugins import get_host

    assert get_host().registries.teachers.default == "base"
    engine = Path(__file__).resolve().parents[2] / "unisd" / "engine" / "trainer.py"
    text = engine.read_text(encoding="utf-8")
    assert '"base"' not in text and '"frozen_copy"' not in text and '"aux_contexts"' not in text


# -- config= : the Config model apart from the component ---------------------------------------------
@pytest.fixture
def split_module(dists, unique_name):
    """A component module that records its import, and a config module apart from it."""
    cfg_name, impl_name = unique_name("split_config"), unique_name("split_impl")
    dists.module(
        cfg_name,
        """
        from unisd.components.base import ComponentConfig

        class SplitConfig(ComponentConfig):
            strength: float = 1.0

        class NotAConfig:
            pass
    """,
    )
    dists.module(
        impl_name,
        f"""
        from unisd.components.base import Component
        from {cfg_name} import SplitConfig

        class Split(Component):
            Config = SplitConfig

        class Mismatched(Component):
            pass
    """,
    )
    return cfg_name, impl_name


def test_a_registered_config_is_imported_without_its_component(split_module):
    cfg_name, impl_name = split_module
    reg = Registry("guard", Component)
    reg.add("split", f"{impl_name}:Split", origin="t", config=f"{cfg_name}:SplitConfig")
    cfg = reg.config("split")
    assert cfg.__name__ == "SplitConfig" and impl_name not in sys.modules
    assert reg.get("split").Config is cfg  # loading the component checks it holds that very model


def test_a_component_whose_config_differs_from_the_registered_one_is_refused(split_module):
    cfg_name, impl_name = split_module
    reg = Registry("guard", Component)
    reg.add("bad", f"{impl_name}:Mismatched", origin="pkg-x", config=f"{cfg_name}:SplitConfig")
    with pytest.raises(RegistryError, match=r"guard 'bad' from pkg-x: registered with config .*SplitConfig"):
        reg.get("bad")


@pytest.mark.parametrize(
    "path, message", [("{cfg}:Missing", "cannot import its config"), ("{cfg}:NotAConfig", "must be a pydantic model")]
)
def test_a_bad_config_path_names_the_entry(split_module, path, message):
    cfg_name, impl_name = split_module
    reg = Registry("guard", Component)
    reg.add("x", f"{impl_name}:Split", origin="pkg-y", config=path.format(cfg=cfg_name))
    with pytest.raises(RegistryError, match=rf"guard 'x' from pkg-y: .*{message}"):
        reg.config("x")


def test_without_a_registered_config_the_component_s_own_is_used(lazy_module):
    reg = Registry("guard", Component)
    reg.add("impl", f"{lazy_module}:Impl", origin="t")
    assert reg.config("impl") is reg.get("impl").Config
