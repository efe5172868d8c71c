"""A Compose project through the Engine API: networks, volumes, images (built or pulled),
containers created and started in dependency order with `depends_on` conditions, recreated only
when their configuration changed; down, ps. Names and labels as Docker Compose's."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import time
from typing import Any

from ...client.api import APIError, Client
from .loader import ComposeError, Project, read_env_file
from .normal import host_path, long_ports, long_volume

VERSION = "2.0.0-dockyard"
P = "com.docker.compose."


class Compose:
    def __init__(self, cli: Client, project: Project, compatibility: bool = False) -> None:
        self.cli, self.p, self.sep = cli, project, "_" if compatibility else "-"

    # --- names ---------------------------------------------------------------------------------
    def container_name(self, service: str, n: int) -> str:
        svc = self.p.services[service]
        return str(svc["container_name"]) if svc.get("container_name") else f"{self.p.name}{self.sep}{service}{self.sep}{n}"

    def network_name(self, key: str) -> str:
        spec = (self.p.config.get("networks") or {}).get(key) or {}
        if spec.get("name"):
            return str(spec["name"])
        return f"{self.p.name}_{key}"

    def volume_name(self, key: str) -> str:
        spec = (self.p.config.get("volumes") or {}).get(key) or {}
        if spec.get("name"):
            return str(spec["name"])
        return f"{self.p.name}_{key}"

    def image_of(self, service: str) -> str:
        svc = self.p.services[service]
        return str(svc.get("image") or f"{self.p.name}{self.sep}{service}")

    # --- order ---------------------------------------------------------------------------------
    def order(self, only: list[str] | None = None, deps: bool = True) -> list[str]:
        """Services in dependency order; a cycle is an error that names it."""
        services = self.p.services
        for n in only or []:
            if n not in services:
                raise ComposeError(f"no such service: {n}")
        out: list[str] = []
        state: dict[str, int] = {}

        def visit(n: str, path: tuple[str, ...]) -> None:
            if state.get(n) == 2:
                return
            if state.get(n) == 1:
                raise ComposeError(f"dependency cycle detected: {' -> '.join(path + (n,))}")
            state[n] = 1
            for d in _depends(services[n]):
                if d not in services:
                    raise ComposeError(f"service {n!r} depends on undefined service {d!r}")
                if deps or not only:
                    visit(d, path + (n,))
            state[n] = 2
            out.append(n)
        for n in (only or list(services)):
            visit(n, ())
        if only and not deps:
            return [n for n in out if n in only]
        return out

    # --- resources -----------------------------------------------------------------------------
    def networks_of(self, service: str) -> dict[str, dict[str, Any]]:
        svc = self.p.services[service]
        nets = svc.get("networks")
        if svc.get("network_mode"):
            return {}
        if not nets:
            return {"default": {}}
        if isinstance(nets, list):
            return {n: {} for n in nets}
        return {n: (v or {}) for n, v in nets.items()}

    def ensure_networks(self) -> list[str]:
        """Create the project's networks that are not there; the names of those created."""
        made: list[str] = []
        wanted = {k for s in self.p.services for k in self.networks_of(s)}
        declared = self.p.config.get("networks") or {}
        for key in sorted(wanted | set(declared)):
            if key not in wanted and key != "default":
                continue
            spec = declared.get(key) or {}
            name = self.network_name(key)
            if self._exists(f"/networks/{name}", spec, f"network {name} declared as external, but could not be found"):
                continue
            body: dict[str, Any] = {"Name": name, "Driver": spec.get("driver") or "bridge", "CheckDuplicate": True,
                                    "Labels": {**(spec.get("labels") or {}), P + "network": key,
                                               P + "project": self.p.name, P + "version": VERSION},
                                    "Internal": bool(spec.get("internal")), "Attachable": bool(spec.get("attachable")),
                                    "Options": spec.get("driver_opts") or {}}
            ipam = spec.get("ipam")
            if ipam:
                body["IPAM"] = {"Driver": ipam.get("driver") or "default",
                                "Config": [{"Subnet": c.get("subnet"), "Gateway": c.get("gateway"),
                                            "IPRange": c.get("ip_range")} for c in ipam.get("config") or []]}
            print(f"Network {name}  Creating", file=sys.stderr)
            self.cli.json("POST", "/networks/create", body=body)
            made.append(name)
        return made

    def ensure_volumes(self) -> list[str]:
        """Create the project's volumes that are not there; the names of those created."""
        made: list[str] = []
        for key, spec in (self.p.config.get("volumes") or {}).items():
            spec = spec or {}
            name = self.volume_name(key)
            if self._exists(f"/volumes/{name}", spec, f"external volume {name!r} not found"):
                continue
            print(f"Volume {name}  Creating", file=sys.stderr)
            self.cli.json("POST", "/volumes/create", body={
                "Name": name, "Driver": spec.get("driver") or "local", "DriverOpts": spec.get("driver_opts") or {},
                "Labels": {**(spec.get("labels") or {}), P + "project": self.p.name, P + "volume": key,
                           P + "version": VERSION}})
            made.append(name)
        return made

    def _exists(self, path: str, spec: dict[str, Any], missing_external: str) -> bool:
        """Whether a network or volume is there; an external one must be."""
        if spec.get("external"):
            self._need(path, missing_external)
            return True
        try:
            self.cli.json("GET", path)
            return True
        except APIError as e:
            if e.status != 404:
                raise
        return False

    def _need(self, path: str, msg: str) -> None:
        try:
            self.cli.json("GET", path)
        except APIError as e:
            if e.status == 404:
                raise ComposeError(msg) from None
            raise

    def ensure_image(self, service: str, build: bool, pull: str = "") -> None:
        """Build or pull the service's image as `--build`, the `--pull` flag (else the service's
        `pull_policy`) and whether it is here say."""
        svc = self.p.services[service]
        policy = pull or svc.get("pull_policy") or "missing"
        policy = "missing" if policy == "if_not_present" else policy
        if policy not in ("always", "missing", "never", "build"):
            raise ComposeError(f"service {service!r}: pull_policy {policy!r} is not always, missing, never or build")
        image = self.image_of(service)
        have = True
        try:
            self.cli.json("GET", f"/images/{image}/json")
        except APIError as e:
            if e.status != 404:
                raise
            have = False
        if svc.get("build") and (build or not have or policy == "build"):
            self.build(service)
            return
        if policy == "build":
            raise ComposeError(f"service {service!r}: pull_policy build without a build section")
        if policy == "never":
            if not have:
                raise ComposeError(f"service {service!r}: image {image} is not here and its pull_policy is never")
            return
        if not have or policy == "always":
            self.pull(service)

    def build(self, service: str) -> None:
        from ..commands.build import _context_tar, _show
        svc = self.p.services[service]
        b = svc["build"]
        if isinstance(b, str):
            b = {"context": b}
        ctx = os.path.join(self.p.workdir, b.get("context") or ".")
        dockerfile = b.get("dockerfile") or "Dockerfile"
        q: dict[str, Any] = {"t": [self.image_of(service)], "dockerfile": dockerfile, "rm": "1",
                             "target": b.get("target") or None,
                             "buildargs": json.dumps(_map(b.get("args"))) if b.get("args") else None,
                             "labels": json.dumps(_map(b.get("labels"))) if b.get("labels") else None,
                             "networkmode": b.get("network") or None}
        print(f"Building {service}", file=sys.stderr)
        resp = self.cli.call("POST", "/build", {k: v for k, v in q.items() if v is not None},
                             raw=_context_tar(ctx, dockerfile, None), headers={"Content-Type": "application/x-tar"})
        if _show(resp, True, "", "plain") != 0:
            raise ComposeError(f"service {service!r} failed to build")

    def pull(self, service: str) -> None:
        image = self.image_of(service)
        name = image if ":" in image.rsplit("/", 1)[-1] or "@" in image else f"{image}:latest"
        print(f"{service} Pulling", file=sys.stderr)
        try:
            resp = self.cli.call("POST", "/images/create", {"fromImage": name})
        except APIError as e:
            raise ComposeError(f"service {service!r}: pull {name}: {e.message}") from None
        err = ""
        for line in resp.lines():
            m = json.loads(line) if line.strip() else {}
            err = m.get("error") or err
        resp.close()
        if err:
            raise ComposeError(f"service {service!r}: pull {name}: {err}")

    # --- containers ----------------------------------------------------------------------------
    def containers(self, service: str | None = None, all_: bool = True, oneoff: bool = False) -> list[dict[str, Any]]:
        labels = [f"{P}project={self.p.name}", f"{P}oneoff={'True' if oneoff else 'False'}"]
        if service:
            labels.append(f"{P}service={service}")
        out = self.cli.json("GET", "/containers/json", {"all": 1 if all_ else None,
                                                         "filters": json.dumps({"label": labels})})
        return sorted(out, key=lambda c: int(c["Labels"].get(P + "container-number", "0")))

    def config_hash(self, service: str) -> str:
        svc = self.p.services[service]
        return hashlib.sha256(json.dumps(svc, sort_keys=True, default=str).encode()).hexdigest()

    def create_body(self, service: str, n: int) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """(the create body, the extra networks to connect before start)."""
        svc = dict(self.p.services[service])
        labels = {**_map(svc.get("labels")), P + "project": self.p.name, P + "service": service,
                  P + "container-number": str(n), P + "oneoff": "False", P + "version": VERSION,
                  P + "config-hash": self.config_hash(service), P + "project.working_dir": self.p.workdir,
                  P + "project.config_files": ",".join(self.p.files)}
        env = {}
        for ef in _list(svc.get("env_file")):
            env.update(read_env_file(os.path.join(self.p.workdir, ef)))
        env.update({k: ("" if v is None else str(v)) for k, v in _map(svc.get("environment"), keep_none=True).items()})
        hc: dict[str, Any] = {"RestartPolicy": _restart(svc.get("restart"), (svc.get("deploy") or {}).get("restart_policy")),
                              "Init": svc.get("init"), "Annotations": _map(svc.get("annotations")) or None,
                              "Privileged": bool(svc.get("privileged")), "ReadonlyRootfs": bool(svc.get("read_only")),
                              "CapAdd": svc.get("cap_add"), "CapDrop": svc.get("cap_drop"),
                              "ExtraHosts": _extra_hosts(svc.get("extra_hosts")), "Dns": _list(svc.get("dns")) or None,
                              "DnsSearch": _list(svc.get("dns_search")) or None, "Sysctls": _map(svc.get("sysctls")) or None,
                              "SecurityOpt": svc.get("security_opt"), "GroupAdd": svc.get("group_add"),
                              "Runtime": svc.get("runtime"), "IpcMode": self._joined(service, "ipc"),
                              "PidMode": self._joined(service, "pid"),
                              "UsernsMode": svc.get("userns_mode"), "OomScoreAdj": svc.get("oom_score_adj"),
                              "OomKillDisable": svc.get("oom_kill_disable"), "PidsLimit": svc.get("pids_limit")}
        limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        reservations = ((svc.get("deploy") or {}).get("resources") or {}).get("reservations") or {}
        mem = svc.get("mem_limit") or limits.get("memory")
        if mem:
            hc["Memory"] = _bytes(mem)
        if svc.get("memswap_limit"):
            hc["MemorySwap"] = _bytes(svc["memswap_limit"])
        if svc.get("mem_reservation") or reservations.get("memory"):
            hc["MemoryReservation"] = _bytes(svc.get("mem_reservation") or reservations["memory"])
        cpus = svc.get("cpus") or limits.get("cpus")
        if cpus:
            hc["NanoCpus"] = int(float(cpus) * 1e9)
        if svc.get("cpu_shares"):
            hc["CpuShares"] = int(svc["cpu_shares"])
        if svc.get("cpuset"):
            hc["CpusetCpus"] = str(svc["cpuset"])
        if limits.get("pids"):
            hc["PidsLimit"] = int(limits["pids"])
        if svc.get("shm_size"):
            hc["ShmSize"] = _bytes(svc["shm_size"])
        if svc.get("tmpfs"):
            hc["Tmpfs"] = {t.split(":", 1)[0]: (t.split(":", 1)[1] if ":" in t else "") for t in _list(svc["tmpfs"])}
        if svc.get("ulimits"):
            hc["Ulimits"] = [{"Name": k, "Soft": v["soft"], "Hard": v["hard"]} if isinstance(v, dict)
                             else {"Name": k, "Soft": int(v), "Hard": int(v)} for k, v in svc["ulimits"].items()]
        if svc.get("logging"):
            hc["LogConfig"] = {"Type": svc["logging"].get("driver") or "", "Config": svc["logging"].get("options") or {}}
        if svc.get("devices"):
            hc["Devices"] = [{"PathOnHost": d.split(":")[0], "PathInContainer": (d.split(":") + [d])[1],
                              "CgroupPermissions": (d.split(":") + ["", "rwm"])[2] or "rwm"} for d in svc["devices"]]
        mounts = self._volumes(service) + self._files(service, "secrets", "/run/secrets/") + \
            self._files(service, "configs", "/")
        if mounts:
            hc["Mounts"] = mounts
        exposed, bindings = _ports(svc.get("ports"), svc.get("expose"))
        if bindings:
            hc["PortBindings"] = bindings
        nets = self.networks_of(service)
        first, extra = None, {}
        if svc.get("network_mode"):
            hc["NetworkMode"] = self._joined(service, "network_mode")
        else:
            keys = sorted(nets, key=lambda k: -int((nets[k] or {}).get("priority") or 0))
            first = keys[0]
            hc["NetworkMode"] = self.network_name(first)
            extra = {self.network_name(k): self._endpoint(service, nets[k]) for k in keys[1:]}
        body: dict[str, Any] = {
            "Image": self.image_of(service), "Labels": labels, "Env": [f"{k}={v}" for k, v in env.items()],
            "Cmd": _cmd(svc.get("command")), "Entrypoint": _cmd(svc.get("entrypoint")),
            "User": str(svc["user"]) if svc.get("user") is not None else None, "WorkingDir": svc.get("working_dir"),
            "Hostname": svc.get("hostname"), "Domainname": svc.get("domainname"), "Tty": bool(svc.get("tty")),
            "OpenStdin": bool(svc.get("stdin_open")), "StopSignal": svc.get("stop_signal"),
            "ExposedPorts": exposed or None, "Healthcheck": _healthcheck(svc.get("healthcheck")),
            "MacAddress": svc.get("mac_address"), "HostConfig": {k: v for k, v in hc.items() if v is not None}}
        if svc.get("stop_grace_period"):
            body["StopTimeout"] = int(_seconds(svc["stop_grace_period"]))
        if first is not None:
            body["NetworkingConfig"] = {"EndpointsConfig": {self.network_name(first): self._endpoint(service, nets[first])}}
        if svc.get("platform"):
            body["_platform"] = svc["platform"]
        return {k: v for k, v in body.items() if v is not None}, extra

    def _joined(self, service: str, key: str) -> str | None:
        """network_mode, ipc or pid; `service:NAME` becomes `container:ID` of its first container."""
        mode = self.p.services[service].get(key)
        if mode is None or not str(mode).startswith("service:"):
            return None if mode is None else str(mode)
        other = self.containers(str(mode).split(":", 1)[1])
        if not other:
            raise ComposeError(f"service {service!r}: {key} {mode}: no container of that service")
        return "container:" + str(other[0]["Id"])

    def _endpoint(self, service: str, spec: dict[str, Any]) -> dict[str, Any]:
        ep: dict[str, Any] = {"Aliases": [service, *(spec.get("aliases") or [])]}
        if spec.get("ipv4_address"):
            ep["IPAMConfig"] = {"IPv4Address": spec["ipv4_address"]}
        return ep

    def _volumes(self, service: str) -> list[dict[str, Any]]:
        mounts: list[dict[str, Any]] = []
        declared = self.p.config.get("volumes") or {}
        for v in self.p.services[service].get("volumes") or []:
            v = long_volume(v, self.p.workdir)   # a bind's source made absolute
            typ = v.get("type") or "volume"
            src = str(v.get("source") or "")
            if typ == "bind":
                m: dict[str, Any] = {"Type": "bind", "Source": src, "Target": v["target"],
                                     "ReadOnly": bool(v.get("read_only"))}
                if (v.get("bind") or {}).get("create_host_path", True) is not False and not os.path.exists(src):
                    os.makedirs(src, exist_ok=True)
            elif typ == "volume":
                if src and src not in declared:
                    raise ComposeError(f"service {service!r} refers to undefined volume {src}: invalid compose project")
                m = {"Type": "volume", "Target": v["target"], "ReadOnly": bool(v.get("read_only"))}
                if src:
                    m["Source"] = self.volume_name(src)
                if (v.get("volume") or {}).get("nocopy"):
                    m["VolumeOptions"] = {"NoCopy": True}
            elif typ == "tmpfs":
                m = {"Type": "tmpfs", "Target": v["target"]}
                if (v.get("tmpfs") or {}).get("size"):
                    m["TmpfsOptions"] = {"SizeBytes": _bytes(v["tmpfs"]["size"])}
            else:
                raise ComposeError(f"service {service!r}: volume type {typ!r} is not supported")
            mounts.append(m)
        return mounts

    def _files(self, service: str, kind: str, base: str) -> list[dict[str, Any]]:
        """A service's secrets or configs: the file each names, bound read-only at
        /run/secrets/<name> (secrets) or /<name> (configs), or at its `target`, as Docker Compose
        does without swarm."""
        out = []
        declared = self.p.config.get(kind) or {}
        for ref in self.p.services[service].get(kind) or []:
            src, target = (ref, "") if isinstance(ref, str) else (str(ref["source"]), str(ref.get("target") or ""))
            spec = declared.get(src)
            if spec is None:
                raise ComposeError(f"service {service!r} refers to undefined {kind[:-1]} {src}: invalid compose project")
            if not spec.get("file"):
                raise ComposeError(f"{kind}.{src}: only file-based {kind} are supported (no swarm)")
            path = host_path(self.p.workdir, str(spec["file"]))
            if not os.path.exists(path):
                raise ComposeError(f"{kind}.{src}: file {path} does not exist")
            dest = target if target.startswith("/") else base + (target or src)
            out.append({"Type": "bind", "Source": path, "Target": dest, "ReadOnly": True})
        return out

    def create(self, service: str, n: int) -> str:
        body, extra = self.create_body(service, n)
        return self.create_container(self.container_name(service, n), body, extra)

    def create_container(self, name: str, body: dict[str, Any], extra: dict[str, dict[str, Any]]) -> str:
        """Create from a create_body's (body, extra networks): connected to them all, not started."""
        platform = body.pop("_platform", None)
        q = {"name": name, "platform": platform}
        got = self.cli.json("POST", "/containers/create", {k: v for k, v in q.items() if v}, body=body)
        for net, ep in extra.items():
            self.cli.json("POST", f"/networks/{net}/connect", body={"Container": got["Id"], "EndpointConfig": ep})
        return str(got["Id"])

    def remove_orphans(self) -> None:
        """The project's containers of services no longer in its files."""
        for ctr in self.containers():
            if ctr["Labels"].get(P + "service") not in self.p.services:
                self.remove(ctr["Id"])

    def replica(self, service: str, index: str) -> dict[str, Any] | None:
        """The running container number `index` of a service, if there is one."""
        return next((x for x in self.containers(service, all_=False)
                     if x["Labels"].get(P + "container-number") == index), None)

    def containers_of(self, services: list[str], all_: bool = True) -> list[dict[str, Any]]:
        """The services' containers (all of the project's when none are named), in dependency order."""
        return [x for svc in self.order(services or None, deps=False) for x in self.containers(svc, all_=all_)]

    def remove(self, cid: str, volumes: bool = False) -> None:
        try:
            self.cli.call("DELETE", f"/containers/{cid}", {"force": 1, "v": 1 if volumes else None}).close()
        except APIError as e:
            if e.status != 404:
                raise

    def wait_condition(self, service: str, dep: str, cond: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while True:
            cs = self.containers(dep)
            if not cs:
                raise ComposeError(f"service {service!r} depends on {dep!r}, which has no container")
            states = [self.cli.json("GET", f"/containers/{c['Id']}/json")["State"] for c in cs]
            if cond == "service_healthy":
                if any(not s.get("Health") for s in states):
                    raise ComposeError(f"dependency failed to start: container for service {dep!r} has no healthcheck "
                                       "configured")
                if all(s["Health"]["Status"] == "healthy" for s in states):
                    return
                if any(s["Health"]["Status"] == "unhealthy" for s in states):
                    raise ComposeError(f"dependency failed to start: container for service {dep!r} is unhealthy")
            elif cond == "service_completed_successfully":
                if all(not s["Running"] for s in states):
                    bad = [s["ExitCode"] for s in states if s["ExitCode"] != 0]
                    if bad:
                        raise ComposeError(f"service {dep!r} didn't complete successfully: exit {bad[0]}")
                    return
            elif all(s["Running"] or s["Status"] == "exited" for s in states):
                return
            if time.monotonic() > deadline:
                raise ComposeError(f"timed out waiting for service {dep!r} ({cond})")
            time.sleep(0.2)


def name_of(ctr: dict[str, Any]) -> str:
    """A container's name (of /containers/json) as compose prints it."""
    return str(ctr["Names"][0]).lstrip("/")


def _depends(svc: dict[str, Any]) -> dict[str, str]:
    """depends_on, and the services whose namespaces it joins (`network_mode`, `ipc`, `pid`
    as `service:NAME`), as Docker Compose counts them."""
    d = svc.get("depends_on") or {}
    out = {n: "service_started" for n in d} if isinstance(d, list) else \
        {n: (v or {}).get("condition", "service_started") for n, v in d.items()}
    for key in ("network_mode", "ipc", "pid"):
        mode = str(svc.get(key) or "")
        if mode.startswith("service:"):
            out.setdefault(mode.split(":", 1)[1], "service_started")
    return out


def depends(svc: dict[str, Any]) -> dict[str, str]:
    return _depends(svc)


def _map(v: Any, keep_none: bool = False) -> dict[str, Any]:
    if not v:
        return {}
    if isinstance(v, dict):
        return {str(k): (None if x is None and keep_none else ("" if x is None else str(x))) for k, x in v.items()}
    out: dict[str, Any] = {}
    for item in v:
        k, eq, x = str(item).partition("=")
        if eq:
            out[k] = x
        elif keep_none:
            out[k] = os.environ.get(k)
    return out


def _list(v: Any) -> list[str]:
    if v is None:
        return []
    return [str(x) for x in v] if isinstance(v, list) else [str(v)]


def _cmd(v: Any) -> list[str] | None:
    if v is None:
        return None
    return shlex.split(v) if isinstance(v, str) else [str(x) for x in v]


def _bytes(v: Any) -> int:
    if isinstance(v, int):
        return v
    from ...units import ram_in_bytes
    return ram_in_bytes(str(v))


def _seconds(v: Any) -> float:
    from ...units import go_duration
    return go_duration(str(v)) / 1e9 if not isinstance(v, (int, float)) else float(v)


def _restart(v: Any, deploy: dict[str, Any] | None = None) -> dict[str, Any]:
    """`restart:`, else `deploy.restart_policy` as Docker Compose maps it (none → no, any → always)."""
    if not v and deploy:
        cond = str(deploy.get("condition") or "any")
        name = {"none": "no", "any": "always", "on-failure": "on-failure"}.get(cond)
        if name is None:
            raise ComposeError(f"deploy.restart_policy.condition: {cond!r} is not none, on-failure or any")
        return {"Name": name, "MaximumRetryCount": int(deploy.get("max_attempts") or 0) if name == "on-failure" else 0}
    name, _, count = str(v or "").partition(":")   # none given: "" (what docker-compose sends; it means no)
    return {"Name": name, "MaximumRetryCount": int(count or 0)}


def _extra_hosts(v: Any) -> list[str] | None:
    if not v:
        return None
    if isinstance(v, dict):
        return [f"{k}:{x}" for k, x in v.items()]
    return [str(x).replace("=", ":", 1) if "=" in str(x) else str(x) for x in v]


def _healthcheck(h: Any) -> dict[str, Any] | None:
    if not h:
        return None
    if h.get("disable"):
        return {"Test": ["NONE"]}
    out: dict[str, Any] = {}
    t = h.get("test")
    if isinstance(t, str):
        out["Test"] = ["CMD-SHELL", t]
    elif t:
        out["Test"] = list(t)
    for k, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod"),
                   ("start_interval", "StartInterval")):
        if h.get(k):
            out[key] = int(_seconds(h[k]) * 1e9)
    if h.get("retries") is not None:
        out["Retries"] = int(h["retries"])
    return out


def _ports(ports: Any, expose: Any) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for e in expose or []:
        text = str(e)
        exposed[text if "/" in text else f"{text}/tcp"] = {}
    for port in ports or []:
        for p in long_ports(port):
            key = f"{p['target']}/{p.get('protocol') or 'tcp'}"
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": str(p.get("host_ip") or ""),
                                                 "HostPort": str(p.get("published") or "")})
    return exposed, bindings
