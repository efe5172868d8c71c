"""`dockyard exec`: run a command in a running container; exit with its code."""

from __future__ import annotations

import sys

from ...client.api import APIError, Client
from ..flags import Parser

TYPE_CHECKING = False  # typing itself costs ms of start-up; annotations are strings

if TYPE_CHECKING:
    from typing import Any


def exec_(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard exec [-d] [-i] [-t] [-e K=V] [--env-file F] [-u USER] [-w DIR] [--privileged]
    [--detach-keys K] CONTAINER COMMAND [ARG...]`."""
    import os

    from ..attach import DETACHED, stream, window
    from .procopts import _env, _keys
    p = Parser(prog, "[OPTIONS] CONTAINER COMMAND [ARG...]")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("--env-file", action="append", default=[])
    p.add_argument("-u", "--user")
    p.add_argument("-w", "--workdir")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("--privileged", action="store_true")
    p.add_argument("--detach-keys")
    p.add_argument("container")
    p.add_argument("command", nargs="...")
    ns = p.parse_args(args)
    if not ns.command:
        print(f'"{prog}" requires at least 2 arguments.', file=sys.stderr)
        return 1
    keys = _keys(ns.detach_keys)
    if ns.interactive and ns.tty and not ns.detach and not os.isatty(sys.stdin.fileno()):
        print("the input device is not a TTY", file=sys.stderr)
        return 1
    attached = not ns.detach
    body: dict[str, Any] = {"Cmd": ns.command, "AttachStdout": attached, "AttachStderr": attached,
                            "AttachStdin": ns.interactive and attached, "Tty": ns.tty,
                            "Env": _env(ns.env, ns.env_file) or None, "User": ns.user or "",
                            "WorkingDir": ns.workdir or "", "Privileged": ns.privileged,
                            "DetachKeys": ns.detach_keys or ""}
    size = window(sys.stdout.fileno()) if ns.tty else None
    if size:
        body["ConsoleSize"] = list(size)
    try:
        eid = cli.json("POST", f"/containers/{ns.container}/exec", None, body)["Id"]
        if ns.detach:
            cli.json("POST", f"/exec/{eid}/start", None, {"Detach": True, "Tty": ns.tty})
            return 0
        start: dict[str, Any] = {"Detach": False, "Tty": ns.tty}
        if size:
            start["ConsoleSize"] = list(size)
        resp = cli.call("POST", f"/exec/{eid}/start", body=start, upgrade=True)
    except APIError as e:
        # (as the docker CLI, which looks the container up first: a missing one is "Error: No such …")
        print(f"Error: {e.message}" if e.status == 404 else f"Error response from daemon: {e.message}",
              file=sys.stderr)
        return 1 if e.status in (404, 409) else 126

    def resize(h: int, w: int) -> None:
        cli.call("POST", f"/exec/{eid}/resize", {"h": h, "w": w}).close()
    try:
        how = stream(resp, tty=ns.tty, stdin=ns.interactive, keys=keys, resize=resize)
    finally:
        resp.close()
    if how == DETACHED:   # as the docker CLI, which reports it as an error
        print("read escape sequence", file=sys.stderr)
        return 1
    code = cli.json("GET", f"/exec/{eid}/json").get("ExitCode")
    return 126 if code is None else int(code)
