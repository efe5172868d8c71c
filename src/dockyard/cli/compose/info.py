"""What a project is and does: `compose ps`, `config`, `logs`, `top`, `images`, `port`, and the
prefixed log follower `up` shows when attached."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

from ..flags import Parser
from .loader import ComposeError
from .project import Compose, name_of

SERVICE = "com.docker.compose.service"


def ps(c: Compose, prog: str, args: list[str]) -> int:
    p = Parser(prog, "[OPTIONS] [SERVICE...]")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--services", action="store_true", dest="list_services")
    p.add_argument("services", nargs="*")
    ns = p.parse_args(args)
    rows = [x for x in c.containers(all_=ns.all) if not ns.services or x["Labels"].get(SERVICE) in ns.services]
    if ns.quiet:
        for x in rows:
            print(x["Id"])
        return 0
    if ns.list_services:
        for s in sorted({x["Labels"][SERVICE] for x in rows}):
            print(s)
        return 0
    from ..output import table
    out = []
    for x in rows:
        out.append([name_of(x), x["Image"], json.dumps(x["Command"]), x["Labels"].get(SERVICE, ""), x["Status"],
                    _ports(x)])
    table([["NAME", "IMAGE", "COMMAND", "SERVICE", "STATUS", "PORTS"], *out])
    return 0


def _ports(x: dict[str, Any]) -> str:
    return ", ".join(f"{pp.get('IP', '')}:{pp['PublicPort']}->{pp['PrivatePort']}/{pp['Type']}" if pp.get("PublicPort")
                     else f"{pp['PrivatePort']}/{pp['Type']}" for pp in x.get("Ports") or [])


def config(c: Compose, prog: str, args: list[str]) -> int:
    import yaml
    p = Parser(prog, "[OPTIONS]")
    p.add_argument("--services", action="store_true")
    p.add_argument("--volumes", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    ns = p.parse_args(args)
    if ns.quiet:
        return 0
    if ns.services:
        print("\n".join(c.p.services))
        return 0
    if ns.volumes:
        print("\n".join(c.p.config.get("volumes") or {}))
        return 0
    from .normal import normalise
    sys.stdout.write(yaml.safe_dump(normalise(c.p, c.network_name, c.volume_name), sort_keys=False,
                                    default_flow_style=False))
    return 0


def logs(c: Compose, prog: str, args: list[str]) -> int:
    p = Parser(prog, "[OPTIONS] [SERVICE...]")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("--tail", default="all")
    p.add_argument("--no-color", action="store_true")
    p.add_argument("--no-log-prefix", action="store_true")
    p.add_argument("services", nargs="*")
    ns = p.parse_args(args)
    try:
        for _ in follow(c, [(x, None) for x in c.containers_of(ns.services)], color=sys.stdout.isatty() and not ns.no_color,
                        prefix=not ns.no_log_prefix, follow_=ns.follow, tail=ns.tail, timestamps=ns.timestamps):
            pass
    except KeyboardInterrupt:
        return 130
    return 0


def follow(c: Compose, ctrs: list[tuple[dict[str, Any], int | None]], *, color: bool, prefix: bool = True,
           follow_: bool = True, tail: str = "all", timestamps: bool = False) -> Iterator[dict[str, Any]]:
    """Print the containers' logs (each from `since`, or all when None) line by line behind a
    `name | ` prefix, one colour per container on a terminal; yield each container as its
    stream ends (with `follow_`, when it exits)."""
    import queue
    import threading

    from ...client.api import demux
    width = max((len(name_of(x)) for x, _ in ctrs), default=0)
    lock = threading.Lock()
    ended: queue.Queue[dict[str, Any]] = queue.Queue()

    def one(i: int, x: dict[str, Any], since: int | None) -> None:
        pre = f"{name_of(x):<{width}}  | " if prefix else ""   # as Docker Compose v2: two spaces
        if color and pre:
            pre = f"\x1b[{31 + i % 6}m{pre}\x1b[0m"
        try:
            resp = c.cli.call("GET", f"/containers/{x['Id']}/logs",
                              {"stdout": 1, "stderr": 1, "tail": tail, "since": since, "follow": 1 if follow_ else None,
                               "timestamps": 1 if timestamps else None})
            buf = b""
            for _, data in demux(resp):
                buf += data
                *lines, buf = buf.split(b"\n")
                with lock:
                    for ln in lines:
                        sys.stdout.write(pre + ln.decode(errors="replace") + "\n")
                    sys.stdout.flush()
            if buf:
                with lock:
                    sys.stdout.write(pre + buf.decode(errors="replace") + "\n")
                    sys.stdout.flush()
        finally:
            ended.put(x)
    for i, (x, since) in enumerate(ctrs):
        threading.Thread(target=one, args=(i, x, since), daemon=True).start()
    for _ in ctrs:
        while True:
            try:   # a timeout, so that Ctrl-C reaches the main thread
                x = ended.get(timeout=0.5)
                break
            except queue.Empty:
                continue
        yield x


def top(c: Compose, prog: str, args: list[str]) -> int:
    p = Parser(prog, "[SERVICE...]")
    p.add_argument("services", nargs="*")
    ns = p.parse_args(args)
    from ..output import table
    first = True
    for x in c.containers_of(ns.services, all_=False):
        t = c.cli.json("GET", f"/containers/{x['Id']}/top")
        if not first:
            print()
        first = False
        print(name_of(x))
        table([t.get("Titles") or [], *(t.get("Processes") or [])])
    return 0


def images(c: Compose, prog: str, args: list[str]) -> int:
    p = Parser(prog, "[OPTIONS] [SERVICE...]")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("services", nargs="*")
    ns = p.parse_args(args)
    from ...units import human_size
    from ..output import table
    rows, seen = [], {}
    for x in c.containers_of(ns.services):
        if x["ImageID"] not in seen:   # replicas share an image: inspected once
            seen[x["ImageID"]] = img = c.cli.json("GET", f"/images/{x['ImageID']}/json")
            if ns.quiet:
                print(img["Id"].split(":", 1)[-1])
        img = seen[x["ImageID"]]
        if ns.quiet:
            continue
        ref = x["Image"]
        tags = [t for t in img.get("RepoTags") or [] if t == ref or t == f"{ref}:latest"] or img.get("RepoTags") or []
        repo, _, tag = (tags[0].rpartition(":") if tags else ("<none>", "", "<none>"))
        rows.append([name_of(x), repo, tag, img["Id"].split(":", 1)[-1][:12], human_size(img.get("Size") or 0)])
    if not ns.quiet:
        table([["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"], *rows])
    return 0


def port(c: Compose, prog: str, args: list[str]) -> int:
    p = Parser(prog, "[OPTIONS] SERVICE PRIVATE_PORT")
    p.add_argument("--index", default="1")
    p.add_argument("--protocol", default="tcp", choices=["tcp", "udp", "sctp"])
    p.add_argument("service")
    p.add_argument("private_port")
    ns = p.parse_args(args)
    x = c.replica(ns.service, ns.index)
    if x is None:
        raise ComposeError(f"service {ns.service!r} has no running container #{ns.index}")
    ports = (c.cli.json("GET", f"/containers/{x['Id']}/json")["NetworkSettings"].get("Ports") or {})
    bound = ports.get(f"{ns.private_port}/{ns.protocol}")
    if not bound:
        raise ComposeError(f"no port {ns.private_port}/{ns.protocol} for container {name_of(x)}")
    print(f"{bound[0]['HostIp'] or '0.0.0.0'}:{bound[0]['HostPort']}")
    return 0


def ls(cli: Any, prog: str, args: list[str]) -> int:
    """`compose ls [-a] [-q]`: the projects that have containers on this engine."""
    p = Parser(prog, "[OPTIONS]")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    ns = p.parse_args(args)
    rows = cli.json("GET", "/containers/json", {"all": 1, "filters": json.dumps({"label": ["com.docker.compose.project"]})})
    projects: dict[str, dict[str, Any]] = {}
    for x in rows:
        labels = x["Labels"]
        pr = projects.setdefault(labels["com.docker.compose.project"], {"states": {}, "files": set()})
        pr["states"][x["State"]] = pr["states"].get(x["State"], 0) + 1
        if labels.get("com.docker.compose.project.config_files"):
            pr["files"].add(labels["com.docker.compose.project.config_files"])
    shown = {k: v for k, v in sorted(projects.items()) if ns.all or "running" in v["states"]}
    if ns.quiet:
        for k in shown:
            print(k)
        return 0
    from ..output import table
    table([["NAME", "STATUS", "CONFIG FILES"],
           *[[k, ", ".join(f"{st}({n})" for st, n in sorted(v["states"].items())), ",".join(sorted(v["files"]))]
             for k, v in shown.items()]])
    return 0
