"""ps, stop, restart, kill, rm, logs, wait, rename, container prune."""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False  # typing itself costs ms of start-up; annotations are strings

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

from ...client.api import APIError, Client, demux, filters_param
from ...units import human_duration, human_size
from ..flags import Parser, need
from ..output import format_rows, table


def format_ports(ports: list[dict[str, Any]]) -> str:
    """`0.0.0.0:8080->80/tcp, 443/tcp`, as `docker ps` prints them."""
    out = []
    for p in sorted(ports, key=lambda p: (p.get("PrivatePort", 0), p.get("Type", ""), p.get("PublicPort", 0))):
        if p.get("PublicPort"):
            out.append(f"{p.get('IP') or '0.0.0.0'}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}")
        else:
            out.append(f"{p['PrivatePort']}/{p['Type']}")
    return ", ".join(out)


def _ellipsis(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _ps_fields(c: dict[str, Any], trunc: bool) -> dict[str, Any]:
    import json as _json
    cmd = c.get("Command", "")
    created = c.get("Created", 0)
    labels = c.get("Labels") or {}
    size = ""
    if "SizeRw" in c:
        size = f"{human_size(c.get('SizeRw', 0))} (virtual {human_size(c.get('SizeRootFs', 0))})"
    names = [n.lstrip("/") for n in c.get("Names") or []]
    f: dict[str, Any] = {
        "ID": c["Id"][:12] if trunc else c["Id"], "Image": c.get("Image", ""),
        "Command": _json.dumps(_ellipsis(cmd, 20) if trunc else cmd, ensure_ascii=False),
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(created)),
        "RunningFor": human_duration(time.time() - created) + " ago", "Ports": format_ports(c.get("Ports") or []),
        "State": c.get("State", ""), "Status": c.get("Status", ""), "Size": size,
        "Names": ",".join(names), "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Mounts": "", "Networks": ",".join(sorted((c.get("NetworkSettings") or {}).get("Networks") or {})),
        "LocalVolumes": "0",
    }
    f["Label"] = lambda k: labels.get(k, "")
    return f


def ps(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard ps`."""
    p = Parser(prog, "[OPTIONS]")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-n", "--last", type=int, default=-1)
    p.add_argument("-l", "--latest", action="store_true")
    p.add_argument("-s", "--size", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format")
    ns = p.parse_args(args)
    limit = 1 if ns.latest else ns.last
    q = {"all": 1 if ns.all or limit > 0 else None, "limit": limit if limit > 0 else None,
         "size": 1 if ns.size else None, "filters": filters_param(ns.filter)}
    items = cli.json("GET", "/containers/json", q)
    trunc = not ns.no_trunc
    if ns.quiet:
        for c in items:
            print(c["Id"][:12] if trunc else c["Id"])
        return 0
    fields = [_ps_fields(c, trunc) for c in items]
    if ns.format:
        from ..gotemplate import FieldMap
        format_rows(ns.format, [FieldMap(f) for f in fields],
                    {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
                     "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
                     "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS",
                     "Networks": "NETWORKS"})
        return 0
    head = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    if ns.size:
        head.append("SIZE")
    rows = [head]
    for f in fields:
        row = [f["ID"], f["Image"], f["Command"], f["RunningFor"], f["Status"], f["Ports"], f["Names"]]
        if ns.size:
            row.append(f["Size"])
        rows.append(row)
    table(rows)
    return 0


def for_each(names: list[str], fn: Callable[[str], Any]) -> int:
    """Run `fn` for each name; a daemon error is printed and makes the exit code 1."""
    code = 0
    for n in names:
        try:
            fn(n)
        except APIError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            code = 1
    return code


def _each(cli: Client, prog: str, names: list[str], fn: Any) -> int:
    def one(n: str) -> None:
        fn(n)
        print(n)
    return for_each(names, one)


def _multi(cli: Client, prog: str, args: list[str], flags: tuple[tuple[tuple[str, ...], dict[str, Any]], ...],
           call: Callable[[Any, str], Any]) -> int:
    """Commands of the form `CMD [OPTIONS] CONTAINER [CONTAINER...]`, printing each name done."""
    usage = "[OPTIONS] CONTAINER [CONTAINER...]"
    p = Parser(prog, usage)
    for names, kw in flags:
        p.add_argument(*names, **kw)
    p.add_argument("containers", nargs="*")
    ns = p.parse_args(args)
    need(ns.containers, 1, prog, usage)
    return _each(cli, prog, ns.containers, lambda c: call(ns, c))


def stop(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard stop [-t N] CONTAINER...`."""
    return _multi(cli, prog, args, ((("-t", "--time"), {"type": int}),),
                  lambda ns, c: cli.json("POST", f"/containers/{c}/stop", {"t": ns.time}))


def restart(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard restart [-t N] CONTAINER...`."""
    return _multi(cli, prog, args, ((("-t", "--time"), {"type": int}),),
                  lambda ns, c: cli.json("POST", f"/containers/{c}/restart", {"t": ns.time}))


def kill(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard kill [-s SIG] CONTAINER...`."""
    return _multi(cli, prog, args, ((("-s", "--signal"), {"default": "KILL"}),),
                  lambda ns, c: cli.json("POST", f"/containers/{c}/kill", {"signal": ns.signal}))


def top(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard top CONTAINER [ps OPTIONS]`."""
    if not args or args[0] in ("--help", "-h"):
        print(f"Usage:  {prog} CONTAINER [ps OPTIONS]", file=sys.stderr if not args else sys.stdout)
        return 1 if not args else 0
    try:
        rep = cli.json("GET", f"/containers/{args[0]}/top", {"ps_args": " ".join(args[1:]) or None})
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    table([rep["Titles"], *rep["Processes"]], min_width=20)
    return 0


def pause(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard pause CONTAINER...`."""
    return _multi(cli, prog, args, (), lambda ns, c: cli.json("POST", f"/containers/{c}/pause"))


def unpause(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard unpause CONTAINER...`."""
    return _multi(cli, prog, args, (), lambda ns, c: cli.json("POST", f"/containers/{c}/unpause"))


def rm(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard rm [-f] [-v] CONTAINER...`."""
    flags = ((("-f", "--force"), {"action": "store_true"}), (("-v", "--volumes"), {"action": "store_true"}),
             (("-l", "--link"), {"action": "store_true"}))
    return _multi(cli, prog, args, flags, lambda ns, c: cli.json(
        "DELETE", f"/containers/{c}", {"force": 1 if ns.force else None, "v": 1 if ns.volumes else None}))


def rename(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard rename OLD NEW`."""
    need(args, 2, prog, "CONTAINER NEW_NAME", exact=True)
    cli.json("POST", f"/containers/{args[0]}/rename", {"name": args[1]})
    return 0


def wait(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard wait CONTAINER...`: print each exit code."""
    need(args, 1, prog, "CONTAINER [CONTAINER...]")
    return for_each(args, lambda c: print(cli.json("POST", f"/containers/{c}/wait").get("StatusCode", 0)))


def logs(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard logs [-f] [-t] [--tail N] [--since T] [--until T] CONTAINER`."""
    p = Parser(prog, "[OPTIONS] CONTAINER")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("-n", "--tail", default="all")
    p.add_argument("--since")
    p.add_argument("--until")
    p.add_argument("--details", action="store_true")
    p.add_argument("container", nargs="*")
    ns = p.parse_args(args)
    need(ns.container, 1, prog, "[OPTIONS] CONTAINER", exact=True)
    q = {"stdout": 1, "stderr": 1, "follow": 1 if ns.follow else None, "timestamps": 1 if ns.timestamps else None,
         "tail": ns.tail, "since": _time_arg(ns.since), "until": _time_arg(ns.until),
         "details": 1 if ns.details else None}
    resp = cli.call("GET", f"/containers/{ns.container[0]}/logs", q)
    out, err = sys.stdout.buffer, sys.stderr.buffer
    try:
        for stream, data in demux(resp):
            (err if stream == 2 else out).write(data)
            if ns.follow:
                (err if stream == 2 else out).flush()
    finally:
        resp.close()
    return 0


def _time_arg(v: str | None) -> str | None:
    """Durations (10m) → absolute unix time, as the docker CLI sends them."""
    if not v:
        return None
    units = {"s": 1, "m": 60, "h": 3600}
    if v[-1] in units and v[:-1].replace(".", "", 1).isdigit():
        return f"{time.time() - float(v[:-1]) * units[v[-1]]:.9f}"
    return v


def prune(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard container prune [-f] [--filter]`."""
    p = Parser(prog, "[OPTIONS]")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])
    ns = p.parse_args(args)
    if not ns.force and not _confirm("WARNING! This will remove all stopped containers."):
        return 0
    rep = cli.json("POST", "/containers/prune", {"filters": filters_param(ns.filter)})
    deleted = rep.get("ContainersDeleted") or []
    if deleted:
        print("Deleted Containers:")
        for d in deleted:
            print(d)
        print()
    print(f"Total reclaimed space: {human_size(rep.get('SpaceReclaimed', 0))}")
    return 0


def _confirm(warning: str) -> bool:
    sys.stdout.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    ans = sys.stdin.readline().strip().lower()
    return ans in ("y", "yes")


def port(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard port CONTAINER [PRIVATE_PORT[/PROTO]]`: the published ports, as `docker port`."""
    p = Parser(prog, "CONTAINER [PRIVATE_PORT[/PROTO]]")
    p.add_argument("container")
    p.add_argument("private", nargs="?", default="")
    ns = p.parse_args(args)
    try:
        info = cli.json("GET", f"/containers/{ns.container}/json")
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if ns.private:
        key = ns.private if "/" in ns.private else f"{ns.private}/tcp"
        binds = ports.get(key)
        if not binds:
            print(f"Error: No public port '{key}' published for {ns.container}", file=sys.stderr)
            return 1
        for b in binds:
            print(f"{b['HostIp']}:{b['HostPort']}")
        return 0
    for key in sorted(ports, key=lambda k: (int(k.split("/")[0]), k)):
        for b in ports[key] or []:
            print(f"{key} -> {b['HostIp']}:{b['HostPort']}")
    return 0
