"""`dockyard compose`: Compose-specification projects (compose.yaml / docker-compose.yml) on the
Engine API — up, down, ps, config, build, pull, start, stop, restart, kill, rm, logs, exec."""

from __future__ import annotations

import json
import sys
from typing import Any

from ...client.api import APIError, Client
from ..flags import Parser

USAGE = """Usage:  dockyard compose [OPTIONS] COMMAND

Options:
  -f, --file FILE        Compose configuration files (several are merged)
  -p, --project-name     Project name
      --project-directory
      --env-file FILE    Environment files (instead of .env)
      --profile NAME     Profiles to enable
      --compatibility    Container and image names as docker-compose 1.x (project_service_1)

Commands: build config down exec kill logs ps pull restart rm start stop up
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


def _up(c: Any, prog: str, args: list[str]) -> int:
    from ..compose.loader import ComposeError
    from ..compose.project import depends
    p = Parser(prog, "[OPTIONS] [SERVICE...]")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("--build", action="store_true")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--force-recreate", action="store_true")
    p.add_argument("--no-recreate", action="store_true")
    p.add_argument("--no-deps", action="store_true")
    p.add_argument("--remove-orphans", action="store_true")
    p.add_argument("--wait", action="store_true")
    p.add_argument("--pull", default="missing", choices=["always", "missing", "never"])
    p.add_argument("--scale", action="append", default=[])
    p.add_argument("services", nargs="*")
    ns = p.parse_args(args)
    if not ns.detach and not ns.wait:
        print("dockyard compose up: attached mode is not implemented; use -d (and `logs -f`)", file=sys.stderr)
        return 1
    scale = {}
    for s in ns.scale:
        k, _, v = s.partition("=")
        scale[k] = int(v)
    order = c.order(ns.services or None, deps=not ns.no_deps)
    c.ensure_networks()
    c.ensure_volumes()
    for svc in order:
        if not ns.no_build or not c.p.services[svc].get("build"):
            c.ensure_image(svc, ns.build, ns.pull)
    if ns.remove_orphans:
        for ctr in c.containers():
            if ctr["Labels"].get("com.docker.compose.service") not in c.p.services:
                c.remove(ctr["Id"])
    made: list[str] = []
    try:
        for svc in order:
            spec = c.p.services[svc]
            for dep, cond in depends(spec).items():
                if dep in order:
                    c.wait_condition(svc, dep, cond)
            want = scale.get(svc, int((spec.get("deploy") or {}).get("replicas") or spec.get("scale") or 1))
            have = c.containers(svc)
            h = c.config_hash(svc)
            for ctr in have[want:]:
                c.remove(ctr["Id"])
            for n in range(1, want + 1):
                cur = next((x for x in have if x["Labels"].get("com.docker.compose.container-number") == str(n)), None)
                name = c.container_name(svc, n)
                if cur is not None and not ns.force_recreate and (ns.no_recreate or
                                                                  cur["Labels"].get("com.docker.compose.config-hash") == h):
                    if cur["State"] != "running":
                        c.cli.call("POST", f"/containers/{cur['Id']}/start").close()
                        print(f"Container {name}  Started", file=sys.stderr)
                    else:
                        print(f"Container {name}  Running", file=sys.stderr)
                    continue
                if cur is not None:
                    print(f"Container {name}  Recreate", file=sys.stderr)
                    c.remove(cur["Id"])
                try:
                    cid = c.create(svc, n)
                    made.append(cid)
                    c.cli.call("POST", f"/containers/{cid}/start").close()
                except APIError as e:   # the error names the service
                    raise ComposeError(f"service {svc!r}: container {name}: {e.message}") from None
                print(f"Container {name}  Started", file=sys.stderr)
        if ns.wait:
            for svc in order:
                cond = "service_healthy" if c.p.services[svc].get("healthcheck") else "service_started"
                c.wait_condition(svc, svc, cond)
    except (ComposeError, APIError):
        for cid in made:   # up leaves no half-started project behind
            c.remove(cid, volumes=True)
        raise
    return 0


def _down(c: Any, prog: str, args: list[str]) -> int:
    p = Parser(prog, "[OPTIONS]")
    p.add_argument("-v", "--volumes", action="store_true")
    p.add_argument("--remove-orphans", action="store_true")
    p.add_argument("--rmi", default="", choices=["", "all", "local"])
    p.add_argument("-t", "--timeout", default="10")
    ns = p.parse_args(args)
    ctrs = [x for x in c.containers() + c.containers(oneoff=True)
            if x["Labels"].get("com.docker.compose.service") in c.p.services or ns.remove_orphans]

    def down_one(ctr: dict[str, Any]) -> None:
        if ctr["State"] == "running":
            c.cli.call("POST", f"/containers/{ctr['Id']}/stop", {"t": ns.timeout}).close()
        c.remove(ctr["Id"], volumes=True)
        print(f"Container {ctr['Names'][0].lstrip('/')}  Removed", file=sys.stderr)
    _by_levels(c, ctrs, down_one, dependents_first=True)
    nets = c.cli.json("GET", "/networks", {"filters": json.dumps({"label": [f"com.docker.compose.project={c.p.name}"]})})
    for n in nets:
        c.cli.call("DELETE", f"/networks/{n['Id']}").close()
        print(f"Network {n['Name']}  Removed", file=sys.stderr)
    if ns.volumes:
        for key, spec in (c.p.config.get("volumes") or {}).items():
            if (spec or {}).get("external"):
                continue
            try:
                c.cli.call("DELETE", f"/volumes/{c.volume_name(key)}").close()
                print(f"Volume {c.volume_name(key)}  Removed", file=sys.stderr)
            except APIError as e:
                if e.status != 404:
                    raise
    if ns.rmi:
        for svc, spec in c.p.services.items():
            if ns.rmi == "all" or not spec.get("image"):
                try:
                    c.cli.call("DELETE", f"/images/{c.image_of(svc)}").close()
                except APIError as e:
                    if e.status != 404:
                        raise
    return 0


def _ps(c: Any, prog: str, args: list[str]) -> int:
    p = Parser(prog, "[OPTIONS] [SERVICE...]")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--services", action="store_true", dest="list_services")
    p.add_argument("services", nargs="*")
    ns = p.parse_args(args)
    rows = [x for x in c.containers(all_=ns.all) if not ns.services or
            x["Labels"].get("com.docker.compose.service") in ns.services]
    if ns.quiet:
        for x in rows:
            print(x["Id"])
        return 0
    if ns.list_services:
        for s in sorted({x["Labels"]["com.docker.compose.service"] for x in rows}):
            print(s)
        return 0
    from ..output import table
    out = []
    for x in rows:
        ports = ", ".join(f"{pp.get('IP', '')}:{pp['PublicPort']}->{pp['PrivatePort']}/{pp['Type']}" if pp.get("PublicPort")
                          else f"{pp['PrivatePort']}/{pp['Type']}" for pp in x.get("Ports") or [])
        out.append([x["Names"][0].lstrip("/"), x["Image"], json.dumps(x["Command"]),
                    x["Labels"].get("com.docker.compose.service", ""), x["Status"], ports])
    table([["NAME", "IMAGE", "COMMAND", "SERVICE", "STATUS", "PORTS"], *out])
    return 0


def _config(c: Any, prog: str, args: list[str]) -> int:
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
    sys.stdout.write(yaml.safe_dump(c.p.config, sort_keys=True, default_flow_style=False))
    return 0


def _each(action: str) -> Any:
    def run(c: Any, prog: str, args: list[str]) -> int:
        p = Parser(prog, "[SERVICE...]")
        p.add_argument("-t", "--timeout", default="")
        p.add_argument("-s", "--signal", default="SIGKILL")
        p.add_argument("-f", "--force", action="store_true")
        p.add_argument("services", nargs="*")
        ns = p.parse_args(args)
        order = c.order(ns.services or None, deps=False)

        def one(ctr: dict[str, Any]) -> None:
            path = f"/containers/{ctr['Id']}"
            if action == "rm":
                if ctr["State"] != "running":
                    c.remove(ctr["Id"])
                return
            q = {"t": ns.timeout or None} if action in ("stop", "restart") else \
                {"signal": ns.signal} if action == "kill" else {}
            try:
                c.cli.call("POST", f"{path}/{action}", q).close()
            except APIError as e:
                if not (action == "kill" and e.status == 409):
                    raise
            print(f"Container {ctr['Names'][0].lstrip('/')}  {action.capitalize()}ed".replace("eed", "ed"),
                  file=sys.stderr)
        ctrs = [x for svc in order for x in c.containers(svc)]
        _by_levels(c, ctrs, one, dependents_first=action in ("stop", "kill", "rm"))
        return 0
    return run


def _by_levels(c: Any, ctrs: list[dict[str, Any]], fn: Any, dependents_first: bool) -> None:
    """`fn` on each container, those of one dependency level at once (a stop that waits out its
    timeout holds up nothing else); dependents before what they depend on when stopping."""
    from concurrent.futures import ThreadPoolExecutor

    from ..compose.project import depends
    level: dict[str, int] = {}
    for svc in c.order():
        level[svc] = 1 + max((level.get(d, 0) for d in depends(c.p.services[svc])), default=0)
    groups: dict[int, list[dict[str, Any]]] = {}
    for x in ctrs:
        groups.setdefault(level.get(x["Labels"].get("com.docker.compose.service", ""), 0), []).append(x)
    for lv in sorted(groups, reverse=dependents_first):
        with ThreadPoolExecutor(min(16, len(groups[lv]))) as pool:
            for f in [pool.submit(fn, x) for x in groups[lv]]:
                f.result()


def _build(c: Any, prog: str, args: list[str]) -> int:
    p = Parser(prog, "[SERVICE...]")
    p.add_argument("services", nargs="*")
    ns = p.parse_args(args)
    for svc in ns.services or list(c.p.services):
        if c.p.services[svc].get("build"):
            c.build(svc)
    return 0


def _pull(c: Any, prog: str, args: list[str]) -> int:
    p = Parser(prog, "[SERVICE...]")
    p.add_argument("--ignore-pull-failures", action="store_true")
    p.add_argument("services", nargs="*")
    ns = p.parse_args(args)
    from ..compose.loader import ComposeError
    for svc in ns.services or list(c.p.services):
        if c.p.services[svc].get("image"):
            try:
                c.pull(svc)
            except (ComposeError, APIError) as e:
                if not ns.ignore_pull_failures:
                    raise
                print(str(e), file=sys.stderr)
    return 0


def _logs(c: Any, prog: str, args: list[str]) -> int:
    p = Parser(prog, "[OPTIONS] [SERVICE...]")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("--tail", default="all")
    p.add_argument("--no-color", action="store_true")
    p.add_argument("services", nargs="*")
    ns = p.parse_args(args)
    import threading

    from ...client.api import demux
    ctrs = [x for svc in c.order(ns.services or None, deps=False) for x in c.containers(svc)]
    width = max((len(x["Names"][0]) for x in ctrs), default=0)
    color = sys.stdout.isatty() and not ns.no_color
    lock = threading.Lock()

    def one(i: int, x: dict[str, Any]) -> None:
        name = x["Names"][0].lstrip("/")
        prefix = f"{name:<{width}} | "
        if color:
            prefix = f"\x1b[{31 + i % 6}m{prefix}\x1b[0m"
        resp = c.cli.call("GET", f"/containers/{x['Id']}/logs", {"stdout": 1, "stderr": 1, "tail": ns.tail,
                                                                  "follow": 1 if ns.follow else None,
                                                                  "timestamps": 1 if ns.timestamps else None})
        buf = b""
        for _, data in demux(resp):
            buf += data
            *lines, buf = buf.split(b"\n")
            with lock:
                for ln in lines:
                    sys.stdout.write(prefix + ln.decode(errors="replace") + "\n")
                sys.stdout.flush()
        if buf:
            with lock:
                sys.stdout.write(prefix + buf.decode(errors="replace") + "\n")
    ts = [threading.Thread(target=one, args=(i, x), daemon=True) for i, x in enumerate(ctrs)]
    for t in ts:
        t.start()
    try:
        for t in ts:
            t.join()
    except KeyboardInterrupt:
        return 130
    return 0


def _exec(c: Any, prog: str, args: list[str]) -> int:
    """`exec [OPTIONS] SERVICE CMD...`: the docker CLI's exec on the service's container."""
    opts: list[str] = []
    i = 0
    index = 1
    tty = sys.stdin.isatty()
    while i < len(args) and args[i].startswith("-"):
        a = args[i]
        if a in ("-T", "--no-TTY"):
            tty = False
        elif a.startswith("--index"):
            index = int(a.split("=", 1)[1] if "=" in a else args[i + 1])
            i += 0 if "=" in a else 1
        elif a in ("-d", "--detach", "--privileged"):
            opts.append(a)
        elif a in ("-e", "--env", "-u", "--user", "-w", "--workdir"):
            opts += [a, args[i + 1]]
            i += 1
        else:
            opts.append(a)
        i += 1
    if i >= len(args):
        print("exec requires a service and a command", file=sys.stderr)
        return 1
    svc, cmd = args[i], args[i + 1:]
    ctrs = [x for x in c.containers(svc) if x["Labels"].get("com.docker.compose.container-number") == str(index)]
    if not ctrs:
        print(f"service {svc!r} is not running", file=sys.stderr)
        return 1
    from .exec import exec_
    return exec_(c.cli, "exec", [*(["-t"] if tty else []), "-i", *opts, ctrs[0]["Id"], *cmd])


_COMMANDS = {"up": _up, "down": _down, "ps": _ps, "config": _config, "build": _build, "pull": _pull,
             "start": _each("start"), "stop": _each("stop"), "restart": _each("restart"), "kill": _each("kill"),
             "rm": _each("rm"), "logs": _logs, "exec": _exec}
