"""volume create, ls, rm, prune (inspect is in `inspect`)."""

from __future__ import annotations

import sys

from ...client.api import APIError, Client, filters_param
from ..flags import Parser, need
from ..output import format_rows, table


def create(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard volume create [-d local] [-o k=v] [--label k=v] [NAME]`."""
    p = Parser(prog, "[OPTIONS] [VOLUME]")
    p.add_argument("-d", "--driver", default="local")
    p.add_argument("-o", "--opt", action="append", default=[])
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--name", default="")
    p.add_argument("name_arg", nargs="?", default="")
    ns = p.parse_args(args)
    body = {"Name": ns.name_arg or ns.name, "Driver": ns.driver,
            "DriverOpts": {k: v for k, _, v in (o.partition("=") for o in ns.opt)},
            "Labels": {k: v for k, _, v in (x.partition("=") for x in ns.label)}}
    try:
        v = cli.json("POST", "/volumes/create", body=body)
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    print(v["Name"])
    return 0


def ls(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard volume ls [-f k=v] [-q] [--format F]`."""
    p = Parser(prog, "[OPTIONS]")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--format", default="")
    ns = p.parse_args(args)
    f = filters_param(ns.filter)
    try:
        vols = cli.json("GET", "/volumes", {"filters": f} if f else None)["Volumes"] or []
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    rows = [{"Driver": v["Driver"], "Name": v["Name"], "Mountpoint": v["Mountpoint"], "Scope": v["Scope"]}
            for v in vols]
    if ns.quiet:
        for r in rows:
            print(r["Name"])
    elif ns.format:
        format_rows(ns.format, rows, {"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT",
                                      "Scope": "SCOPE"})
    else:
        table([["DRIVER", "VOLUME NAME"]] + [[r["Driver"], r["Name"]] for r in rows])
    return 0


def rm(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard volume rm [-f] VOLUME...`."""
    usage = "[OPTIONS] VOLUME [VOLUME...]"
    p = Parser(prog, usage)
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("names", nargs="*")
    ns = p.parse_args(args)
    need(ns.names, 1, prog, usage)
    from .networks import each
    return each(cli, ns.names, "DELETE", "/volumes/{}", {"force": 1 if ns.force else None})


def prune(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard volume prune [-f] [-a] [--filter]`."""
    from .containers import _confirm
    p = Parser(prog, "[OPTIONS]")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("--filter", action="append", default=[])
    ns = p.parse_args(args)
    if not ns.force and not _confirm("WARNING! This will remove anonymous local volumes not used by at least one "
                                     "container.\n"):
        return 0
    f = filters_param(ns.filter + (["all=true"] if ns.all else []))
    rep = cli.json("POST", "/volumes/prune", {"filters": f})
    if rep.get("VolumesDeleted"):
        print("Deleted Volumes:\n" + "\n".join(rep["VolumesDeleted"]) + "\n")
    from ...units import human_size
    print(f"Total reclaimed space: {human_size(rep.get('SpaceReclaimed') or 0)}")
    return 0
