"""network ls, rm, prune, create, connect, disconnect (inspect is in `inspect`)."""

from __future__ import annotations

import sys
from typing import Any

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
        for r in rows:
            print(r["ID"])
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
    return each(cli, ns.names, method, path)


def each(cli: Client, names: list[str], method: str, path: str, query: dict[str, Any] | None = None) -> int:
    """One call per name, its name printed when it worked, the daemon's error when not (1)."""
    code = 0
    for n in names:
        try:
            cli.call(method, path.format(n), query).close()
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
    """`dockyard network create [-d bridge] [--subnet] [--gateway] [--ip-range] [--aux-address]
    [--internal] [--attachable] [-o k=v] [--label k=v] [--ipv6] NAME`, as the docker CLI."""
    p = Parser(prog, "[OPTIONS] NETWORK")
    p.add_argument("-d", "--driver", default="bridge")
    p.add_argument("--subnet", action="append", default=[])
    p.add_argument("--gateway", action="append", default=[])
    p.add_argument("--ip-range", action="append", default=[])
    p.add_argument("--aux-address", action="append", default=[])
    p.add_argument("--ipam-driver", default="default")
    p.add_argument("--internal", action="store_true")
    p.add_argument("--attachable", action="store_true")
    p.add_argument("--ipv6", action="store_true")
    p.add_argument("-o", "--opt", action="append", default=[])
    p.add_argument("--label", action="append", default=[])
    p.add_argument("name")
    ns = p.parse_args(args)
    if len(ns.gateway) > len(ns.subnet) or len(ns.ip_range) > len(ns.subnet):
        print("every ip-range or gateway must have a corresponding subnet", file=sys.stderr)
        return 1
    pools = []
    for i, sub in enumerate(ns.subnet):
        pool: dict[str, Any] = {"Subnet": sub}
        if i < len(ns.gateway):
            pool["Gateway"] = ns.gateway[i]
        if i < len(ns.ip_range):
            pool["IPRange"] = ns.ip_range[i]
        aux = dict(x.split("=", 1) for x in ns.aux_address if "=" in x)
        if aux:
            pool["AuxiliaryAddresses"] = aux
        pools.append(pool)
    body = {"Name": ns.name, "CheckDuplicate": True, "Driver": ns.driver, "Internal": ns.internal,
            "Attachable": ns.attachable, "EnableIPv6": ns.ipv6,
            "IPAM": {"Driver": ns.ipam_driver, "Config": pools, "Options": {}},
            "Options": _pairs(ns.opt), "Labels": _pairs(ns.label)}
    try:
        rep = cli.json("POST", "/networks/create", body=body)
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    print(rep.get("Id", ""))
    return 0


def _pairs(items: list[str]) -> dict[str, str]:
    return {k: v for k, _, v in (x.partition("=") for x in items)}


def connect(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard network connect [--alias A] [--ip IP] NETWORK CONTAINER`."""
    return _connect(cli, prog, args, "connect")


def disconnect(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard network disconnect [-f] NETWORK CONTAINER`."""
    return _connect(cli, prog, args, "disconnect")


def _connect(cli: Client, prog: str, args: list[str], op: str) -> int:
    p = Parser(prog, "[OPTIONS] NETWORK CONTAINER")
    if op == "connect":
        p.add_argument("--alias", action="append", default=[])
        p.add_argument("--ip")
        p.add_argument("--ip6")
    else:
        p.add_argument("-f", "--force", action="store_true")
    p.add_argument("network")
    p.add_argument("container")
    ns = p.parse_args(args)
    body: dict[str, Any] = {"Container": ns.container}
    if op == "connect":
        body["EndpointConfig"] = {"Aliases": ns.alias or None, "IPAMConfig": {
            k: v for k, v in (("IPv4Address", ns.ip), ("IPv6Address", ns.ip6)) if v} or None}
    else:
        body["Force"] = ns.force
    try:
        cli.call("POST", f"/networks/{ns.network}/{op}", body=body).close()
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    return 0
