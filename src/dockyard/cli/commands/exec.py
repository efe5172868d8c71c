"""`dockyard exec`: run a command in a running container; exit with its code."""

from __future__ import annotations

import sys
from typing import Any

from ...client.api import APIError, Client
from ..flags import Parser


def exec_(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard exec [-d] [-e K=V] [--env-file F] [-u USER] [-w DIR] CONTAINER COMMAND [ARG...]`."""
    from .run import _env, _pump
    p = Parser(prog, "[OPTIONS] CONTAINER COMMAND [ARG...]")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("--env-file", action="append", default=[])
    p.add_argument("-u", "--user")
    p.add_argument("-w", "--workdir")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("--privileged", action="store_true")
    p.add_argument("container")
    p.add_argument("command", nargs="...")
    ns = p.parse_args(args)
    if not ns.command:
        print(f'"{prog}" requires at least 2 arguments.', file=sys.stderr)
        return 1
    if ns.interactive or ns.tty:
        print("dockyard: -i/-t (interactive exec) are not supported yet", file=sys.stderr)
        return 125
    body: dict[str, Any] = {"Cmd": ns.command, "AttachStdout": not ns.detach, "AttachStderr": not ns.detach,
                            "Env": _env(ns.env, ns.env_file) or None, "User": ns.user or "",
                            "WorkingDir": ns.workdir or "", "Privileged": ns.privileged}
    try:
        eid = cli.json("POST", f"/containers/{ns.container}/exec", None, body)["Id"]
        if ns.detach:
            cli.json("POST", f"/exec/{eid}/start", None, {"Detach": True, "Tty": False})
            return 0
        resp = cli.call("POST", f"/exec/{eid}/start", body={"Detach": False, "Tty": False}, upgrade=True)
    except APIError as e:
        # (as the docker CLI, which looks the container up first: a missing one is "Error: No such …")
        print(f"Error: {e.message}" if e.status == 404 else f"Error response from daemon: {e.message}",
              file=sys.stderr)
        return 1 if e.status in (404, 409) else 126
    try:
        _pump(resp)
    finally:
        resp.close()
    code = cli.json("GET", f"/exec/{eid}/json").get("ExitCode")
    return 126 if code is None else int(code)
