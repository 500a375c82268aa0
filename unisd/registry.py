"""Typed, lazy, duplicate-checked registries for every extension point.

A :class:`Registry` maps names to objects or to lazy ``"module:attr"`` placeholders that are imported
on first use. Every entry remembers where it came from (the plugin that registered it), so a clash
names both plugins and ``unisd plugins list`` can show origins without importing anything.

Example::

    reg = Registry("divergences", base=Divergence)
    reg.add("forward_kl", "unisd_plugins.divergences:ForwardKL", origin="unisd-builtins")
    cls = reg.get("forward_kl")   # imported here
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from collections.abc import Iterator

T = TypeVar("T")


class RegistryError(Exception):
    """Base class of registry errors."""


class DuplicateEntryError(RegistryError):
    """Two plugins registered different objects under one name."""


class UnknownEntryError(RegistryError, KeyError):
    """A name that no plugin registered; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class FrozenRegistryError(RegistryError):
    """Registration attempted after start-up froze the registry."""


@dataclass
class Entry(Generic[T]):
    """One registry entry: the name, the object or its lazy path, and its origin."""

    name: str
    target: Any  # the object, or "module:attr" until loaded
    origin: str
    description: str = ""
    loaded: bool = field(default=False)
    config: Any = None  # the component's Config model, or "module:attr" to it (imported without the component)

    @property
    def lazy_path(self) -> str | None:
        return None if self.loaded else self.target

    def resolve(self, registry: Registry[T]) -> T:
        if not self.loaded:
            module_name, _, attr = self.target.partition(":")
            if not attr:
                raise RegistryError(
                    f"{registry.kind} '{self.name}' from {self.origin}: lazy target "
                    f"{self.target!r} must look like 'package.module:attribute'"
                )
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:
                raise RegistryError(
                    f"{registry.kind} '{self.name}' from {self.origin}: cannot import "
                    f"{module_name!r}: {type(exc).__name__}: {exc}"
                ) from exc
            try:
                obj = getattr(module, attr)
            except AttributeError as exc:
                raise RegistryError(
                    f"{registry.kind} '{self.name}' from {self.origin}: module {module_name!r} "
                    f"has no attribute {attr!r}"
                ) from exc
            registry._check_type(self.name, obj, self.origin)
            if self.config is not None and getattr(obj, "Config", None) is not registry.config(self.name):
                raise RegistryError(
                    f"{registry.kind} '{self.name}' from {self.origin}: registered with config "
                    f"{_describe(self.config)}, but {_describe(obj)}.Config is {_describe(getattr(obj, 'Config', None))}"
                )
            self.target, self.loaded = obj, True
        return self.target


class Registry(Generic[T]):
    """A named collection of components of one kind.

    ``base`` (optional) is checked with ``issubclass`` for classes and ``isinstance`` otherwise, when
    the entry is loaded. Adding the same object twice under one name is allowed (idempotent plugin
    loading); a different object under a taken name raises :class:`DuplicateEntryError`.
    """

    def __init__(self, kind: str, base: type | None = None, description: str = "") -> None:
        self.kind = kind
        self.base = base
        self.description = description
        self._entries: dict[str, Entry[T]] = {}
        self._frozen = False
        self._default: tuple[str, str] | None = None  # (name, origin)

    # -- registration -------------------------------------------------------------------------
    def add(
        self,
        name: str,
        target: T | str,
        *,
        origin: str = "unknown",
        description: str = "",
        default: bool = False,
        config: Any = None,
    ) -> None:
        """Register ``target`` (an object or a lazy ``"module:attr"`` string) under ``name``.
        ``default``: the entry the engine uses when a recipe names none of this kind (one per registry).
        ``config``: the component's ``Config`` model (or a lazy path to it) in a module that imports
        little, so that validating a recipe does not import the component itself (and torch)."""
        if self._frozen:
            raise FrozenRegistryError(
                f"cannot register {self.kind} '{name}' from {origin}: registries are frozen after "
                "start-up; register components in a unisd_register hook"
            )
        if not isinstance(name, str) or not name or name != name.strip():
            raise RegistryError(f"{self.kind} name must be a non-empty string, got {name!r} from {origin}")
        lazy = isinstance(target, str)
        if not lazy:
            self._check_type(name, target, origin)
        existing = self._entries.get(name)
        if existing is not None:
            same = existing.target is target or _describe(existing.target) == _describe(target)
            if not same and existing.loaded and isinstance(target, str):  # a lazy path naming a re-export
                same = _import_quietly(target) is existing.target
            if not same:
                raise DuplicateEntryError(
                    f"{self.kind} '{name}' is registered twice: by {existing.origin} "
                    f"({_describe(existing.target)}) and by {origin} ({_describe(target)})"
                )
            return
        if default:
            if self._default is not None and self._default[0] != name:
                raise DuplicateEntryError(
                    f"{self.kind} default is claimed twice: '{self._default[0]}' by "
                    f"{self._default[1]} and '{name}' by {origin}"
                )
            self._default = (name, origin)
        self._entries[name] = Entry(name, target, origin, description, loaded=not lazy, config=config)

    def freeze(self) -> None:
        """Refuse further registrations."""
        self._frozen = True

    @property
    def frozen(self) -> bool:
        return self._frozen

    # -- lookup -------------------------------------------------------------------------------
    @property
    def default(self) -> str | None:
        """The name registered with ``default=True`` (``None`` when no plugin named one)."""
        return self._default[0] if self._default else None

    def get(self, name: str) -> T:
        """Return the object registered under ``name``, importing it if lazy."""
        return self.entry(name).resolve(self)

    def config(self, name: str) -> Any:
        """The ``Config`` model of the component under ``name``: the one registered with ``config=``
        (imported alone), else the component's own ``Config`` (importing the component)."""
        from unisd.components.base import config_model_of

        entry = self.entry(name)
        if entry.config is None:
            return config_model_of(self.get(name))
        if isinstance(entry.config, str):
            module_name, _, attr = entry.config.partition(":")
            try:
                entry.config = getattr(importlib.import_module(module_name), attr)
            except Exception as exc:
                raise RegistryError(
                    f"{self.kind} '{name}' from {entry.origin}: cannot import its config {entry.config!r}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        cfg = entry.config
        fields = getattr(cfg, "model_fields", None)
        if not (isinstance(cfg, type) and isinstance(fields, dict) and "type" in fields):
            raise RegistryError(
                f"{self.kind} '{name}' from {entry.origin}: its config {_describe(cfg)} must be a pydantic model "
                "with a 'type' field (subclass unisd.ComponentConfig, or the kind's config base)"
            )
        return cfg

    def entry(self, name: str) -> Entry[T]:
        """The raw :class:`Entry` (not imported)."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownEntryError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        names = sorted(self._entries)
        close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        avail = ", ".join(names) if names else "(none registered)"
        return f"unknown {self.kind} {name!r}.{hint} Available: {avail}"

    def origin(self, name: str) -> str:
        return self.entry(name).origin

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries{', frozen' if self._frozen else ''})"

    # -- helpers ------------------------------------------------------------------------------
    def _check_type(self, name: str, obj: Any, origin: str) -> None:
        if self.base is None:
            return
        ok = issubclass(obj, self.base) if isinstance(obj, type) else isinstance(obj, self.base)
        if not ok:
            raise RegistryError(
                f"{self.kind} '{name}' from {origin} must be {_article(self.base.__name__)} {self.base.__name__} "
                f"(subclass or instance), got {_describe(obj)}"
            )


def _describe(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    mod = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{mod}:{qual}" if mod else repr(obj)


def _import_quietly(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except Exception:
        return None


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
