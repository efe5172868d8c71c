"""Entry point: global flags, then the command's module is imported and run."""

from __future__ import annotations

import os
import sys

# command → (module, function); aliases point at the same pair
COMMANDS: dict[str, tuple[str, str]] = {
    "version": ("system", "version"), "info": ("system", "info"),
    "images": ("images", "images"), "import": ("images", "import_"), "tag": ("images", "tag"),
    "rmi": ("images", "rmi"), "history": ("images", "history"), "save": ("images", "save"),
    "load": ("images", "load"), "pull": ("images", "pull"), "push": ("images", "push"), "export": ("filesystem", "export"),
    "login": ("registry", "login"), "logout": ("registry", "logout"), "search": ("registry", "search"),
    "commit": ("filesystem", "commit"),
    "diff": ("filesystem", "diff"), "cp": ("filesystem", "cp"),
    "inspect": ("inspect", "inspect"),
    "create": ("run", "create"), "run": ("run", "run"), "start": ("run", "start"),
    "attach": ("run", "attach"),
    "ps": ("containers", "ps"), "stop": ("containers", "stop"), "restart": ("containers", "restart"),
    "kill": ("containers", "kill"), "rm": ("containers", "rm"), "logs": ("containers", "logs"),
    "wait": ("containers", "wait"), "rename": ("containers", "rename"),
    "pause": ("containers", "pause"), "unpause": ("containers", "unpause"),
    "events": ("system", "events"), "top": ("containers", "top"), "stats": ("stats", "stats"),
    "exec": ("exec", "exec_"), "update": ("run", "update"), "port": ("containers", "port"),
    "build": ("build", "build"), "compose": ("compose", "compose"),
}
GROUPS: dict[str, dict[str, tuple[str, str]]] = {
    "image": {"ls": ("images", "images"), "list": ("images", "images"), "import": ("images", "import_"),
              "tag": ("images", "tag"), "rm": ("images", "rmi"), "remove": ("images", "rmi"),
              "history": ("images", "history"), "inspect": ("inspect", "image_inspect"),
              "prune": ("images", "prune"), "save": ("images", "save"), "load": ("images", "load"),
              "pull": ("images", "pull"), "push": ("images", "push"), "build": ("build", "build")},
    "builder": {"build": ("build", "build")},
    "container": {"ls": ("containers", "ps"), "list": ("containers", "ps"), "ps": ("containers", "ps"),
                  "create": ("run", "create"), "run": ("run", "run"), "start": ("run", "start"),
                  "attach": ("run", "attach"), "stop": ("containers", "stop"), "restart": ("containers", "restart"),
                  "kill": ("containers", "kill"), "rm": ("containers", "rm"), "logs": ("containers", "logs"),
                  "wait": ("containers", "wait"), "rename": ("containers", "rename"),
                  "pause": ("containers", "pause"), "unpause": ("containers", "unpause"),
                  "top": ("containers", "top"), "port": ("containers", "port"),
                  "stats": ("stats", "stats"), "exec": ("exec", "exec_"),
                  "update": ("run", "update"), "inspect": ("inspect", "container_inspect"), "prune": ("containers", "prune"),
                  "export": ("filesystem", "export"), "commit": ("filesystem", "commit"),
                  "diff": ("filesystem", "diff"), "cp": ("filesystem", "cp")},
    "network": {"ls": ("networks", "ls"), "list": ("networks", "ls"), "inspect": ("inspect", "network_inspect"),
                "rm": ("networks", "rm"), "remove": ("networks", "rm"), "prune": ("networks", "prune"),
                "create": ("networks", "create"), "connect": ("networks", "connect"),
                "disconnect": ("networks", "disconnect")},
    "volume": {"ls": ("volumes", "ls"), "list": ("volumes", "ls"), "inspect": ("inspect", "volume_inspect"),
               "rm": ("volumes", "rm"), "remove": ("volumes", "rm"), "prune": ("volumes", "prune"),
               "create": ("volumes", "create")},
    "system": {"info": ("system", "info"), "df": ("system", "df"), "events": ("system", "events"),
               "prune": ("system", "prune")},
}

USAGE = """Usage:  dockyard [OPTIONS] COMMAND

A Docker-compatible container engine

Options:
  -H, --host string   Daemon socket to connect to (default unix:///run/dockyard.sock, or $DOCKER_HOST)
  -v, --version       Print version information and quit

Commands:
  build       Build an image from a Dockerfile
  compose     Run multi-container applications (Compose files)
  commit      Create a new image from a container's changes
  cp          Copy files/folders between a container and the local filesystem
  create      Create a new container
  diff        Inspect changes to files or directories on a container's filesystem
  events      Get real time events from the server
  exec        Run a command in a running container
  export      Export a container's filesystem as a tar archive
  history     Show the history of an image
  images      List images
  import      Import the contents of a tarball to create a filesystem image
  info        Display system-wide information
  inspect     Return low-level information on Docker objects
  kill        Kill one or more running containers
  load        Load an image from a tar archive or STDIN
  logs        Fetch the logs of a container
  pause       Pause all processes within one or more containers
  ps          List containers
  rename      Rename a container
  restart     Restart one or more containers
  rm          Remove one or more containers
  rmi         Remove one or more images
  run         Run a command in a new container
  save        Save one or more images to a tar archive (streamed to STDOUT by default)
  start       Start one or more stopped containers
  stats       Display a live stream of container(s) resource usage statistics
  stop        Stop one or more running containers
  tag         Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
  top         Display the running processes of a container
  unpause     Unpause all processes within one or more containers
  version     Show the Docker version information
  wait        Block until one or more containers stop, then print their exit codes

Management Commands:
  container   Manage containers
  image       Manage images
  system      Manage Docker
"""


def main(argv: list[str] | None = None) -> None:
    """Parse global flags, dispatch, map errors to Docker's exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    host = None
    while args and args[0].startswith("-"):
        a = args.pop(0)
        if a in ("-H", "--host"):
            if not args:
                _die("flag needs an argument: -H")
            host = args.pop(0)
        elif a.startswith("--host="):
            host = a.split("=", 1)[1]
        elif a in ("-v", "--version"):
            from .. import __version__
            print(f"Dockyard version {__version__}")
            return
        elif a in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return
        elif a in ("-D", "--debug"):
            continue
        else:
            _die(f"unknown flag: {a}\nSee 'dockyard --help'.")
    if not args:
        sys.stdout.write(USAGE)
        return
    cmd = args.pop(0)
    if cmd in GROUPS:
        if not args or args[0] in ("-h", "--help"):
            sys.stdout.write(f"Usage:  dockyard {cmd} COMMAND\n\nCommands:\n" +
                             "".join(f"  {c}\n" for c in GROUPS[cmd]))
            return
        sub = args.pop(0)
        target = GROUPS[cmd].get(sub)
        if target is None:
            _die(f"dockyard: '{cmd} {sub}' is not a docker command.\nSee 'dockyard {cmd} --help'")
        prog = f"{cmd} {sub}"
    else:
        target = COMMANDS.get(cmd)
        if target is None:
            _die(f"dockyard: '{cmd}' is not a docker command.\nSee 'dockyard --help'")
        prog = cmd
    assert target is not None
    __import__(f"{__package__}.commands.{target[0]}")   # (importlib itself is an import more)
    mod = sys.modules[f"{__package__}.commands.{target[0]}"]
    from ..client.api import APIError, Client
    from ..client.http import ConnectionFailed
    try:
        code = getattr(mod, target[1])(Client(host), prog, args)
    except APIError as e:
        if e.status == 0:
            _die(e.message)
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        code = 1
    except ConnectionFailed as e:
        print(str(e), file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        os._exit(1)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(code or 0)  # skip interpreter teardown: every ms counts for `run`


def _die(msg: str, code: int = 125) -> None:
    print(msg, file=sys.stderr)
    sys.exit(code)
