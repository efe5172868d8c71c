"""network ls, rm, prune, create, connect, disconnect (inspect is in `inspect`)."""

from __future__ import annotations

import sys

from ...client.api import APIError, Client, filters_param
from ..flags import Parser, need
from ..output import format_rows, table


def ls(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard network ls [-f k=v] [-q] [--no-trunc] [--format F]`."""
    p = Parser(prog, "[OPTIONS]")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--format", default="")
    ns = p.parse_args(args)
    f = filters_param(ns.filter)
    try:
        nets = cli.json("GET", "/networks", {"filters": f} if f else None)
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    rows = [{"ID": n["Id"] if ns.no_trunc else n["Id"][:12], "Name": n["Name"], "Driver": n["Driver"],
             "Scope": n["Scope"]} for n in nets]
    if ns.quiet:
        print("\n".join(r["ID"] for r in rows))
    elif ns.format:
        format_rows(ns.format, rows, {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE"})
    else:
        table([["NETWORK ID", "NAME", "DRIVER", "SCOPE"]] + [[r["ID"], r["Name"], r["Driver"], r["Scope"]] for r in rows])
    return 0


def _each(cli: Client, prog: str, args: list[str], method: str, path: str, usage: str) -> int:
    p = Parser(prog, usage)
    p.add_argument("names", nargs="*")
    ns = p.parse_args(args)
    need(ns.names, 1, prog, usage)
    code = 0
    for n in ns.names:
        try:
            cli.call(method, path.format(n)).close()
            print(n)
        except APIError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            code = 1
    return code


def rm(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard network rm NETWORK...`."""
    return _each(cli, prog, args, "DELETE", "/networks/{}", "NETWORK [NETWORK...]")


def prune(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard network prune [-f] [--filter]`."""
    from .containers import _confirm
    p = Parser(prog, "[OPTIONS]")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])
    ns = p.parse_args(args)
    if not ns.force and not _confirm("WARNING! This will remove all custom networks not used by at least one "
                                     "container.\n"):
        return 0
    rep = cli.json("POST", "/networks/prune", {"filters": filters_param(ns.filter)})
    if rep.get("NetworksDeleted"):
        print("Deleted Networks:\n" + "\n".join(rep["NetworksDeleted"]))
    return 0


def create(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard network create NAME` (the daemon refuses it until user-defined networks exist)."""
    p = Parser(prog, "[OPTIONS] NETWORK")
    p.add_argument("-d", "--driver", default="bridge")
    p.add_argument("name")
    ns = p.parse_args(args)
    try:
        rep = cli.json("POST", "/networks/create", body={"Name": ns.name, "Driver": ns.driver})
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    print(rep.get("Id", ""))
    return 0


def connect(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard network connect NETWORK CONTAINER`."""
    return _connect(cli, prog, args, "connect")


def disconnect(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard network disconnect NETWORK CONTAINER`."""
    return _connect(cli, prog, args, "disconnect")


def _connect(cli: Client, prog: str, args: list[str], op: str) -> int:
    p = Parser(prog, "[OPTIONS] NETWORK CONTAINER")
    p.add_argument("network")
    p.add_argument("container")
    ns = p.parse_args(args)
    try:
        cli.call("POST", f"/networks/{ns.network}/{op}", body={"Container": ns.container}).close()
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    return 0
