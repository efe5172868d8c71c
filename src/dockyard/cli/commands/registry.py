"""login, logout: credentials checked by the daemon (`POST /auth`), kept in the client's
config.json as the docker CLI keeps them."""

from __future__ import annotations

import base64
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
        cli.call("POST", "/auth", body={"username": ns.username, "password": pw, "serveraddress": server}).close()
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    cfg = dockerconfig.load()
    cfg.setdefault("auths", {})[server] = {"auth": base64.b64encode(f"{ns.username}:{pw}".encode()).decode()}
    dockerconfig.save(cfg)
    print("Login Succeeded")
    return 0


def logout(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard logout [SERVER]`."""
    p = Parser(prog, "[SERVER]")
    p.add_argument("server", nargs="?", default="")
    ns = p.parse_args(args)
    server = dockerconfig.key(ns.server)
    cfg = dockerconfig.load()
    if server not in (cfg.get("auths") or {}):
        print(f"Not logged in to {server}")
        return 0
    del cfg["auths"][server]
    dockerconfig.save(cfg)
    print(f"Removing login credentials for {server}")
    return 0
