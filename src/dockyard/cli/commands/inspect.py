"""inspect (containers first, then images, networks with --type), image/container/network inspect."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing itself costs ms of start-up; annotations are strings

if TYPE_CHECKING:
    from typing import Any

from ...client.api import APIError, Client
from ..flags import Parser, need
from ..output import dump_json


def _parser(prog: str) -> Parser:
    p = Parser(prog, "[OPTIONS] NAME|ID [NAME|ID...]")
    p.add_argument("-f", "--format")
    p.add_argument("-s", "--size", action="store_true")
    p.add_argument("--type", choices=["container", "image", "network", "volume"])
    p.add_argument("names", nargs="*")
    return p


def _run(cli: Client, prog: str, args: list[str], kinds: tuple[str, ...]) -> int:
    ns = _parser(prog).parse_args(args)
    need(ns.names, 1, prog, "[OPTIONS] NAME|ID [NAME|ID...]")
    if ns.type:
        kinds = (ns.type,)
    found: list[Any] = []
    code = 0
    for n in ns.names:
        obj = None
        for k in kinds:
            try:
                if k == "container":
                    obj = cli.json("GET", f"/containers/{n}/json", {"size": 1 if ns.size else None})
                elif k in ("network", "volume"):
                    obj = cli.json("GET", f"/{k}s/{n}")
                else:
                    obj = cli.json("GET", f"/images/{n}/json")
                break
            except APIError as e:
                if e.status != 404:
                    raise
        if obj is None:
            print(f"Error: No such object: {n}" if len(kinds) > 1 else
                  f"Error: No such {kinds[0]}: {n}", file=sys.stderr)
            code = 1
            continue
        found.append(obj)
    if ns.format:
        from ..gotemplate import TemplateError, render
        for obj in found:
            try:
                sys.stdout.write(render(ns.format, obj) + "\n")
            except TemplateError as e:
                print(f"Template parsing error: {e}", file=sys.stderr)
                return 1
    else:
        print(dump_json(found))
    return code


def inspect(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard inspect`."""
    return _run(cli, prog, args, ("container", "image"))


def image_inspect(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard image inspect`."""
    return _run(cli, prog, args, ("image",))


def network_inspect(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard network inspect`."""
    return _run(cli, prog, args, ("network",))


def container_inspect(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard container inspect`."""
    return _run(cli, prog, args, ("container",))


def volume_inspect(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard volume inspect`."""
    return _run(cli, prog, args, ("volume",))
