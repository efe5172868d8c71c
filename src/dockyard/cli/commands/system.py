"""version, info."""

from __future__ import annotations

import json
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
    if i.get("ClusterStore"):   # as the docker CLI shows them, and the nodes the store lists
        lines += [f" Cluster Store: {i['ClusterStore']}", f" Cluster Advertise: {i.get('ClusterAdvertise', '')}"]
        lines += [f" {k}: {v}" for k, v in i.get("SystemStatus") or []]
    print("\n".join(lines))
    return 0


def df(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard system df [-v]`."""
    import time

    from ...units import human_duration, human_size
    from ..output import table
    p = Parser(prog, "[OPTIONS]")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--format")
    ns = p.parse_args(args)
    d = cli.json("GET", "/system/df")
    imgs, ctrs = d.get("Images") or [], d.get("Containers") or []
    active_imgs = [i for i in imgs if i.get("Containers", 0) > 0]
    total = d.get("LayersSize", 0)
    active_size = sum(i["Size"] - i.get("SharedSize", 0) for i in active_imgs) + \
        max((i.get("SharedSize", 0) for i in active_imgs), default=0)
    reclaim_i = max(0, total - active_size)
    csize = sum(c.get("SizeRw", 0) for c in ctrs)
    vols = d.get("Volumes") or []
    vsize = sum(max((v.get("UsageData") or {}).get("Size", 0), 0) for v in vols)
    vreclaim = sum(max((v.get("UsageData") or {}).get("Size", 0), 0) for v in vols if not _refs(v))
    creclaim = sum(c.get("SizeRw", 0) for c in ctrs if c.get("State") != "running")

    def pct(a: int, b: int) -> str:
        return f"{human_size(a)} ({int(100 * a / b) if b else 0}%)"

    if not ns.verbose:
        table([["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
               ["Images", str(len(imgs)), str(len(active_imgs)), human_size(total), pct(reclaim_i, total)],
               ["Containers", str(len(ctrs)), str(sum(1 for c in ctrs if c.get("State") == "running")),
                human_size(csize), pct(creclaim, csize)],
               ["Local Volumes", str(len(vols)), str(sum(1 for v in vols if _refs(v))), human_size(vsize),
                pct(vreclaim, vsize)], ["Build Cache", "0", "0", "0B", "0B"]])
        return 0
    print("Images space usage:\n")
    rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"]]
    for i in imgs:
        for t in i.get("RepoTags") or ["<none>:<none>"]:
            repo, _, tag = t.rpartition(":")
            rows.append([repo, tag, i["Id"][7:19], human_duration(time.time() - i["Created"]) + " ago",
                         human_size(i["Size"]), human_size(i.get("SharedSize", 0)),
                         human_size(i["Size"] - i.get("SharedSize", 0)), str(i.get("Containers", 0))])
    table(rows)
    print("\nContainers space usage:\n")
    rows = [["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"]]
    for c in ctrs:
        cmd = c.get("Command", "")
        cmd = cmd if len(cmd) <= 20 else cmd[:19] + "…"
        rows.append([c["Id"][:12], c.get("Image", ""), json.dumps(cmd, ensure_ascii=False), "0",
                     human_size(c.get("SizeRw", 0)), human_duration(time.time() - c["Created"]) + " ago",
                     c.get("Status", ""), ",".join(n.lstrip("/") for n in c.get("Names") or [])])
    table(rows)
    print("\nLocal Volumes space usage:\n")
    table([["VOLUME NAME", "LINKS", "SIZE"]] + [[v["Name"], str(_refs(v)),
                                                 human_size(max((v.get("UsageData") or {}).get("Size", 0), 0))]
                                                for v in vols])
    print("\nBuild cache usage: 0B\n")
    return 0


def _refs(v: dict) -> int:
    return int((v.get("UsageData") or {}).get("RefCount", 0))


def events(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard events [--since] [--until] [-f k=v] [--format]`: stream until `until` or Ctrl-C."""
    from ...client.api import filters_param
    p = Parser(prog, "[OPTIONS]")
    p.add_argument("--since")
    p.add_argument("--until")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format")
    ns = p.parse_args(args)
    q = {"since": ns.since, "until": ns.until, "filters": filters_param(ns.filter)}
    try:
        resp = cli.call("GET", "/events", q)
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    try:
        for line in resp.lines():
            ev = json.loads(line)
            if ns.format:
                from ..gotemplate import render
                print(render(ns.format, ev), flush=True)
            else:
                print(_event_line(ev), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        resp.close()
    return 0


def _event_line(ev: dict) -> str:
    """As the docker CLI prints an event: time (RFC 3339, nanoseconds), type, action, ID, attributes."""
    import datetime as _dt
    ns = int(ev.get("timeNano") or ev.get("time", 0) * 1_000_000_000)
    t = _dt.datetime.fromtimestamp(ns // 1_000_000_000).astimezone()
    off = t.strftime("%z")
    zone = "Z" if off in ("+0000", "-0000", "") else f"{off[:3]}:{off[3:]}"
    stamp = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns % 1_000_000_000:09d}" + zone
    attrs = ev.get("Actor", {}).get("Attributes") or {}
    tail = f" ({', '.join(f'{k}={attrs[k]}' for k in sorted(attrs))})" if attrs else ""
    return f"{stamp} {ev.get('Type')} {ev.get('Action')} {ev.get('Actor', {}).get('ID', '')}{tail}"


def prune(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard system prune [-a] [-f] [--filter]`: stopped containers, then dangling (or unused)
    images, then the partial downloads kept for resuming pulls."""
    from ...client.api import filters_param
    from ...units import human_size
    from .containers import _confirm
    from .images import print_deleted_images
    p = Parser(prog, "[OPTIONS]")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--volumes", action="store_true")
    p.add_argument("--filter", action="append", default=[])
    ns = p.parse_args(args)
    what = "all images without at least one container associated to them" if ns.all else "all dangling images"
    vols = "  - all anonymous volumes not used by at least one container\n" if ns.volumes else ""
    if not ns.force and not _confirm(f"WARNING! This will remove:\n  - all stopped containers\n{vols}  - {what}\n"):
        return 0
    rep = cli.json("POST", "/containers/prune", {"filters": filters_param(ns.filter)})
    space = rep.get("SpaceReclaimed", 0)
    if rep.get("ContainersDeleted"):
        print("Deleted Containers:")
        print("\n".join(rep["ContainersDeleted"]) + "\n")
    if ns.volumes:
        rep = cli.json("POST", "/volumes/prune", {"filters": filters_param(ns.filter)})
        space += rep.get("SpaceReclaimed", 0)
        if rep.get("VolumesDeleted"):
            print("Deleted Volumes:")
            print("\n".join(rep["VolumesDeleted"]) + "\n")
    filt = list(ns.filter) + (["dangling=false"] if ns.all else ["dangling=true"])
    rep = cli.json("POST", "/images/prune", {"filters": filters_param(filt)})
    space += rep.get("SpaceReclaimed", 0)
    print_deleted_images(rep.get("ImagesDeleted") or [])
    rep = cli.json("POST", "/build/prune", {"all": "1" if ns.all else "0"})
    space += rep.get("SpaceReclaimed", 0)
    if rep.get("CachesDeleted"):
        print("Deleted partial downloads:")
        print("\n".join(rep["CachesDeleted"]) + "\n")
    print(f"Total reclaimed space: {human_size(space)}")
    return 0
