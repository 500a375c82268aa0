"""What crosses between the sandboxed candidate and the trusted judge: plain data as tagged JSON.

Used on both sides (standard library only). A value is encoded from what the built-in types
themselves hold, read through the built-ins' own methods (``list.__getitem__``, ``dict.items``…),
never through a method the candidate's class may override: an ``int`` subclass crosses as its
integer, a ``tuple`` subclass (a namedtuple) as its items, a ``dict`` subclass (``Counter``) as a
dict; the judge rebuilds exact built-ins from it. ``Fraction``, ``Decimal``, ``datetime`` values,
``range`` and ``deque`` cross as their defining numbers or items (an integer of more than 12,000
bits in hex). A finished iterator (a
generator's items, at most ``MAX_ITEMS``) crosses as its items and is rebuilt as an iterator. Any
other object stays in the sandbox and crosses as a reference (``{"ref": n}``), which the judge can
pass back into a call but never compares equal to data.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import math
from collections.abc import Iterable, Iterator

MAX_DEPTH = 100
MAX_ITEMS = 1_000_000


class WireError(ValueError):
    """A message that is not well-formed data."""


def _iterator_types() -> tuple[type, ...]:
    """The types of the built-in iterators (a finished one crosses as its items)."""
    containers: tuple[Iterable[object], ...] = (
        [],
        (),
        {},
        set(),
        "",
        b"",
        range(1),
        {}.keys(),
        {}.values(),
        {}.items(),
        bytearray(),
    )
    iterators: tuple[Iterator[object], ...] = (
        map(abs, []),
        filter(None, []),
        zip(),
        enumerate([]),
        reversed([]),
        (i for i in range(0)),
        iter(lambda: 0, 0),
    )
    return tuple({type(iter(x)) for x in containers} | {type(x) for x in iterators})


_ITERATORS = _iterator_types()


def encode(value, keep, depth: int = 0):
    """``value`` as JSON-able tagged data; an object that is not data becomes ``keep(value)`` (the
    sandbox: a reference to it, see :func:`keeper`; the judge: its own reference, or an error).
    Types are the real ones (``type``, ``issubclass``: a ``__class__`` property does not count)."""
    if depth > MAX_DEPTH:
        raise WireError("nested too deeply (or a cycle)")
    t = type(value)
    if value is None or t is bool or t is str:
        return value
    if issubclass(
        t, int
    ):  # int subclasses (IntEnum, IntFlag) as their integer; a huge one in hex, which has no digit limit
        v = int.__index__(value)
        return v if v.bit_length() < 12_000 else {"int": hex(v)}
    if issubclass(t, float):
        f = float.__float__(value)
        return f if math.isfinite(f) else {"float": repr(f)}
    if issubclass(t, str):
        return str.__str__(value)
    if issubclass(t, complex):
        return {
            "complex": [encode(_REAL.__get__(value), keep, depth + 1), encode(_IMAG.__get__(value), keep, depth + 1)]
        }
    if issubclass(t, (bytes, bytearray)):
        return {"bytes" if issubclass(t, bytes) else "bytearray": list(bytes(memoryview(value)))}
    if issubclass(t, (list, tuple)):
        base = list if issubclass(t, list) else tuple
        n = base.__len__(value)
        if n > MAX_ITEMS:
            raise WireError(f"more than {MAX_ITEMS} items")
        items = [encode(base.__getitem__(value, i), keep, depth + 1) for i in range(n)]
        return items if base is list else {"tuple": items}
    if issubclass(t, dict):  # Counter, OrderedDict, defaultdict: their items
        return {"dict": [[encode(k, keep, depth + 1), encode(v, keep, depth + 1)] for k, v in dict.items(value)]}
    if issubclass(t, (set, frozenset)):
        set_base = set if issubclass(t, set) else frozenset
        return {set_base.__name__: [encode(v, keep, depth + 1) for v in set_base.__iter__(value)]}
    if t is range:
        return {"range": [value.start, value.stop, value.step]}
    if t is collections.deque:
        return {"deque": [encode(v, keep, depth + 1) for v in collections.deque.__iter__(value)]}
    if t is fractions.Fraction:
        return {"fraction": [int.__index__(value.numerator), int.__index__(value.denominator)]}
    if t is decimal.Decimal:
        return {"decimal": decimal.Decimal.__str__(value)}
    if t in (datetime.date, datetime.datetime, datetime.time):
        return {t.__name__: t.isoformat(value)}
    if t is datetime.timedelta:
        return {"timedelta": [value.days, value.seconds, value.microseconds]}
    if t in _ITERATORS:
        items = []
        for item in value:
            if len(items) >= MAX_ITEMS:
                raise WireError(f"an iterator of more than {MAX_ITEMS} items")
            items.append(encode(item, keep, depth + 1))
        return {"iter": items}
    return keep(value)


def keeper(refs: list):
    """The sandbox's ``keep`` for :func:`encode`: the object stays in ``refs``; its index and type
    name cross."""

    def keep(value) -> dict:
        refs.append(value)
        return {"ref": len(refs) - 1, "type": type.__dict__["__name__"].__get__(type(value))}

    return keep


_REAL, _IMAG = complex.__dict__["real"], complex.__dict__["imag"]


def decode(data, ref, depth: int = 0):
    """The value ``data`` encodes, built from exact built-ins; ``ref(index, type_name)`` makes what a
    reference stands for on this side."""
    if depth > MAX_DEPTH:
        raise WireError("nested too deeply")
    if data is None or type(data) in (bool, int, str):
        return data
    if type(data) is float:
        return data
    if type(data) is list:
        return [decode(v, ref, depth + 1) for v in data]
    if type(data) is not dict or len(data) not in (1, 2):
        raise WireError(f"not wire data: {type(data).__name__}")
    (tag, body), *rest = data.items()

    def items() -> list:
        return [decode(v, ref, depth + 1) for v in _list(body)]

    if tag == "ref" and type(body) is int and rest and rest[0][0] == "type" and type(rest[0][1]) is str:
        return ref(body, rest[0][1])
    if rest:
        raise WireError(f"unexpected keys {sorted(data)}")
    if tag == "tuple":
        return tuple(items())
    if tag == "dict":
        return {decode(k, ref, depth + 1): decode(v, ref, depth + 1) for k, v in (_pair(p) for p in _list(body))}
    if tag == "set":
        return set(items())
    if tag == "frozenset":
        return frozenset(items())
    if tag == "iter":
        return iter(items())
    if tag == "deque":
        return collections.deque(items())
    if tag == "int" and type(body) is str:
        return int(body, 16)
    if tag == "float" and body in ("nan", "inf", "-inf"):
        return float(body)
    if tag == "complex":
        re_, im = _list(body)
        return complex(_number(re_), _number(im))
    if tag in ("bytes", "bytearray"):
        raw = bytes(_list(body))
        return raw if tag == "bytes" else bytearray(raw)
    if tag == "range":
        return range(*(_int(v) for v in _list(body)))
    if tag == "fraction":
        n, d = _list(body)
        return fractions.Fraction(_int(n), _int(d))
    if tag == "decimal" and type(body) is str:
        return decimal.Decimal(body)
    if tag in ("date", "datetime", "time") and type(body) is str:
        return getattr(datetime, tag).fromisoformat(body)
    if tag == "timedelta":
        d, s, us = (_int(v) for v in _list(body))
        return datetime.timedelta(days=d, seconds=s, microseconds=us)
    raise WireError(f"unknown tag {tag!r}")


def _list(v) -> list:
    if type(v) is not list:
        raise WireError("expected a list")
    return v


def _pair(v) -> list:
    if type(v) is not list or len(v) != 2:
        raise WireError("expected a key-value pair")
    return v


def _int(v) -> int:
    if type(v) is not int:
        raise WireError("expected an integer")
    return v


def _number(v) -> float:
    if type(v) in (int, float):
        return v
    if type(v) is dict and list(v) == ["float"] and v["float"] in ("nan", "inf", "-inf"):
        return float(v["float"])
    raise WireError("expected a number")
