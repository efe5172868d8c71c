"""version, info."""

from __future__ import annotations

import platform
import sys

from ... import API_VERSION, __version__
from ...client.api import APIError, Client
from ...client.http import ConnectionFailed
from ...units import bytes_size
from ..flags import Parser


def version(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard version`."""
    p = Parser(prog, "[OPTIONS]")
    p.add_argument("-f", "--format")
    ns = p.parse_args(args)
    client = {"Version": __version__, "ApiVersion": API_VERSION, "Os": "linux", "Arch": platform.machine(),
              "GoVersion": "python" + platform.python_version()}
    try:
        server = cli.json("GET", "/version")
    except (APIError, ConnectionFailed) as e:
        server, err = None, e
    if ns.format:
        from ..gotemplate import render
        print(render(ns.format, {"Client": client, "Server": server}))
        return 0 if server else 1
    print("Client:")
    print(f" Version:           {client['Version']}")
    print(f" API version:       {client['ApiVersion']}")
    print(f" Python version:    {platform.python_version()}")
    print(f" OS/Arch:           linux/{client['Arch']}")
    print()
    if server is None:
        print(str(getattr(err, "message", err)), file=sys.stderr)
        return 1
    print("Server: Dockyard Engine")
    print(" Engine:")
    print(f"  Version:          {server['Version']}")
    print(f"  API version:      {server['ApiVersion']} (minimum version {server.get('MinAPIVersion', '')})")
    print(f"  OS/Arch:          {server['Os']}/{server['Arch']}")
    print(f"  Kernel version:   {server.get('KernelVersion', '')}")
    return 0


def info(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard info`."""
    p = Parser(prog, "[OPTIONS]")
    p.add_argument("-f", "--format")
    ns = p.parse_args(args)
    i = cli.json("GET", "/info")
    if ns.format:
        from ..gotemplate import render
        print(render(ns.format, i))
        return 0
    lines = [
        "Client:", " Context:    default", " Debug Mode: false", "", "Server:",
        f" Containers: {i['Containers']}", f"  Running: {i['ContainersRunning']}",
        f"  Paused: {i['ContainersPaused']}", f"  Stopped: {i['ContainersStopped']}",
        f" Images: {i['Images']}", f" Server Version: {i['ServerVersion']}",
        f" Storage Driver: {i['Driver']}", f" Logging Driver: {i['LoggingDriver']}",
        f" Cgroup Driver: {i['CgroupDriver']}", f" Cgroup Version: {i['CgroupVersion']}",
        " Runtimes: " + " ".join(sorted(i.get("Runtimes") or {})), f" Default Runtime: {i['DefaultRuntime']}",
        " Security Options:", "  seccomp", "   Profile: default",
        f" Kernel Version: {i['KernelVersion']}", f" Operating System: {i['OperatingSystem']}",
        f" OSType: {i['OSType']}", f" Architecture: {i['Architecture']}", f" CPUs: {i['NCPU']}",
        f" Total Memory: {bytes_size(i['MemTotal'])}", f" Name: {i['Name']}", f" ID: {i['ID']}",
        f" Docker Root Dir: {i['DockerRootDir']}", f" Debug Mode: {str(i['Debug']).lower()}",
        f" Live Restore Enabled: {str(i['LiveRestoreEnabled']).lower()}",
    ]
    print("\n".join(lines))
    return 0
