"""Loading recipes: files (YAML or JSON), shipped names, ``extends``, ``--set`` overrides, and
validation errors that name the file, line, field path and allowed values."""

from __future__ import annotations

import copy
import difflib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload
from collections.abc import Iterable, Iterator

import yaml
from pydantic import BaseModel, ValidationError

from unisd.recipe.model import RecipeBase, recipe_model

if TYPE_CHECKING:  # pragma: no cover
    from pydantic_core import ErrorDetails

ModelT = TypeVar("ModelT", bound=BaseModel)


class RecipeError(ValueError):
    """A recipe could not be loaded or validated. ``problems`` lists every problem found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source, self.problems = source, problems
        lines = "\n".join(f"  - {p}" for p in problems)
        n = len(problems)
        super().__init__(f"invalid recipe {source} ({n} problem{'s' if n != 1 else ''}):\n{lines}")


# -- reading files with line numbers -----------------------------------------------------------
class _Located:
    """Maps a key path (tuple of str/int) to a 1-based line number in a YAML/JSON document."""

    def __init__(self, node: yaml.Node | None, path: Path | None = None) -> None:
        self.node, self.path = node, path

    def match(self, path: Iterable[Any]) -> tuple[int | None, int]:
        """(line of the deepest key of ``path`` present in the document, how many keys matched)."""
        node = self.node
        if node is None:
            return None, 0
        best, depth = None, 0
        for key in path:
            if isinstance(node, yaml.MappingNode):
                nxt = next(((k, v) for k, v in node.value if k.value == str(key)), None)
                if nxt is None:
                    break
                best, node = nxt[0].start_mark.line + 1, nxt[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
                best = node.start_mark.line + 1
            else:
                break
            depth += 1
        return best, depth

    def line(self, path: Iterable[Any]) -> int | None:
        return self.match(path)[0]


class Locator:
    """Finds where a key path comes from: a ``--set`` override, the recipe file, or a file it
    extends (the document defining the most of the path wins; the recipe itself on ties)."""

    def __init__(self, docs: list[_Located], overrides: dict[tuple[Any, ...], str] | None = None) -> None:
        self.docs, self.overrides = docs, overrides or {}

    def where(self, path: list[Any]) -> str:
        for key, expr in self.overrides.items():
            if tuple(path[: len(key)]) == key:
                return f"--set {expr}: "
        best: tuple[int, int, _Located] | None = None
        for doc in self.docs:
            line, depth = doc.match(path)
            if line is not None and depth > 0 and (best is None or depth > best[1]):
                best = (line, depth, doc)
        if best is None:
            return ""
        line, _, doc = best
        if doc is self.docs[0] or doc.path is None:
            return f"line {line}: "
        return f"{doc.path.name}, line {line}: "


#: the largest recipe or experiment file read (the shipped ones are a few KiB)
MAX_RECIPE_BYTES = 1 << 20


def refuse_aliases(text: str, where: str) -> None:
    """Refuse YAML anchors' aliases (``*name``), naming the line: a few hundred bytes of nested
    aliases expand into billions of nodes for whatever walks the result. No shipped recipe uses them."""
    try:
        for event in yaml.parse(text):
            if isinstance(event, yaml.AliasEvent):
                m = event.start_mark
                raise RecipeError(
                    where,
                    [
                        f"line {m.line + 1}, column {m.column + 1}: YAML alias *{event.anchor} is not "
                        "accepted (aliases can expand a small file without bound); write the value out"
                    ],
                )
    except yaml.YAMLError:
        return  # a syntax error: the parser proper reports it with its line


def safe_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` of a recipe-like text, aliases refused (:func:`refuse_aliases`)."""
    refuse_aliases(text, where)
    return yaml.safe_load(text)


def read_document(path: Path) -> tuple[dict[str, Any], _Located]:
    """Parse a YAML or JSON recipe file; syntax errors name the line."""
    try:
        size = path.stat().st_size
        if size > MAX_RECIPE_BYTES:
            raise RecipeError(str(path), [f"{size} bytes: larger than a recipe can be ({MAX_RECIPE_BYTES} bytes)"])
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not content
    except UnicodeDecodeError as exc:
        raise RecipeError(str(path), [f"not UTF-8 text (byte {exc.start}): {exc.reason}"]) from None
    except OSError as exc:
        raise RecipeError(str(path), [f"cannot read: {exc.strerror or exc}"]) from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecipeError(str(path), [f"line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"]) from None
    else:
        try:
            data = safe_yaml(text, str(path))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise RecipeError(str(path), [f"{where}invalid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if data is None:
        raise RecipeError(str(path), ["the file is empty (a recipe needs at least 'extends:' or one section)"])
    if not isinstance(data, dict):
        raise RecipeError(str(path), [f"the top level must be a mapping, got {type(data).__name__}"])
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:  # JSON that YAML cannot compose (rare): no line numbers
        node = None
    duplicates = list(_duplicate_keys(node)) if node is not None else []
    if duplicates:
        raise RecipeError(
            str(path),
            [
                f"line {line}: key {key!r} appears again (first on line {first}); YAML would silently keep the last one"
                for key, line, first in duplicates
            ],
        )
    return data, _Located(node, path)


def _duplicate_keys(node: yaml.Node) -> Iterator[tuple[str, int, int]]:
    """``(key, line, first line)`` for every mapping key given twice, at any depth."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key, value in node.value:
            k = getattr(key, "value", None)
            if isinstance(k, str):
                if k in seen:
                    yield k, key.start_mark.line + 1, seen[k]
                else:
                    seen[k] = key.start_mark.line + 1
            yield from _duplicate_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _duplicate_keys(item)


# -- sources: names, files, extends --------------------------------------------------------------
def resolve_source(name_or_path: str | Path) -> Path:
    """A shipped recipe name or a file path → the file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml", ".json") or p.exists():
        if not p.exists():
            raise RecipeError(str(p), ["file not found"])
        return p
    from unisd.plugins import get_registries

    recipes = get_registries().recipes
    if str(name_or_path) not in recipes:
        raise RecipeError(
            str(name_or_path), [recipes.unknown_message(str(name_or_path)) + " (or give a .yaml/.json path)"]
        )
    return Path(recipes.get(str(name_or_path)))


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``; mappings merge, everything else (lists too) is replaced."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_raw(name_or_path: str | Path, _seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], Locator, Path]:
    """The recipe as a plain dict with ``extends`` applied (not validated), a :class:`Locator` over
    the file and its parents, and the file's path."""
    path = resolve_source(name_or_path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise RecipeError(str(path), [f"'extends' forms a cycle: {chain}"])
    data, located = read_document(path)
    docs = [located]
    parent = data.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str):
            raise RecipeError(str(path), [f"line {located.line(['extends'])}: extends: must be a recipe name or path"])
        ref = Path(parent)
        if not ref.is_absolute() and ref.suffix and (path.parent / ref).exists():
            parent = str(path.parent / ref)
        try:
            resolve_source(parent)
        except RecipeError as exc:  # name the file that asked for the missing parent, and its line
            raise RecipeError(
                str(path), [f"line {located.line(['extends'])}: extends: {p}" for p in exc.problems]
            ) from None
        base, parent_locator, _ = load_raw(parent, (*_seen, path))
        data = deep_merge(base, data)
        docs += parent_locator.docs
    return data, Locator(docs), path


def flat_fields(data: dict[str, Any]) -> dict[str, Any]:
    """A recipe's nested mapping as flat ``section.field`` → value (lists are values)."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        else:
            out[prefix[:-1]] = value

    walk("", data)
    return out


# -- overrides -------------------------------------------------------------------------------------
_SEGMENT = re.compile(r"[^.\[\]]+|\[[^\]]*\]")


def parse_override(expr: str) -> tuple[list[str], Any]:
    """``"a.b=1"`` → (["a", "b"], 1). Values are YAML (``x=[1,2]``, ``x=null``, ``x=true``)."""
    key, sep, raw = expr.partition("=")
    if not sep or not key.strip():
        raise RecipeError("--set", [f"{expr!r}: expected KEY=VALUE, e.g. optim.lr=1e-5"])
    try:
        value = safe_yaml(raw, "--set") if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise RecipeError("--set", [f"{expr!r}: value is not valid YAML: {exc}"]) from None
    if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
        value = raw.strip()  # YAML 1.1 reads yes/no/on/off as booleans; keep the word (bool fields still accept it)
    parts = [s.strip("[]") for s in _SEGMENT.findall(key.strip())]
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``--set`` expressions. In ``components``, a segment is an index, a component's name or
    its type: ``components.agreement.gamma=0.01``, ``components.late.weight=0.5`` or
    ``components.0.gamma=0.01``."""
    data = copy.deepcopy(data)
    for expr in overrides:
        parts, value = parse_override(expr)
        node: Any = data
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[: i + 1])
            if isinstance(node, list):
                idx = _list_index(node, part, expr, where)
                if last:
                    node[idx] = value
                else:
                    node = node[idx]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise RecipeError(
                    "--set", [f"{expr!r}: {'.'.join(parts[:i])} is a {type(node).__name__}, not a mapping or list"]
                )
    return data


def _list_index(node: list, part: str, expr: str, where: str) -> int:
    if part.lstrip("-").isdigit():
        idx = int(part)
        if not -len(node) <= idx < len(node):
            raise RecipeError("--set", [f"{expr!r}: index {idx} out of range at {where} ({len(node)} items)"])
        return idx
    names = [item.get("name") or item.get("type") for item in node if isinstance(item, dict)]
    if part in names:
        return names.index(part)
    types = [item.get("type") for item in node if isinstance(item, dict)]
    if types.count(part) == 1:
        return types.index(part)
    if types.count(part) > 1:
        raise RecipeError(
            "--set",
            [
                f"{expr!r}: {types.count(part)} items have type {part!r} at {where}; address one "
                f"by its name: {[n for n, t in zip(names, types, strict=True) if t == part]}"
            ],
        )
    close = difflib.get_close_matches(part, [t for t in names if t], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise RecipeError("--set", [f"{expr!r}: no item with name or type {part!r} at {where}.{hint} Items: {names}"])


# -- validation -------------------------------------------------------------------------------------
def _fmt_loc(loc: tuple[Any, ...], data: dict[str, Any]) -> tuple[str, list[Any]]:
    """Turn pydantic's loc (which includes union tags) into a dotted path over the user's data."""
    path: list[Any] = []
    node: Any = data
    for part in loc:
        if (
            isinstance(node, dict)
            and part in node
            or isinstance(node, list)
            and isinstance(part, int)
            and part < len(node)
        ):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and part not in node and isinstance(part, str) and part == node.get("type"):
            continue  # discriminator tag inserted by pydantic
        else:
            path.append(part)
            node = None
    text = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path).replace(".[", "[")
    return text or "(top level)", path


def _allowed_hint(err: ErrorDetails, value: Any) -> str:
    ctx = err.get("ctx") or {}
    if err["type"] == "union_tag_invalid":
        tags = re.findall(r"'([^']+)'", str(ctx.get("expected_tags", "")))
        close = difflib.get_close_matches(str(ctx.get("tag")), tags, n=2)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown type {ctx.get('tag')!r}.{hint} Allowed: {', '.join(tags)}"
    if err["type"] == "extra_forbidden":
        return "unknown field"
    return err["msg"]


@overload
def validate(
    data: dict[str, Any], source: str = ..., located: Locator | None = ..., model: None = None
) -> RecipeBase: ...


@overload
def validate(
    data: dict[str, Any], source: str = ..., located: Locator | None = ..., *, model: type[ModelT]
) -> ModelT: ...


def validate(
    data: dict[str, Any],
    source: str = "<recipe>",
    located: Locator | None = None,
    model: type[BaseModel] | None = None,
) -> BaseModel:
    """Validate a recipe dict (or, with ``model``, another document: an experiment); on failure raise
    :class:`RecipeError` listing every problem."""
    model = model or recipe_model()
    try:  # validators see the registries the model was built from, not the process-wide ones
        return model.model_validate(data, context={"registries": getattr(model, "registries", None)})
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            text, path = _fmt_loc(err["loc"], data)
            prefix = located.where(path) if located is not None else ""
            msg = _allowed_hint(err, err.get("input"))
            if err["type"] == "extra_forbidden":
                parent = path[:-1]
                allowed = _allowed_fields(model, parent, data)
                close = difflib.get_close_matches(str(path[-1]), allowed, n=1) if allowed else []
                if close:
                    msg += f". Did you mean {close[0]!r}?"
                if allowed:
                    msg += f" Allowed: {', '.join(allowed)}"
            elif err["type"] == "literal_error":
                msg = f"{msg} (got {err.get('input')!r})"
            problems.append(f"{prefix}{text}: {msg}")
        raise RecipeError(source, problems) from None


def _allowed_fields(model: type, path: list[Any], data: dict[str, Any]) -> list[str]:
    """Field names of the model at ``path`` (following list items and component types)."""
    from typing import get_args, get_origin

    ann: Any = model
    node: Any = data
    for part in path:
        current = _pick_model(ann, node)
        if isinstance(part, int):
            if get_origin(ann) is list:
                ann = get_args(ann)[0]
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        if current is None or part not in current.model_fields:
            return []
        ann = current.model_fields[part].annotation
        node = node.get(part) if isinstance(node, dict) else None
    current = _pick_model(ann, node)
    return sorted(current.model_fields) if current is not None else []


def _pick_model(ann: Any, node: Any) -> Any:
    from typing import get_args

    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    candidates = []
    stack = [ann]
    while stack:
        a = stack.pop()
        if isinstance(a, type) and issubclass(a, BaseModel):
            candidates.append(a)
        else:
            stack.extend(get_args(a))
    tag = node.get("type") if isinstance(node, dict) else None
    for c in candidates:
        f = c.model_fields.get("type")
        if f is not None and f.default == tag:
            return c
    return candidates[0] if len(candidates) == 1 else None


def load_recipe(name_or_path: str | Path, overrides: Iterable[str] = (), **section_overrides: Any) -> RecipeBase:
    """Load, merge ``extends``, apply ``--set`` overrides, validate.

    >>> recipe = load_recipe("sdft", ["optim.lr=1e-5"])
    """
    data, located, path = load_raw(name_or_path)
    overrides = list(overrides)
    if overrides:
        data = apply_overrides(data, overrides)
        located.overrides = {_resolved_path(data, parse_override(e)[0]): e for e in overrides}
    for k, v in section_overrides.items():
        data = deep_merge(data, {k: v})
    return validate(data, str(path), located)


def _resolved_path(data: dict[str, Any], parts: list[str]) -> tuple[Any, ...]:
    """An override's key path with list segments (index, component name or type) as indices."""
    out: list[Any] = []
    node: Any = data
    for part in parts:
        if isinstance(node, list):
            idx = _list_index(node, part, "/".join(parts), ".".join(map(str, out)))
            idx %= max(len(node), 1)
            out.append(idx)
            node = node[idx] if idx < len(node) else None
        else:
            out.append(part)
            node = node.get(part) if isinstance(node, dict) else None
    return tuple(out)


def dump_recipe(recipe: RecipeBase, fmt: str = "yaml") -> str:
    """Serialise a validated recipe (all defaults made explicit)."""
    data = recipe.model_dump(mode="json")
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
