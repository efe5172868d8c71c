"""`compose up` (detached or attached), `down`, and start/stop/restart/kill/rm: containers
converged in dependency order, stopped dependents first, one dependency level at a time."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from ...client.api import APIError
from ..flags import Parser
from .loader import ComposeError
from .project import Compose, depends, name_of


def _converge_parser(prog: str) -> Parser:
    """The flags `up` and `create` share."""
    p = Parser(prog, "[OPTIONS] [SERVICE...]")
    for flag in ("--build", "--no-build", "--force-recreate", "--no-recreate"):
        p.add_argument(flag, action="store_true")
    p.add_argument("--pull", default="", choices=["", "always", "missing", "never"])
    p.add_argument("--scale", action="append", default=[])
    p.add_argument("services", nargs="*")
    return p


def up(c: Compose, prog: str, args: list[str]) -> int:
    p = _converge_parser(prog)
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("--no-deps", action="store_true")
    p.add_argument("--remove-orphans", action="store_true")
    p.add_argument("--wait", action="store_true")
    p.add_argument("--abort-on-container-exit", action="store_true")
    p.add_argument("--exit-code-from", default="")
    p.add_argument("--no-color", action="store_true")
    p.add_argument("--no-log-prefix", action="store_true")
    p.add_argument("-t", "--timeout", default="")
    ns = p.parse_args(args)
    if ns.exit_code_from and ns.exit_code_from not in c.p.services:
        raise ComposeError(f"no such service: {ns.exit_code_from}")
    attached = not ns.detach and not ns.wait
    if not attached and (ns.abort_on_container_exit or ns.exit_code_from):
        raise ComposeError("--abort-on-container-exit and --exit-code-from cannot be combined with --detach/--wait")
    scale = _scales(c, ns.scale)
    order = c.order(ns.services or None, deps=not ns.no_deps)
    if ns.remove_orphans:
        c.remove_orphans()
    since = int(time.time())
    started = converge(c, order, scale=scale, build=ns.build, no_build=ns.no_build, pull=ns.pull,
                       force=ns.force_recreate, no_recreate=ns.no_recreate, wait=ns.wait)
    if not attached:
        return 0
    from .info import follow
    ctrs = [x for svc in order for x in c.containers(svc)]
    print("Attaching to " + ", ".join(name_of(x) for x in ctrs), file=sys.stderr)
    abort = ns.abort_on_container_exit or bool(ns.exit_code_from)
    code = 0
    try:
        for ended in follow(c, [(x, None if x["Id"] in started else since) for x in ctrs],
                            color=sys.stdout.isatty() and not ns.no_color, prefix=not ns.no_log_prefix):
            st = c.cli.json("GET", f"/containers/{ended['Id']}/json")["State"]
            svc = ended["Labels"].get("com.docker.compose.service", "")
            print(f"{name_of(ended)} exited with code {st['ExitCode']}", file=sys.stderr)
            if ns.exit_code_from == svc or (abort and not ns.exit_code_from):
                code = int(st["ExitCode"])
            if abort:
                print("Aborting on container exit...", file=sys.stderr)
                break
    except KeyboardInterrupt:
        print("Gracefully stopping... (press Ctrl+C again to force)", file=sys.stderr)
        code = 130
    if abort or code == 130:
        _by_levels(c, ctrs, _stopper(c, ns.timeout), dependents_first=True)
    return code


def create(c: Compose, prog: str, args: list[str]) -> int:
    """`compose create`: what `up` makes, nothing started."""
    ns = _converge_parser(prog).parse_args(args)
    converge(c, c.order(ns.services or None, deps=True), scale=_scales(c, ns.scale), build=ns.build,
             no_build=ns.no_build, pull=ns.pull, force=ns.force_recreate, no_recreate=ns.no_recreate, start=False)
    return 0


def _scales(c: Compose, items: list[str]) -> dict[str, int]:
    scale: dict[str, int] = {}
    for s in items:
        k, _, v = s.partition("=")
        if k not in c.p.services or not v.isdigit():
            raise ComposeError(f"invalid --scale {s!r}: want SERVICE=NUM for a service of the project")
        scale[k] = int(v)
    return scale


def converge(c: Compose, order: list[str], *, scale: dict[str, int] | None = None, build: bool = False,
             no_build: bool = False, pull: str = "", force: bool = False, no_recreate: bool = False,
             wait: bool = False, start: bool = True) -> set[str]:
    """Networks, volumes, images, then each service's containers created (or recreated when its
    configuration changed) and started after its dependencies' conditions hold. The ids of the
    containers started. On failure what this call made is removed and the error names the service."""
    scale = scale or {}
    made_nets = c.ensure_networks()
    made_vols = c.ensure_volumes()
    made: list[str] = []
    started: set[str] = set()

    def container(svc: str, n: int, cur: dict[str, Any] | None, h: str, image_id: str) -> None:
        name = c.container_name(svc, n)
        # the same configuration and the same image (a rebuilt or newly pulled one recreates it)
        if cur is not None and not force and (no_recreate or (
                cur["Labels"].get("com.docker.compose.config-hash") == h and cur.get("ImageID") == image_id)):
            if cur["State"] != "running" and start:
                c.cli.call("POST", f"/containers/{cur['Id']}/start").close()
                started.add(cur["Id"])
                print(f"Container {name}  Started", file=sys.stderr)
            else:
                print(f"Container {name}  {'Running' if cur['State'] == 'running' else 'Created'}", file=sys.stderr)
            return
        if cur is not None:
            print(f"Container {name}  Recreate", file=sys.stderr)
            c.remove(cur["Id"])
        try:
            cid = c.create(svc, n)
            made.append(cid)
            if start:
                c.cli.call("POST", f"/containers/{cid}/start").close()
        except APIError as e:   # the error names the service
            raise ComposeError(f"service {svc!r}: container {name}: {e.message}") from None
        if start:
            started.add(cid)
        print(f"Container {name}  {'Started' if start else 'Created'}", file=sys.stderr)

    def service(svc: str) -> None:
        spec = c.p.services[svc]
        for dep, cond in depends(spec).items():
            if dep in order and start:
                c.wait_condition(svc, dep, cond)
        want = scale.get(svc, int((spec.get("deploy") or {}).get("replicas") or spec.get("scale") or 1))
        have = c.containers(svc)
        h = c.config_hash(svc)
        image_id = c.cli.json("GET", f"/images/{c.image_of(svc)}/json")["Id"] if have else ""
        for ctr in have[want:]:
            c.remove(ctr["Id"])
        by_n = {x["Labels"].get("com.docker.compose.container-number"): x for x in have}
        _all(container, [(svc, n, by_n.get(str(n)), h, image_id) for n in range(1, want + 1)])

    try:
        for svc in order:
            if not no_build or not c.p.services[svc].get("build"):
                c.ensure_image(svc, build, pull)
        # one dependency level at a time, its services and their replicas at once (as Docker Compose)
        for level in _levels(c, order):
            _all(service, [(svc,) for svc in level])
        if wait:
            for svc in order:
                cond = "service_healthy" if c.p.services[svc].get("healthcheck") else "service_started"
                c.wait_condition(svc, svc, cond)
    except (ComposeError, APIError):
        # up leaves no half-started project behind: its containers, then networks and volumes
        for cid in made:
            c.remove(cid, volumes=True)
        for net in made_nets:
            _delete(c, f"/networks/{net}")
        for vol in made_vols:
            _delete(c, f"/volumes/{vol}")
        raise
    return started


def _level_of(c: Compose, order: list[str]) -> dict[str, int]:
    """Each service of `order` (dependencies first) → its dependency level: 1 + its deepest
    dependency's in `order`."""
    level: dict[str, int] = {}
    for svc in order:
        level[svc] = 1 + max((level.get(d, 0) for d in depends(c.p.services[svc]) if d in order), default=0)
    return level


def _levels(c: Compose, order: list[str]) -> list[list[str]]:
    """`order` in dependency levels: each level needs only the ones before it."""
    level = _level_of(c, order)
    return [[s for s in order if level[s] == lv] for lv in sorted(set(level.values()))]


def _all(fn: Any, calls: list[tuple[Any, ...]]) -> None:
    """`fn(*args)` for each, at once; every call ends before the first error is raised."""
    if len(calls) == 1:
        fn(*calls[0])
        return
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(min(16, max(1, len(calls)))) as pool:
        futures = [pool.submit(fn, *a) for a in calls]
    for f in futures:
        f.result()


def _delete(c: Compose, path: str) -> None:
    try:
        c.cli.call("DELETE", path).close()
    except APIError as e:
        if e.status != 404:
            raise


def _stopper(c: Compose, timeout: str) -> Any:
    def stop(ctr: dict[str, Any]) -> None:
        c.cli.call("POST", f"/containers/{ctr['Id']}/stop", {"t": timeout or None}).close()
        print(f"Container {name_of(ctr)}  Stopped", file=sys.stderr)
    return stop


def down(c: Compose, prog: str, args: list[str]) -> int:
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
        print(f"Container {name_of(ctr)}  Removed", file=sys.stderr)
    _by_levels(c, ctrs, down_one, dependents_first=True)
    nets = c.cli.json("GET", "/networks", {"filters": json.dumps({"label": [f"com.docker.compose.project={c.p.name}"]})})
    for n in nets:
        c.cli.call("DELETE", f"/networks/{n['Id']}").close()
        print(f"Network {n['Name']}  Removed", file=sys.stderr)
    if ns.volumes:
        for key, spec in (c.p.config.get("volumes") or {}).items():
            if (spec or {}).get("external"):
                continue
            _delete(c, f"/volumes/{c.volume_name(key)}")
            print(f"Volume {c.volume_name(key)}  Removed", file=sys.stderr)
    if ns.rmi:
        for svc, spec in c.p.services.items():
            if ns.rmi == "all" or not spec.get("image"):
                _delete(c, f"/images/{c.image_of(svc)}")
    return 0


def each(action: str) -> Any:
    """start, stop, restart, kill or rm on the services' containers."""
    def run(c: Compose, prog: str, args: list[str]) -> int:
        p = Parser(prog, "[SERVICE...]")
        if action in ("stop", "restart"):
            p.add_argument("-t", "--timeout", default="")
        if action == "kill":
            p.add_argument("-s", "--signal", default="SIGKILL")
        if action == "rm":
            p.add_argument("-f", "--force", action="store_true")
            p.add_argument("-s", "--stop", action="store_true")
            p.add_argument("-v", "--volumes", action="store_true")
        p.add_argument("services", nargs="*")
        ns = p.parse_args(args)

        def one(ctr: dict[str, Any]) -> None:
            path = f"/containers/{ctr['Id']}"
            if action == "rm":
                if ctr["State"] == "running":
                    c.cli.call("POST", f"{path}/stop").close()
                c.remove(ctr["Id"], volumes=ns.volumes)
                print(f"Container {name_of(ctr)}  Removed", file=sys.stderr)
                return
            q = {"t": ns.timeout or None} if action in ("stop", "restart") else \
                {"signal": ns.signal} if action == "kill" else {}
            try:
                c.cli.call("POST", f"{path}/{action}", q).close()
            except APIError as e:
                if not (action == "kill" and e.status == 409):
                    raise
            print(f"Container {name_of(ctr)}  {action.capitalize()}ed".replace("eed", "ed"),
                  file=sys.stderr)
        ctrs = c.containers_of(ns.services)
        if action == "rm":
            ctrs = [x for x in ctrs if x["State"] != "running" or ns.stop]
            if not ctrs:
                print("No stopped containers", file=sys.stderr)
                return 0
            if not ns.force and sys.stdin.isatty():
                names = ", ".join(name_of(x) for x in ctrs)
                if input(f"Going to remove {names}\n? Are you sure? [yN] ").strip().lower() not in ("y", "yes"):
                    return 0
        _by_levels(c, ctrs, one, dependents_first=action in ("stop", "kill", "rm"))
        return 0
    return run


def _by_levels(c: Compose, ctrs: list[dict[str, Any]], fn: Any, dependents_first: bool) -> None:
    """`fn` on each container, those of one dependency level at once (a stop that waits out its
    timeout holds up nothing else); dependents before what they depend on when stopping."""
    level = _level_of(c, c.order())
    groups: dict[int, list[dict[str, Any]]] = {}
    for x in ctrs:
        groups.setdefault(level.get(x["Labels"].get("com.docker.compose.service", ""), 0), []).append(x)
    for lv in sorted(groups, reverse=dependents_first):
        _all(fn, [(x,) for x in groups[lv]])
