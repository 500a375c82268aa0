"""``unisd plugins list``: every registered component with its kind and origin."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugins", help="inspect installed plugins and their components")
    psub = p.add_subparsers(dest="plugins_command", metavar="ACTION")
    lst = psub.add_parser("list", help="list components by kind, with origin package and version")
    lst.add_argument("--kind", help="only this kind (e.g. disagreement, loss, dataset)")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.set_defaults(func=run_list)
    p.set_defaults(func=lambda a: p.print_help() or 2)


def rows(kind: str | None = None) -> list[dict[str, str]]:
    from unisd.plugins import get_host

    host = get_host()
    out = []
    for reg in host.registries:
        if kind and reg.kind != kind:
            continue
        for e in reg.entries():
            out.append(
                {
                    "kind": reg.kind,
                    "name": e.name,
                    "package": e.origin,
                    "version": host.origin_version(e.origin),
                    "description": e.description,
                }
            )
    return out


def run_list(args: argparse.Namespace) -> int:
    from unisd.plugins import get_host

    data = rows(args.kind)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    if not data:
        kinds = sorted({r.kind for r in get_host().registries})
        print(f"error: no components of kind {args.kind!r}; kinds: {', '.join(kinds)}", file=sys.stderr)
        return 2
    widths = [max(len(r[k]) for r in data) for k in ("kind", "name", "package", "version")]
    header = ("KIND", "NAME", "PACKAGE", "VERSION")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    print(fmt.format(*header, "DESCRIPTION"))
    for r in data:
        print(fmt.format(r["kind"], r["name"], r["package"], r["version"], r["description"]))
    skipped = get_host().skipped
    for what, _ in skipped:
        print(f"skipped: {what}")
    return 0
