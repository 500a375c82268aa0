"""Plugin discovery and the plugin manager.

Plugins are found through the ``unisd`` entry-point group; UniSD's own components use the same
group. Loading order: built-ins (entry points of the ``unisd`` distribution), then third-party
entry points, then modules named in ``UNISD_PLUGINS``. Then every ``unisd_register`` hook fills the
registries, which are frozen.

Environment variables:

``UNISD_DISABLE_PLUGIN_AUTOLOAD=1``
    load only the built-ins (and ``UNISD_PLUGINS``), not third-party entry points.
``UNISD_PLUGINS=mod1,mod2``
    extra plugin modules to import and register.
``UNISD_BLOCK_PLUGINS=name1,name2``
    entry-point names not to load.
``UNISD_SKIP_BROKEN_PLUGINS=1``
    a plugin that fails to import or register is skipped with a warning instead of stopping.
``UNISD_TRACE_PLUGINS=1``
    print each plugin load and each hook call to stderr.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pluggy

from unisd import hookspecs
from unisd.registries import Registries

if TYPE_CHECKING:  # pragma: no cover
    from unisd.components.context import RunContext

ENTRY_POINT_GROUP = "unisd"
BUILTIN_DISTRIBUTION = "unisd"


class PluginError(RuntimeError):
    """A plugin failed to import, to register, or inside a hook; the message names it."""


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin came from."""

    name: str  # entry-point or module name
    module: str
    package: str  # distribution name ("unisd" for built-ins, "<env>" for UNISD_PLUGINS)
    version: str
    builtin: bool


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _env_list(name: str) -> list[str]:
    return [p.strip() for p in os.environ.get(name, "").split(",") if p.strip()]


#: the options pluggy's own ``@hookimpl`` marker gives an unadorned implementation
_PLAIN_IMPL: pluggy.HookimplOpts = getattr(hookspecs.hookimpl(lambda: None), f"{hookspecs.PROJECT}_impl")


class UniSDPluginManager(pluggy.PluginManager):
    """A pluggy manager that also accepts component objects whose ``unisd_*`` methods are hooks
    (no marker needed on methods of :class:`~unisd.components.base.Component` subclasses: they get
    the options of a bare ``@hookimpl``)."""

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith("unisd_") and not inspect.ismodule(plugin):
            from unisd.components.base import Component

            if isinstance(plugin, Component) and inspect.isroutine(getattr(plugin, name, None)):
                opts = _PLAIN_IMPL.copy()
        return opts


class PluginHost:
    """The plugin manager, what it loaded, and the registries it filled."""

    def __init__(self) -> None:
        self.pm = UniSDPluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.registries = Registries()
        self.plugins: dict[str, PluginInfo] = {}
        self.trace = _env_flag("UNISD_TRACE_PLUGINS")
        self.skip_broken = _env_flag("UNISD_SKIP_BROKEN_PLUGINS")
        self.skipped: list[tuple[str, str]] = []
        if self.trace:
            self.pm.trace.root.setwriter(lambda msg: sys.stderr.write(f"[unisd-trace] {msg}"))
            self.pm.enable_tracing()

            def each_implementation(hook_name, impls, kwargs):  # in pluggy's call order (last registered first)
                for impl in reversed(impls):
                    print(f"[unisd-trace] {hook_name} -> {impl.plugin_name}", file=sys.stderr)

            self.pm.add_hookcall_monitoring(each_implementation, lambda *args: None)

    # -- loading ----------------------------------------------------------------------------------
    def _log(self, msg: str) -> None:
        if self.trace:
            print(f"[unisd-plugins] {msg}", file=sys.stderr)

    def _fail(self, what: str, exc: BaseException | None = None) -> None:
        if self.skip_broken:
            warnings.warn(f"{what} (skipped because UNISD_SKIP_BROKEN_PLUGINS is set)", stacklevel=3)
            self.skipped.append((what, repr(exc)))
            return
        raise PluginError(what + "; set UNISD_SKIP_BROKEN_PLUGINS=1 to skip it") from exc

    def load(self) -> PluginHost:
        blocked = set(_env_list("UNISD_BLOCK_PLUGINS"))
        autoload = not _env_flag("UNISD_DISABLE_PLUGIN_AUTOLOAD")
        eps = sorted(
            metadata.entry_points(group=ENTRY_POINT_GROUP),
            key=lambda e: (_dist_name(e) != BUILTIN_DISTRIBUTION, e.name),
        )
        for ep in eps:
            dist = _dist_name(ep)
            builtin = dist == BUILTIN_DISTRIBUTION
            if ep.name in blocked:
                self.pm.set_blocked(ep.name)
                self._log(f"blocked {ep.name} ({dist})")
                continue
            if not builtin and not autoload:
                self._log(f"not autoloading {ep.name} ({dist}): UNISD_DISABLE_PLUGIN_AUTOLOAD is set")
                continue
            if ep.name in self.plugins:
                if self.plugins[ep.name].module == ep.value:
                    continue  # the same distribution visible twice on sys.path
                other = self.plugins[ep.name]
                self._fail(
                    f"plugin name {ep.name!r} is used by {other.package} ({other.module}) and by {dist} ({ep.value})"
                )
                continue
            self._log(f"loading {ep.name} = {ep.value} from {dist}")
            try:
                obj = ep.load()
            except Exception as exc:
                self._fail(
                    f"plugin {ep.name!r} from package {dist!r} failed to import ({ep.value}): {type(exc).__name__}: {exc}",
                    exc,
                )
                continue
            self._register(obj, PluginInfo(ep.name, ep.value, dist, _dist_version(ep), builtin))
        for modname in _env_list("UNISD_PLUGINS"):
            if any(info.module == modname for info in self.plugins.values()):
                self._log(f"{modname} from UNISD_PLUGINS is already loaded")
                continue
            self._log(f"loading {modname} from UNISD_PLUGINS")
            try:
                obj = importlib.import_module(modname)
            except Exception as exc:
                self._fail(
                    f"plugin module {modname!r} from UNISD_PLUGINS failed to import: {type(exc).__name__}: {exc}", exc
                )
                continue
            self._register(obj, PluginInfo(modname, modname, "UNISD_PLUGINS", "", False))
        self._check_pending()
        self.run_register()
        return self

    def _check_pending(self) -> None:
        """Hook implementations without a spec (a misspelt hook name) fail naming their plugin."""
        while True:
            try:
                self.pm.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self.pm.get_name(exc.plugin) or repr(exc.plugin)
                info = self.plugins.get(name)
                package = info.package if info else "<unknown>"
                self.pm.unregister(exc.plugin)
                self.plugins.pop(name, None)
                hooks = ", ".join(
                    sorted(h for h in dir(exc.plugin) if h.startswith("unisd_") and not hasattr(hookspecs, h))
                )
                self._fail(
                    f"plugin {name!r} from package {package!r} implements unknown hook(s) {hooks} "
                    f"(known hooks: {', '.join(sorted(h for h in dir(hookspecs) if h.startswith('unisd_')))})",
                    exc,
                )

    def _register(self, obj: Any, info: PluginInfo) -> None:
        try:
            self.pm.register(obj, name=info.name)
        except Exception as exc:
            self._fail(f"plugin {info.name!r} from package {info.package!r} is not a valid plugin: {exc}", exc)
            return
        self.plugins[info.name] = info

    def register_plugin(self, obj: Any, name: str, package: str = "<in-process>") -> None:
        """Register an in-process plugin object (tests, notebooks) before :meth:`run_register`."""
        self._register(obj, PluginInfo(name, getattr(obj, "__name__", repr(obj)), package, "", False))

    def run_register(self) -> None:
        """Call every ``unisd_register`` hook, stamping entries with the plugin's package."""
        # registration order: built-ins first, then third-party entry points, then UNISD_PLUGINS
        for impl in self.pm.hook.unisd_register.get_hookimpls():
            info = self.plugins.get(impl.plugin_name)
            origin = info.package if info else impl.plugin_name
            self._log(f"unisd_register: {impl.plugin_name} ({origin})")
            try:
                impl.function(registry=self.registries.with_origin(origin))
            except Exception as exc:
                self._fail(
                    f"plugin {impl.plugin_name!r} from package {origin!r} raised in hook unisd_register: {type(exc).__name__}: {exc}",
                    exc,
                )
        self.registries.freeze()

    # -- runtime hooks ----------------------------------------------------------------------------
    def call(self, hook: str, **kwargs: Any) -> list[Any]:
        """Call runtime hook ``hook`` through the plugin manager (so pluggy's ordering, wrappers,
        ``firstresult`` and tracing apply); a non-None result list. An exception names the plugin
        whose implementation raised."""
        caller = getattr(self.pm.hook, hook)
        try:
            result = caller(**kwargs)
        except Exception as exc:
            name = _raising_plugin(exc, caller.get_hookimpls())
            info = self.plugins.get(name) if name else None
            origin = f" from package {info.package!r}" if info else ""
            raise PluginError(
                f"plugin {name or '?'!r}{origin} raised in hook {hook}: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(result, list):
            return [r for r in result if r is not None]
        return [] if result is None else [result]

    # one typed method per runtime hook of unisd.hookspecs (a test checks they match)
    def on_train_start(self, run: RunContext) -> None:
        self.call("unisd_on_train_start", run=run)

    def on_step_end(self, run: RunContext, step: int, metrics: dict[str, Any]) -> None:
        self.call("unisd_on_step_end", run=run, step=step, metrics=metrics)

    def checkpoint_state(self, run: RunContext) -> list[dict[str, Any]]:
        return self.call("unisd_checkpoint_state", run=run)

    def load_checkpoint_state(self, run: RunContext, state: dict[str, Any]) -> None:
        self.call("unisd_load_checkpoint_state", run=run, state=state)

    def on_train_end(self, run: RunContext) -> None:
        self.call("unisd_on_train_end", run=run)

    def origin_version(self, package: str) -> str:
        for info in self.plugins.values():
            if info.package == package:
                return info.version
        return ""


def _raising_plugin(exc: BaseException, impls) -> str | None:
    """The plugin whose hook implementation is on ``exc``'s traceback (the innermost one)."""
    codes = {}
    for impl in impls:
        fn = getattr(impl.function, "__func__", impl.function)
        code = getattr(fn, "__code__", None)
        if code is not None:
            codes[code] = impl.plugin_name
    name, tb = None, exc.__traceback__
    while tb is not None:
        name = codes.get(tb.tb_frame.f_code, name)
        tb = tb.tb_next
    return name


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else "<unknown>"


def _dist_version(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.version if dist is not None else ""


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide loaded plugin host (loaded on first use)."""
    global _HOST
    if _HOST is None:
        _HOST = PluginHost().load()
    return _HOST


def get_registries() -> Registries:
    return get_host().registries


def reset_host() -> None:
    """Forget the loaded host (tests; after changing UNISD_* environment variables)."""
    global _HOST
    _HOST = None
