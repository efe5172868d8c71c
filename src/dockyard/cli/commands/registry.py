"""login, logout: credentials checked by the daemon (`POST /auth`), kept in the client's
config.json as the docker CLI keeps them."""

from __future__ import annotations

import sys

from ...client import dockerconfig
from ...client.api import APIError, Client
from ..flags import Parser


def login(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard login [-u USER] [-p PASSWORD | --password-stdin] [SERVER]`."""
    p = Parser(prog, "[OPTIONS] [SERVER]")
    p.add_argument("-u", "--username", default="")
    p.add_argument("-p", "--password", default="")
    p.add_argument("--password-stdin", action="store_true")
    p.add_argument("server", nargs="?", default="")
    ns = p.parse_args(args)
    if ns.password and ns.password_stdin:
        print("--password and --password-stdin are mutually exclusive", file=sys.stderr)
        return 1
    pw = sys.stdin.readline().rstrip("\r\n") if ns.password_stdin else ns.password
    if ns.password:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
    if not ns.username or not pw:
        print("Error: username and password are required (-u, and -p or --password-stdin)", file=sys.stderr)
        return 1
    server = dockerconfig.key(ns.server)
    try:
        rep = cli.json("POST", "/auth", body={"username": ns.username, "password": pw, "serveraddress": server})
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    try:
        dockerconfig.store(server, ns.username, pw, str(rep.get("IdentityToken") or ""))
    except ValueError as e:
        print(f"Error saving credentials: {e}", file=sys.stderr)
        return 1
    print("Login Succeeded")
    return 0


def logout(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard logout [SERVER]`."""
    p = Parser(prog, "[SERVER]")
    p.add_argument("server", nargs="?", default="")
    ns = p.parse_args(args)
    server = dockerconfig.key(ns.server)
    try:
        had = dockerconfig.erase(server)
    except ValueError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    if not had:
        print(f"Not logged in to {server}")
        return 0
    print(f"Removing login credentials for {server}")
    return 0


def search(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard search [--limit N] [-f k=v] [--no-trunc] [--format F] TERM`; `host:port/term`
    searches that registry's catalog."""
    from ...client.api import filters_param
    from ..output import format_rows, table
    p = Parser(prog, "[OPTIONS] TERM")
    p.add_argument("--limit", type=int, default=25)
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--format", default="")
    p.add_argument("term")
    ns = p.parse_args(args)
    q: dict[str, str | int] = {"term": ns.term, "limit": ns.limit}
    f = filters_param(ns.filter)
    if f:
        q["filters"] = f
    from ...oci import reference
    host = reference.registry_of(ns.term)
    header = dockerconfig.auth_header(host) if host else ""
    try:
        results = cli.call("GET", "/images/search", q,
                           headers={"X-Registry-Auth": header} if header else None).json()
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    items = [{"Name": r["name"], "Description": r["description"] if ns.no_trunc or len(r["description"]) <= 45
              else r["description"][:44] + "…", "StarCount": str(r["star_count"]),
              "IsOfficial": "[OK]" if r["is_official"] else "", "IsAutomated": "[OK]" if r["is_automated"] else ""}
             for r in results]
    if ns.format:
        format_rows(ns.format, items, {"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS",
                                       "IsOfficial": "OFFICIAL", "IsAutomated": "AUTOMATED"})
        return 0
    table([["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"]] +
          [[i["Name"], i["Description"], i["StarCount"], i["IsOfficial"], i["IsAutomated"]] for i in items])
    return 0
