"""`compose build`, `pull` and `push`: the services' images."""

from __future__ import annotations

import sys

from ...client.api import APIError
from ..flags import Parser
from .loader import ComposeError
from .project import Compose


def build(c: Compose, prog: str, args: list[str]) -> int:
    p = Parser(prog, "[SERVICE...]")
    p.add_argument("services", nargs="*")
    ns = p.parse_args(args)
    for svc in c.order(ns.services or None, deps=False):
        if c.p.services[svc].get("build"):
            c.build(svc)
    return 0


def pull(c: Compose, prog: str, args: list[str]) -> int:
    p = Parser(prog, "[SERVICE...]")
    p.add_argument("--ignore-pull-failures", action="store_true")
    p.add_argument("services", nargs="*")
    ns = p.parse_args(args)
    for svc in c.order(ns.services or None, deps=False):
        if c.p.services[svc].get("image"):
            try:
                c.pull(svc)
            except (ComposeError, APIError) as e:
                if not ns.ignore_pull_failures:
                    raise
                print(str(e), file=sys.stderr)
    return 0


def push(c: Compose, prog: str, args: list[str]) -> int:
    """The image of every service that names one (as Docker Compose: built or pulled alike)."""
    p = Parser(prog, "[SERVICE...]")
    p.add_argument("--ignore-push-failures", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("services", nargs="*")
    ns = p.parse_args(args)
    from ..commands.images import push as docker_push
    rc = 0
    for svc in c.order(ns.services or None, deps=False):
        image = c.p.services[svc].get("image")
        if not image:
            continue
        print(f"{svc} Pushing {image}", file=sys.stderr)
        if docker_push(c.cli, "compose push", [*(["-q"] if ns.quiet else []), str(image)]) != 0:
            if not ns.ignore_push_failures:
                raise ComposeError(f"service {svc!r}: push {image} failed")
            rc = 1
    return rc
