"""`dockyard compose`: Compose-specification projects (compose.yaml / docker-compose.yml) on the
Engine API: global options and the command table (the commands live in cli/compose/)."""

from __future__ import annotations

import sys
from typing import Any

from ...client.api import APIError, Client

USAGE = """Usage:  dockyard compose [OPTIONS] COMMAND

Options:
  -f, --file FILE        Compose configuration files (several are merged)
  -p, --project-name     Project name
      --project-directory
      --env-file FILE    Environment files (instead of .env)
      --profile NAME     Profiles to enable
      --compatibility    Container and image names as docker-compose 1.x (project_service_1)

Commands: build config create down exec images kill logs ls pause port ps pull push restart rm run start stop
          top unpause up version
"""


def compose(cli: Client, prog: str, args: list[str]) -> int:
    files: list[str] = []
    env_files: list[str] = []
    profiles: list[str] = []
    name = workdir = ""
    compat = False
    i = 0
    while i < len(args) and args[i].startswith("-"):
        a = args[i]
        flag, eq, val = a.partition("=")
        takes = flag in ("-f", "--file", "-p", "--project-name", "--project-directory", "--env-file", "--profile")
        if takes and not eq:
            i += 1
            if i >= len(args):
                print(f"flag needs an argument: {flag}", file=sys.stderr)
                return 1
            val = args[i]
        if flag in ("-f", "--file"):
            files.append(val)
        elif flag in ("-p", "--project-name"):
            name = val
        elif flag == "--project-directory":
            workdir = val
        elif flag == "--env-file":
            env_files.append(val)
        elif flag == "--profile":
            profiles.append(val)
        elif flag == "--compatibility":
            compat = True
        elif flag in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        else:
            print(f"unknown flag: {flag}", file=sys.stderr)
            return 1
        i += 1
    if i >= len(args):
        sys.stdout.write(USAGE)
        return 1
    cmd, rest = args[i], args[i + 1:]
    if cmd == "version":
        from ..compose.project import VERSION
        print(f"Dockyard Compose version {VERSION}")
        return 0
    if cmd == "ls":
        from ..compose.info import ls
        try:
            return ls(cli, "compose ls", rest)
        except APIError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            return 1
    fn = _COMMANDS.get(cmd)
    if fn is None:
        print(f"unknown compose command: {cmd!r}", file=sys.stderr)
        return 1
    from ..compose.loader import ComposeError, load
    from ..compose.project import Compose
    try:
        proj = load(files, name, env_files or None, profiles or None, workdir or None)
        return fn(Compose(cli, proj, compat), f"compose {cmd}", rest)
    except ComposeError as e:
        print(str(e), file=sys.stderr)
        return 1
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1


def _command(module: str, name: str, *arg: str) -> Any:
    """A compose command from its module, imported when run (the CLI's start-up stays small)."""
    def run(c: Any, prog: str, args: list[str]) -> int:
        import importlib
        fn = getattr(importlib.import_module(f"..compose.{module}", __package__), name)
        return int((fn(*arg) if arg else fn)(c, prog, args))
    return run


_COMMANDS = {"up": _command("lifecycle", "up"), "down": _command("lifecycle", "down"),
             "start": _command("lifecycle", "each", "start"), "stop": _command("lifecycle", "each", "stop"),
             "restart": _command("lifecycle", "each", "restart"), "kill": _command("lifecycle", "each", "kill"),
             "rm": _command("lifecycle", "each", "rm"), "pause": _command("lifecycle", "each", "pause"),
             "unpause": _command("lifecycle", "each", "unpause"), "create": _command("lifecycle", "create"),
             "ps": _command("info", "ps"), "config": _command("info", "config"), "logs": _command("info", "logs"),
             "top": _command("info", "top"), "images": _command("info", "images"), "port": _command("info", "port"),
             "run": _command("oneoff", "run"), "exec": _command("oneoff", "exec_"),
             "build": _command("imaging", "build"), "pull": _command("imaging", "pull"),
             "push": _command("imaging", "push")}
