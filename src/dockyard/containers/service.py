"""Container lifecycle: create, start, stop, kill, wait, remove, rename, prune, logs, attach,
and reconciliation with the monitor after a daemon restart. Per-container locks only: one
wedged container never blocks the others."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import copy
import dataclasses
import json
import logging
import os
import shutil
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import (
    Conflict,
    EngineError,
    InvalidArgument,
    NotFound,
    NotImplemented_,
    NotModified,
    PermissionDenied,
    SystemError_,
    Unavailable,
)
from ..images.service import ImageService, now_iso
from ..monitor.client import Channel, MonitorClient
from ..network import netns
from ..network.bridge import Bridge, parse_ports
from ..network.networks import Network
from ..store import mount as mnt
from ..store import trash
from ..store.metadata import Metadata
from ..store.snapshots import Snapshotter
from ..units import unix_seconds
from . import create as create_mod
from . import etcfiles, fields, logconfig, names, networking, resources, restart, rootfs_init, spec, userns, users
from . import mounts as mountpoints
from .model import Container, ContainerConfig, ContainerState, Status
from .monitors import MonitorGroups
from .networking import ContainerNetworks
from .runtimes import Runtime
from .stdiokeep import StdioKeeper
from .terminal import check_size
from .volumeuse import ContainerVolumes

INIT_PATH = "/sbin/docker-init"
log = logging.getLogger("dockyard.containers")
FIREWALL_CHECK = 1.0   # seconds between checks that the bridge's rules are all there


@dataclass(frozen=True)
class Paths:
    """Where a container's files live."""

    data_root: Path
    exec_root: Path

    def data(self, cid: str) -> Path:
        """Persistent dir: logs, etc files, rootfs mount point."""
        return self.data_root / "containers" / cid

    def bundle(self, cid: str) -> Path:
        """Runtime bundle dir (config.json) and exit file."""
        return self.exec_root / "containers" / cid

    def rootfs(self, cid: str) -> Path:
        """Where the container's overlay is mounted."""
        return self.data(cid) / "rootfs"

    def idmap(self, cid: str) -> Path:
        """Idmapped binds of the image's layers (userns-remap)."""
        return self.data(cid) / "idmap"

    def shm(self, cid: str) -> Path:
        """The /dev/shm tmpfs of a container whose IPC namespace others may join."""
        return self.data(cid) / "shm"

    def log(self, cid: str, driver: str = "json-file") -> Path:
        """The log file of a driver (where dockerd keeps it)."""
        if driver == "local":
            return self.data(cid) / "local-logs" / "container.log"
        return self.data(cid) / f"{cid}-json.log"


class ContainerService:
    """All containers of one daemon."""

    # a network namespace prepared for a `none`-mode container (the CRI's pods): its path, or None
    netns_of: Callable[[str], str | None] = staticmethod(lambda cid: None)

    def __init__(self, meta: Metadata, images: ImageService, snapshots: Snapshotter, monitor: MonitorClient,
                 runtimes: dict[str, Runtime], default_runtime: str, paths: Paths, cgroup_parent: str = "dockyard",
                 on_event: Callable[[str, Container, dict[str, str]], None] | None = None,
                 log_opts: dict[str, str] | None = None, log_driver: str = "json-file",
                 default_ulimits: dict[str, dict[str, Any]] | None = None,
                 remap: userns.Remap | None = None, init: bool = False, init_path: str = "",
                 monitors: int = 1) -> None:
        self.meta = meta
        self.init_default = init
        self.init_path = init_path
        self.images = images
        self.snapshots = snapshots
        self.monitor = monitor   # group 0's: managed plugins, runtime commands that concern no container
        self.groups = MonitorGroups(paths.exec_root, monitor, monitors)
        self.runtimes = runtimes
        self.default_runtime = default_runtime
        self.paths = paths
        self.cgroup_parent = cgroup_parent
        self.log_opts = dict(log_opts or {})
        self.log_driver = log_driver
        self.default_ulimits = dict(default_ulimits or {})
        self.remap = remap
        if remap is not None:   # as dockerd: the remapped root may traverse the data root, nobody else
            os.chown(paths.data_root, 0, remap.gid)
            os.chmod(paths.data_root, 0o710)
        self.by_id: dict[str, Container] = {}
        self.on_event = on_event or (lambda *_: None)
        self._watchers: dict[int, asyncio.Task[None]] = {}   # monitor group → the task following its exits
        self._joining: dict[int, asyncio.Future[None]] = {}   # monitor group → its monitor up and followed
        self._exit_tasks: set[asyncio.Task[None]] = set()
        self.shutting_down = False
        self.stdio = StdioKeeper()
        self.networks: ContainerNetworks | None = None   # set by the daemon (daemon.app)
        self.volumes: ContainerVolumes | None = None     # set by the daemon (daemon.app)
        self.on_network_event: Callable[[str, Network, dict[str, str]], None] = lambda *_: None
        # the monitor's exits of what is not a container (a managed plugin's process)
        self.on_other_exit: Callable[[dict[str, Any]], None] = lambda ev: None
        self._fw_task: asyncio.Task[None] | None = None

    @property
    def bridge(self) -> Bridge | None:
        """The default bridge; None with --bridge=none."""
        return self.networks.nets.default if self.networks is not None else None

    @property
    def net(self) -> ContainerNetworks:
        assert self.networks is not None
        return self.networks

    # --- lookup ---------------------------------------------------------------------
    def lookup(self, ref: str) -> Container:
        """By full ID, name, or unique ID prefix."""
        if ref in self.by_id:
            return self.by_id[ref]
        name = ref.lstrip("/")
        for c in self.by_id.values():
            if c.name == name:
                return c
        if ref:
            found = [c for c in self.by_id.values() if c.id.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def list(self) -> list[Container]:
        """Newest first, as `docker ps` shows."""
        return sorted(self.by_id.values(), key=lambda c: c.cfg.created, reverse=True)

    def using_image(self, image_id: str) -> builtins.list[tuple[str, bool]]:
        """(id, running) of containers made from an image."""
        return [(c.id, c.state.running) for c in self.by_id.values() if c.cfg.image_id == image_id]

    def _persist(self, c: Container) -> None:
        self.meta.update_container_state(c.id, c.state.to_json())

    # --- create -----------------------------------------------------------------------
    async def create(self, name: str | None, body: dict[str, Any], platform: str | None = None,
                     warnings: builtins.list[str] | None = None) -> Container:
        """`POST /containers/create`; dockerd's warnings are appended to `warnings`."""
        if not isinstance(body, dict):
            raise InvalidArgument("request body must be a JSON object")
        if name:
            name = names.validate(name)
            self._check_name_free(name)
        body = fields.normalize(body)
        image = body.get("Image")
        if not image or not isinstance(image, str):
            raise InvalidArgument("config.Image must be specified")
        img = self.images.resolve(image)
        create_mod.check_platform(platform, img, image)
        hc = body.get("HostConfig") or {}
        cfg = create_mod.build(body, img, (hc.get("Runtime") if isinstance(hc, dict) else "") or "", self.default_runtime,
                               set(self.runtimes), self.log_driver, self.log_opts, warnings)
        userns.check_create(cfg.host_config, self.remap)
        if self.networks is not None and self.networks.nets.overlay is not None:   # one made on another host just now
            nc = body.get("NetworkingConfig") or {}
            await self.networks.nets.overlay.catch_up([str(cfg.host_config.get("NetworkMode") or ""),
                                                      *((nc.get("EndpointsConfig") or {}) if isinstance(nc, dict) else {})])
        if self.networks is not None:
            cfg = dataclasses.replace(cfg, networks=self.networks.wanted(cfg.host_config, body.get("NetworkingConfig"),
                                                                         str(body.get("MacAddress") or "")))
        self._check_joins(cfg.host_config, start=False)
        self._check_ports(cfg, warnings)
        points = mountpoints.parse(cfg.host_config, cfg.config,
                                   lambda ref: mountpoints.donor_points(self.lookup(ref).cfg.mounts, ref))
        vd = cfg.host_config.get("VolumeDriver") or "local"
        for p in points:   # --volume-driver: for the -v and anonymous volumes that name no driver
            if p["Type"] == "volume" and p["Driver"] == "local" and self.volumes is not None \
                    and p["Name"] not in self.volumes.store.by_name:
                p["Driver"] = vd
        etcfiles.check(cfg.host_config)
        if any(str(x).endswith(("host-gateway",)) for x in cfg.host_config.get("ExtraHosts") or []) \
                and self.bridge is None:
            etcfiles.extra_host("x:host-gateway", "")   # refused: dockerd's message
        if not name:
            name = names.generate({c.name for c in self.by_id.values()})
        self._check_links(cfg.host_config, name)
        made: builtins.list[str] = []
        if points:
            if self.volumes is None:
                raise InvalidArgument("volumes are not available in this daemon")
            made = await asyncio.to_thread(self.volumes.resolve, points)
            cfg = dataclasses.replace(cfg, mounts=points)
        self.paths.data(cfg.id).mkdir(parents=True)
        try:
            self.snapshots.prepare_active(cfg.id, self._init_layer(img.top_layer))
            state = ContainerState()
            self.meta.put_container(cfg.id, name, img.id, cfg.created, cfg.to_json(), state.to_json())
        except BaseException:
            self.snapshots.remove(cfg.id)
            shutil.rmtree(self.paths.data(cfg.id), ignore_errors=True)
            if made and self.volumes is not None:
                await asyncio.to_thread(self.volumes.drop, made)
            raise
        c = Container(cfg, state, name)
        self.by_id[cfg.id] = c
        self.on_event("create", c, {})
        return c

    def _check_links(self, hc: dict[str, Any], name: str) -> None:
        """Create: every linked container exists; the links stored as dockerd shows them
        (`/target:/name/alias`)."""
        out = []
        for item in hc.get("Links") or []:
            target, alias = networking.parse_link(item)
            try:
                t = self.lookup(target)
            except NotFound:
                raise NotFound(f"could not get container for {target}: No such container: {target}") from None
            if (hc.get("NetworkMode") or "default") in ("host", "none") or str(hc.get("NetworkMode")).startswith("container:"):
                raise InvalidArgument("conflicting options: container type network can't be used with links")
            out.append(f"/{t.name}:/{name}/{alias}")
        if out:
            hc["Links"] = out

    def _links(self, c: Container) -> tuple[builtins.list[str], builtins.list[tuple[str, str]]]:
        """Start: the legacy links' environment and /etc/hosts lines; a linked container must run."""
        env: builtins.list[str] = []
        hosts: builtins.list[tuple[str, str]] = []
        for item in c.cfg.host_config.get("Links") or []:
            target, alias = networking.parse_link(item)
            try:
                t = self.lookup(target)
            except NotFound:
                raise NotFound(f"Cannot link to /{target}, as it does not exist") from None
            if not t.state.running:
                raise Conflict(f"Cannot link to a non running container: /{t.name} AS /{c.name}/{alias}")
            ip = networking.link_address(t, c)
            env += networking.link_env(alias, t, c.name, ip)
            hosts.append((" ".join(dict.fromkeys([alias, t.cfg.config["Hostname"], t.name])), ip))
        return env, hosts

    def _check_ports(self, cfg: ContainerConfig, warnings: builtins.list[str] | None) -> None:
        """Published ports need the default bridge; with the host's network they are dropped
        with dockerd's warning; other modes refuse them as dockerd does."""
        hc = cfg.host_config
        if not hc.get("PortBindings") and not hc.get("PublishAllPorts"):
            return
        nm = hc.get("NetworkMode") or "default"
        if nm == "host":
            hc["PortBindings"], hc["PublishAllPorts"] = {}, False
            if warnings is not None:
                warnings.append("Published ports are discarded when using host network mode")
            return
        if not networking.primary(hc):
            raise InvalidArgument("conflicting options: port publishing and the container type network mode")
        if not cfg.networks:
            field = "HostConfig.PortBindings" if hc.get("PortBindings") else "HostConfig.PublishAllPorts"
            raise InvalidArgument(f"{field}: published ports (-p, -P) need the default bridge: this daemon runs "
                                  "with --bridge=none")
        parse_ports(hc, cfg.config.get("ExposedPorts") or {})

    def _check_joins(self, hc: dict[str, Any], start: bool) -> dict[str, str]:
        """Namespaces of other containers that IpcMode/PidMode `container:<id>` name: at create the
        donor must exist (and be shareable for IPC), at start it must be running."""
        join: dict[str, str] = {}
        for key, ns, what in (("IpcMode", "ipc", "IPC"), ("PidMode", "pid", "PID")):
            mode = hc.get(key) or ""
            if not mode.startswith("container:"):
                continue
            try:
                donor = self.lookup(mode[10:])
            except NotFound:
                raise InvalidArgument(f"No such container: {mode[10:]}") from None
            if ns == "ipc" and (donor.cfg.host_config.get("IpcMode") or "private") not in ("shareable", "host"):
                raise InvalidArgument(f"cannot join IPC of container {mode[10:]}: non-shareable IPC "
                                      "(hint: use IpcMode:shareable for the donor container)")
            if start:
                if not donor.state.running or not donor.state.pid:
                    raise Conflict(f"cannot join {what} of a non running container: {mode[10:]}")
                join[ns] = f"/proc/{donor.state.pid}/ns/{ns}"
        nm = hc.get("NetworkMode") or ""
        if nm.startswith("container:"):   # the donor's network namespace, whichever it has at this start
            try:
                donor = self.lookup(nm[10:])
            except NotFound:
                raise InvalidArgument(f"No such container: {nm[10:]}") from None
            if start:
                if not donor.state.running or not donor.state.pid:
                    raise Conflict(f"cannot join network of a non running container: {nm[10:]}")
                join["network"] = donor.state.sandbox or f"/proc/{donor.state.pid}/ns/net"
                if (hc.get("UTSMode") or "") != "host":   # the donor's host name: its UTS namespace, shared
                    join["uts"] = f"/proc/{donor.state.pid}/ns/uts"
        return join

    def _donor_files(self, hc: dict[str, Any]) -> dict[str, str] | None:
        """`container:` network mode: the donor's /etc/hosts, resolv.conf and hostname, as dockerd."""
        nm = hc.get("NetworkMode") or ""
        if not nm.startswith("container:"):
            return None
        donor = self.lookup(nm[10:])
        d = self.paths.data(donor.id)
        return {f"/etc/{n}": str(d / n) for n in ("hostname", "hosts", "resolv.conf") if (d / n).exists()}

    def _init_layer(self, image_top: str | None) -> str:
        """The init layer for an image's containers (see rootfs_init), made once per image and
        shared: it is read-only to them. Garbage-collected with the layers when unused."""
        key = f"init:{image_top or 'scratch'}"
        row = self.meta.snapshot(key)
        if row is not None and row["kind"] == "committed":
            return key
        if row is not None:
            self.snapshots.remove(key)
        fs = self.snapshots.prepare_layer(key, image_top)
        try:
            rootfs_init.populate(str(fs), [str(x) for x in self.snapshots.chain(image_top)])
        except BaseException:
            self.snapshots.remove(key)
            raise
        self.snapshots.commit_layer(key, 0)
        return key

    def _check_name_free(self, name: str) -> None:
        for c in self.by_id.values():
            if c.name == name:
                raise Conflict(f'Conflict. The container name "/{name}" is already in use by container "{c.id}". '
                               "You have to remove (or rename) that container to be able to reuse that name.")

    # --- start ------------------------------------------------------------------------
    async def start(self, ref: str) -> None:
        """`POST /containers/{id}/start` (and the daemon's own starts at boot): forgets an
        earlier stop by hand and the restart count, as dockerd does."""
        c = self.lookup(ref)
        async with c.lock:
            if c.state.docker_running:
                raise NotModified("container already started")
            c.state.manually_stopped = False
            c.state.restart_count = 0
            c.restart_delay = 0.0
            await self._start_locked(c)

    async def _start_locked(self, c: Container) -> None:
        """Start under the container's lock (API start and policy restarts)."""
        if c.state.status in (Status.REMOVING, Status.DEAD):
            raise Conflict(f"cannot start container {c.id[:12]}: it is being removed")
        try:
            pid = await self._start_steps(c)
        except EngineError as e:
            c.state.error = e.message
            self._persist(c)
            if c.cfg.host_config.get("AutoRemove"):
                self._spawn(self.remove(c.id, force=True))  # as dockerd: --rm removes on failure
            raise
        finally:
            c.placed = None   # chosen for this start only: from here its group is in its state
        c.state.to(Status.RUNNING)
        self.stdio.hold(c.id, self.paths.bundle(c.id))
        c.state.pid, c.state.exit_code, c.state.error = pid, 0, ""
        c.state.started_at = now_iso()
        c.state.oom_killed = False
        self._persist(c)
        self.on_event("start", c, {})

    async def _start_steps(self, c: Container) -> int:
        """mount rootfs → etc files → user → spec → monitor start; undone on failure."""
        cfg, cid = c.cfg, c.id
        rootfs = self.paths.rootfs(cid)
        bundle = self.paths.bundle(cid)
        rootfs.mkdir(parents=True, exist_ok=True)
        bundle.mkdir(parents=True, exist_ok=True)
        for p in (bundle / "exit.json",):
            p.unlink(missing_ok=True)
        rt = self.runtimes[cfg.runtime]
        await self._rt_delete(rt, cid)  # a leftover from an earlier run, if any
        remap = self.remap_of(c)
        if not mnt.is_mounted(str(rootfs)):
            await asyncio.to_thread(self._mount_rootfs, c, remap)
        try:
            nm = cfg.host_config.get("NetworkMode", "default")
            hc = cfg.host_config
            gateway = self.bridge.gateway if self.bridge is not None else ""
            link_env, link_hosts = self._links(c)
            dns = etcfiles.DnsConfig(list(hc.get("Dns") or []), list(hc.get("DnsSearch") or []),
                                     list(hc.get("DnsOptions") or []),
                                     [etcfiles.extra_host(str(x), gateway) for x in hc.get("ExtraHosts") or []]
                                     + link_hosts)
            files = etcfiles.write(str(self.paths.data(cid)), cfg.config["Hostname"], cfg.config.get("Domainname", ""),
                                   nm, dns, self.net.embedded_dns(c))
            if remap is not None:   # the container's root owns them, as in Docker
                for f in files.values():
                    os.chown(f, remap.uid, remap.gid)
            u = users.resolve(str(rootfs), cfg.config.get("User") or "")
            env = create_mod.process_env(list(cfg.config.get("Env") or []))
            if not any(e.startswith("HOSTNAME=") for e in env):
                env.insert(1 if env and env[0].startswith("PATH=") else 0, f"HOSTNAME={cfg.config['Hostname']}")
            if not any(e.startswith("HOME=") for e in env):
                env.append(f"HOME={u.home}")
            if cfg.config.get("Tty") and not any(e.startswith("TERM=") for e in env):
                env.append("TERM=xterm")   # as dockerd
            env = link_env + env   # the container's own variables win
            extra = users.group_ids(str(rootfs), list(cfg.host_config.get("GroupAdd") or []))
            cwd = cfg.config.get("WorkingDir") or "/"
            if cwd != "/":
                await asyncio.to_thread(etcfiles.make_workdir, str(rootfs), cwd)
            join = self._check_joins(cfg.host_config, start=True)
            if nm == "none" and (held := self.netns_of(cid)):   # a namespace made (and wired) for it beforehand
                join["network"] = held
            donor_files = self._donor_files(cfg.host_config)
            if donor_files:
                files = donor_files
            if cfg.networks:
                nets = self.net.resolved(c)
                if nets != cfg.networks:
                    self._set_networks(c, nets)
                    cfg = c.cfg
                join["network"] = await asyncio.to_thread(self.net.plug, c)
                await self.net.serve_dns(c)
                for ip in self.net.hosts_lines(c):
                    await asyncio.to_thread(etcfiles.add_host, files["/etc/hosts"], ip, cfg.config["Hostname"],
                                            cfg.config.get("Domainname", ""))
            args, init_mounts = self._with_init(cfg)
            ipc_mode = cfg.host_config.get("IpcMode") or "private"
            ipc_shared = ipc_mode == "shareable" or ipc_mode.startswith("container:")
            si = spec.SpecInput(
                cid=cid, rootfs=str(rootfs), args=args, env=env,
                cwd=cwd, uid=u.uid, gid=u.gid,
                additional_gids=list(dict.fromkeys(u.additional_gids + extra)), hostname=cfg.config["Hostname"],
                domainname=cfg.config.get("Domainname", ""), files=files, host_config=cfg.host_config,
                cgroup_parent=self.cgroup_parent, join=join, default_ulimits=self.default_ulimits,
                shm_source=await asyncio.to_thread(self._shm_source, c) if ipc_shared else "", userns=remap,
                mounts=(await asyncio.to_thread(self.volumes.prepare, c, str(rootfs))
                        if c.cfg.mounts and self.volumes is not None else []) + init_mounts,
                terminal=bool(cfg.config.get("Tty")))
            # a worker thread: --privileged walks the host's /dev, devices may be directories
            oci = await asyncio.to_thread(spec.build, si)
            (bundle / "config.json").write_text(json.dumps(oci))
            rt_runtime = cfg.host_config.get("CpuRealtimeRuntime")
            if rt_runtime and not rt.builtin:   # runc wants the parent to hold the budget already
                from ..runtime.cgroups import prepare_rt_parent
                await asyncio.to_thread(prepare_rt_parent, oci["linux"]["cgroupsPath"], rt_runtime,
                                        cfg.host_config.get("CpuRealtimePeriod") or 1_000_000)
            monitor = await self._place(c)
            return await monitor.start({
                "id": cid, "bundle": str(bundle), "runtime": rt.describe(), "log": self._log_spec(c),
                "exit_file": str(bundle / "exit.json"), "cgroup": oci["linux"]["cgroupsPath"],
                "terminal": bool(cfg.config.get("Tty")), "stdin": bool(cfg.config.get("OpenStdin")),
                "stdin_once": bool(cfg.config.get("StdinOnce")),
                "console_size": cfg.host_config.get("ConsoleSize") or None})
        except BaseException as e:
            await self._undo_start(c, rt)
            if isinstance(e, SystemError_) and ("executable file not found" in e.message or "no such file" in e.message):
                raise InvalidArgument(f"failed to create shim task: OCI runtime create failed: {e.message}: unknown") from None
            if isinstance(e, SystemError_):
                raise SystemError_(f"OCI runtime create failed: {e.message}") from None
            raise

    def _with_init(self, cfg: ContainerConfig) -> tuple[builtins.list[str], builtins.list[dict[str, Any]]]:
        """The process's arguments and extra mounts: with --init (HostConfig.Init, else the
        daemon's `init`), the init binary bound read-only at /sbin/docker-init runs first, as
        dockerd does it, and runs the command as its child."""
        args = [cfg.path, *cfg.args]
        want = cfg.host_config.get("Init")
        if not (self.init_default if want is None else want):
            return args, []
        path = self.init_path or shutil.which("docker-init") or shutil.which("tini-static") or ""
        if not path or not os.path.isfile(path):
            raise InvalidArgument(f'exec: "{self.init_path or "docker-init"}": executable file not found in $PATH')
        mount = {"destination": INIT_PATH, "type": "bind", "source": os.path.realpath(path),
                 "options": ["rbind", "ro", "nosuid", "nodev"]}
        return [INIT_PATH, "--", *args], [mount]

    # --- update -----------------------------------------------------------------------
    async def update(self, ref: str, body: dict[str, Any]) -> builtins.list[str]:
        """`POST /containers/{id}/update`: resources (live, through the runtime's `update`) and
        the restart policy. As dockerd, a zero value leaves a field as it is."""
        if not isinstance(body, dict):
            raise InvalidArgument("request body must be a JSON object")
        body = fields.canonical(body)
        fields.check(body, update=True)
        for k, v in body.items():
            if k not in resources.UPDATABLE and k != "RestartPolicy" and fields.asks(k, v):
                raise InvalidArgument(f"HostConfig.{k} cannot be changed by update")
        c = self.lookup(ref)
        warnings: list[str] = []
        async with c.lock:
            hc = copy.deepcopy(c.cfg.host_config)
            changed = {k for k in resources.UPDATABLE if not fields.empty(body.get(k)) or
                       (k == "PidsLimit" and body.get(k) is not None)}
            mem = body.get("Memory") or 0
            if mem and mem > (hc.get("MemorySwap") or 0) > 0 and not body.get("MemorySwap"):
                raise Conflict("Cannot update container: Memory limit should be smaller than already set memoryswap "
                               "limit, update the memoryswap at the same time")
            for k in changed:
                hc[k] = body[k]
            if "NanoCpus" in changed:
                hc["CpuPeriod"] = hc["CpuQuota"] = 0
            elif changed & {"CpuPeriod", "CpuQuota"}:
                hc["NanoCpus"] = 0
            resources.validate(hc, warnings)
            rp = body.get("RestartPolicy")
            if rp and not fields.empty(rp):
                if hc.get("AutoRemove") and rp.get("Name") not in ("", "no"):
                    raise InvalidArgument("Restart policy cannot be updated because AutoRemove is enabled for the container")
                hc["RestartPolicy"] = restart.validate(rp)
            if changed and c.state.running:
                rt = self.runtimes[c.cfg.runtime]
                f = self.paths.bundle(c.id) / "update.json"
                f.write_text(json.dumps(resources.to_oci_update(hc, changed)))
                rc, _, err = await self.monitor_of(c).runtime(rt.describe(), ["update", "--resources", str(f), c.id])
                f.unlink(missing_ok=True)
                if rc != 0:
                    raise SystemError_(f"Cannot update container {c.id}: {err.strip()}")
            c.cfg = dataclasses.replace(c.cfg, host_config=hc)
            self.meta.update_container_config(c.id, c.cfg.to_json())
        self.on_event("update", c, {})
        return warnings

    # --- networks ---------------------------------------------------------------------
    async def create_network(self, body: dict[str, Any], created: str) -> Network:
        """`POST /networks/create`."""
        n = await asyncio.to_thread(self.net.nets.create, body, created)
        self.on_network_event("create", n, {})
        return n

    async def remove_network(self, n: Network) -> None:
        """dockerd's 403 while a running container has an endpoint on it; stopped containers
        that name it keep their settings (their next start fails, as with dockerd)."""
        if n.predefined:
            raise PermissionDenied(f"{n.name} is a pre-defined network and cannot be removed")
        if any(c.state.running and n.name in c.state.endpoints for c in self.by_id.values()):
            raise PermissionDenied(f"error while removing network: network {n.name} id {n.id} has active endpoints")
        await asyncio.to_thread(self.net.nets.remove, n)
        self.on_network_event("destroy", n, {})

    async def connect(self, ref: str, n: Network, conf: dict[str, Any]) -> None:
        """`POST /networks/{id}/connect`: recorded, and plugged now when the container runs."""
        c = self.lookup(ref)
        async with c.lock:
            settings = self.net.check_connect(c, n, conf)
            if c.state.running:
                ep = await asyncio.to_thread(self.net.connect_running, c, n, settings)
                self._persist(c)
                await self.net.serve_dns(c)
                await asyncio.to_thread(etcfiles.add_host, str(self.paths.data(c.id) / "hosts"), ep["ip"],
                                        c.cfg.config["Hostname"], c.cfg.config.get("Domainname", ""))
            self._set_networks(c, {**c.cfg.networks, n.name: settings})
        self.on_network_event("connect", n, {"container": c.id})

    async def disconnect(self, ref: str, n: Network, force: bool) -> None:
        """`POST /networks/{id}/disconnect`: unplugged now when the container runs."""
        try:
            c = self.lookup(ref)
        except NotFound:
            if force:   # dockerd: force removes what is left of a container that is gone
                return
            raise
        async with c.lock:
            if n.name not in c.cfg.networks and n.name not in c.state.endpoints:
                raise PermissionDenied(f"container {c.id[:12]} is not connected to network {n.name}")
            if c.state.running:
                await asyncio.to_thread(self.net.disconnect_running, c, n)
                self._persist(c)
                if not self.net.uses_dns(c):
                    self.net.dns.stop(c.id)
            self._set_networks(c, {k: v for k, v in c.cfg.networks.items() if k != n.name})
        self.on_network_event("disconnect", n, {"container": c.id})

    def _set_networks(self, c: Container, networks: dict[str, Any]) -> None:
        c.cfg = dataclasses.replace(c.cfg, networks=networks)
        self.meta.update_container_config(c.id, c.cfg.to_json())

    # --- exits ------------------------------------------------------------------------
    def monitor_of(self, c: Container) -> MonitorClient:
        """The monitor of the container's group (monitors.py)."""
        return self.groups.client(c.state.monitor)

    async def _place(self, c: Container) -> MonitorClient:
        """The monitor that will run a container about to start (or be attached to before its
        start): its group is chosen once, kept until the start, and its monitor started and
        followed if it is not yet."""
        if c.placed is None:
            busy = [o.state.monitor if o.placed is None else o.placed for o in self.by_id.values()
                    if o is not c and (o.state.running or o.placed is not None)]
            c.placed = self.groups.choose(busy)
        c.state.monitor = c.placed
        await self._follow_group(c.placed)
        return self.groups.client(c.placed)

    async def _follow_group(self, group: int) -> None:
        """A group's monitor running (started if none answers) and its exit events subscribed to:
        once per group, however many starts ask at once (two would start two monitors, one of
        them unreachable), and before any container is started in it (an exit the stream did not
        carry would wait for the next reconnection)."""
        fut = self._joining.get(group)
        if fut is None:
            fut = self._joining[group] = asyncio.ensure_future(self._join_group(group))
        try:
            await asyncio.shield(fut)
        except BaseException:
            if fut.done() and self._joining.get(group) is fut:
                del self._joining[group]   # the next start tries again
            raise

    async def _join_group(self, group: int) -> None:
        monitor = self.groups.client(group)
        await monitor.ensure_running()
        subscribed = asyncio.Event()
        if (old := self._watchers.pop(group, None)) is not None:   # an earlier try that timed out
            old.cancel()
        self._watchers[group] = asyncio.create_task(self.watch_exits(group, subscribed))
        try:
            await asyncio.wait_for(subscribed.wait(), monitor.timeout)
        except TimeoutError:
            raise Unavailable(f"the container monitor of group {group} sends no events") from None

    async def watch_exits(self, group: int = 0, subscribed: asyncio.Event | None = None) -> None:
        """Follow a monitor's exit events (reconnecting) for the daemon's lifetime. Each time
        the stream is (re)subscribed, exits it did not carry are read from `exit.json`; when the
        monitor itself is gone, a new one is started and adopts its group's containers that still run."""
        first = True
        monitor = self.groups.client(group)
        while True:
            adopt = False
            try:
                if not first and not self.shutting_down and not self.groups.alive(group):
                    log.warning("container monitor %d lost: starting a new one", group)
                    await monitor.ensure_running()
                    adopt = True
                first = False
                follow = asyncio.create_task(self._follow_events(group, adopt, subscribed))
                watchdog = asyncio.create_task(self._monitor_watchdog(group))
                try:
                    await asyncio.wait({follow, watchdog}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for t in (follow, watchdog):
                        t.cancel()
                await follow
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():   # type: ignore[union-attr]
                    raise
            except (OSError, EngineError) as e:
                log.warning("monitor event stream lost: %s", e)
            await asyncio.sleep(0.2)

    async def _follow_events(self, group: int, adopt: bool, subscribed: asyncio.Event | None) -> None:
        async for ev in self.groups.client(group).events():
            if not ev:   # subscribed
                self._spawn(self._catch_up_exits(group, adopt))
                if subscribed is not None:
                    subscribed.set()
                continue
            self._spawn(self._on_exit(ev))

    async def _monitor_watchdog(self, group: int) -> None:
        """Ends when the monitor is gone, whether or not its event stream said so."""
        while self.shutting_down or self.groups.alive(group):  # noqa: ASYNC110 - polls the kernel (/proc), no event to await
            await asyncio.sleep(1)

    def _spawn(self, coro: Any) -> None:
        """A background task the service keeps a reference to until it ends."""
        t = asyncio.create_task(coro)
        self._exit_tasks.add(t)
        t.add_done_callback(self._exit_tasks.discard)

    async def _catch_up_exits(self, group: int, adopt: bool = False) -> None:
        """Exits recorded by a group's monitor while no event stream was listening; then, after a
        monitor's loss, the group's containers still running are adopted by the new one."""
        for c in list(self.by_id.values()):
            ev = self._recorded_exit(c) if c.state.monitor == group else None
            if ev is not None:
                self._spawn(self._on_exit(ev))
        if adopt:
            await self._adopt_orphans(group)

    def _recorded_exit(self, c: Container) -> dict[str, Any] | None:
        """The exit the monitor wrote for a container the record says runs, if any."""
        if not c.state.running:
            return None
        try:
            return dict(json.loads((self.paths.bundle(c.id) / "exit.json").read_text()))
        except (OSError, ValueError):
            return None

    async def _on_exit(self, ev: dict[str, Any]) -> None:
        c = self.by_id.get(ev["id"])
        if c is None:
            self.on_other_exit(ev)
            return
        async with c.lock:
            if c.state.status not in (Status.RUNNING, Status.PAUSED):
                return
            self.stdio.release(c.id)
            await self._cleanup_runtime(c)
            c.state.pid = 0
            c.state.exit_code = int(ev["exit_code"])
            c.state.finished_at = ev["finished_at"]
            c.state.oom_killed = bool(ev.get("oom_killed"))
            if ev.get("lost"):
                c.state.error = "the container monitor was lost while it ran: its exit code and output since are unknown"
            again = not self.shutting_down and restart.should_restart(
                c.cfg.host_config.get("RestartPolicy") or {}, c.state.exit_code, c.state.restart_count,
                c.state.manually_stopped)
            c.state.to(Status.RESTARTING if again else Status.EXITED)
            self._persist(c)
            waiters, c.exit_waiters = c.exit_waiters, []
            for f in waiters:
                if not f.done():
                    f.set_result(c.state)
            if again:
                ran = unix_seconds(c.state.finished_at) - unix_seconds(c.state.started_at)
                c.restart_delay = restart.next_delay(c.restart_delay, ran)
                c.restart_task = asyncio.create_task(self._policy_restart(c, c.restart_delay))
        if c.state.oom_killed:
            self.on_event("oom", c, {})
        self.on_event("die", c, {"exitCode": str(c.state.exit_code)})
        if c.cfg.host_config.get("AutoRemove"):
            try:
                await self.remove(c.id, force=True)
            except NotFound:
                pass

    async def _policy_restart(self, c: Container, delay: float) -> None:
        """Start the container again after `delay`, unless it was stopped or removed meanwhile."""
        try:
            await asyncio.sleep(delay)
            async with c.lock:
                if c.removed or c.state.status != Status.RESTARTING:
                    return
                c.restart_task = None
                c.state.restart_count += 1
                try:
                    await self._start_locked(c)
                except EngineError as e:
                    log.warning("restarting %s by its policy failed: %s", c.id[:12], e.message)
                    c.state.to(Status.EXITED)
                    self._persist(c)
        except asyncio.CancelledError:
            pass

    def _cancel_restart(self, c: Container) -> bool:
        """A stop, kill or remove while a policy restart waits: it does not happen; the container
        is exited. Returns whether there was one. Caller holds no lock; runs in the loop."""
        if c.state.status != Status.RESTARTING or c.restart_task is None:
            return False   # (no task: the restart is starting it right now; callers wait for that)
        c.restart_task.cancel()
        c.restart_task = None
        c.state.to(Status.EXITED)
        self._persist(c)
        return True

    async def _settled(self, c: Container) -> None:
        """Wait until a policy restart that is starting the container has finished."""
        if c.state.status == Status.RESTARTING:
            async with c.lock:
                pass

    async def _rt_delete(self, rt: Runtime, cid: str) -> None:
        if rt.has_state(cid):
            for _ in range(50):   # a monitor lost just now is replaced within a second or so
                try:
                    rc, _, err = await self.monitor.runtime(rt.describe(), ["delete", "--force", cid])
                    break
                except Unavailable:
                    await asyncio.sleep(0.1)
            else:
                raise Unavailable(f"runtime delete {cid[:12]}: the container monitor is unavailable")
            if rc != 0:
                log.warning("runtime delete %s: %s", cid, err.strip())
        d = os.path.join(rt.root, cid)
        if os.path.isdir(d) and not os.path.exists(os.path.join(d, "state.json")):
            # a create cut short (its monitor died) leaves a record no runtime can delete
            await asyncio.to_thread(shutil.rmtree, d, True)

    def _remove_files(self, cid: str) -> "builtins.list[Path]":
        """The container's files out of sight (renamed into the trash, atomically); returns
        what is left to delete, which `remove` purges after the removal has been answered."""
        later: builtins.list[Path] = []
        self.snapshots.remove(cid, later)
        if (gone := trash.move(self.paths.data(cid), self.paths.data_root / "trash")) is not None:
            later.append(gone)
        shutil.rmtree(self.paths.bundle(cid), ignore_errors=True)   # small, on tmpfs
        return later

    def _shm_source(self, c: Container) -> str:
        """IpcMode shareable: a tmpfs on the host that the container and its joiners bind as
        /dev/shm (a mount in another mount namespace cannot be bound); container:<id>: the donor's."""
        mode = c.cfg.host_config.get("IpcMode") or "private"
        if mode.startswith("container:"):
            donor = self.lookup(mode[10:])
            p = self.paths.shm(donor.id)
            return str(p) if mnt.is_mounted(str(p)) else ""
        if mode != "shareable":
            return ""
        p = self.paths.shm(c.id)
        p.mkdir(exist_ok=True)
        if not mnt.is_mounted(str(p)):
            size = c.cfg.host_config.get("ShmSize") or spec.DEFAULT_SHM
            mnt.mount_tmpfs(str(p), f"mode=1777,size={size}")
        return str(p)

    def remap_of(self, c: Container) -> userns.Remap | None:
        """The daemon's remap, unless the container asked for the host's user namespace."""
        return None if c.cfg.host_config.get("UsernsMode") == "host" else self.remap

    def _mount_rootfs(self, c: Container, remap: userns.Remap | None) -> None:
        """The container's overlay; with userns-remap its lower layers are idmapped binds and its
        own layer belongs to the remapped root."""
        target = str(self.paths.rootfs(c.id))
        for m in self.snapshots.mounts(c.id):
            if remap is not None:
                upper = next((o[len("upperdir="):] for o in m.options if o.startswith("upperdir=")), "")
                os.chown(upper or m.source, remap.uid, remap.gid)
                if m.type == "overlay":
                    m = mnt.Mount(m.type, m.source, self._remapped_lowers(c, m.options, remap))
            m.mount(target)

    def _remapped_lowers(self, c: Container, options: tuple[str, ...], remap: userns.Remap) -> tuple[str, ...]:
        """Idmapped binds of the layers; where the kernel refuses them (or DOCKYARD_USERNS_LAYERS=copy
        asks, to measure), shifted copies made once per layer."""
        if os.environ.get("DOCKYARD_USERNS_LAYERS") != "copy":
            try:
                return userns.idmap_lowers(options, remap, str(self.paths.idmap(c.id)))
            except OSError as e:
                userns.unmount_idmaps(str(self.paths.idmap(c.id)))
                log.warning("idmapped layers refused (%s): using shifted copies of the layers", e)
        return userns.copied_lowers(options, remap)

    def _cgroup_path(self, c: Container) -> str:
        parent = (c.cfg.host_config.get("CgroupParent") or self.cgroup_parent).strip("/")
        return f"/{parent}/{c.id}"

    async def _undo_start(self, c: Container, rt: Runtime) -> None:
        """A start that failed, at any step (the monitor may have died under it, leaving a
        runtime that went on creating): every step undone, each whatever the others did."""
        log.info("start of %s failed: undoing it", c.id[:12])
        try:
            await self._rt_delete(rt, c.id)
        except (OSError, EngineError) as e:
            log.warning("undoing the start of %s: runtime delete: %s", c.id[:12], e)
        from ..runtime import cgroups

        def kill_and_remove() -> None:
            m = cgroups.Manager(self._cgroup_path(c))
            m.kill_all()
            m.destroy()
        await asyncio.to_thread(kill_and_remove)
        self._unmount(c)
        await self._detach(c)

    async def _detach(self, c: Container) -> None:
        """The container's endpoints and sandbox, once its processes are gone."""
        if self.networks is None or not (c.state.sandbox or c.state.endpoints):
            return
        self.networks.dns.stop(c.id)
        veths = await asyncio.to_thread(self.networks.unplug, c)
        if veths:   # usually gone with the namespace already: made sure of, off the exit path
            self._spawn(networking.delete_veths(veths))

    def _unmount(self, c: Container) -> None:
        """The container's rootfs, its idmapped layer binds and its shared /dev/shm."""
        mnt.unmount(str(self.paths.rootfs(c.id)))
        userns.unmount_idmaps(str(self.paths.idmap(c.id)))
        mnt.unmount(str(self.paths.shm(c.id)))

    async def _cleanup_runtime(self, c: Container) -> None:
        self._unmount(c)  # every process of the container is gone
        await self._detach(c)
        if c.cfg.mounts and self.volumes is not None:
            await asyncio.to_thread(self.volumes.release, c)
        rt = self.runtimes[c.cfg.runtime]
        await self._rt_delete(rt, c.id)
        from ..runtime import cgroups
        parent = (c.cfg.host_config.get("CgroupParent") or "").strip("/")
        if not rt.builtin:   # what another runtime left (runc, seen once for an RT container)
            await asyncio.to_thread(cgroups.Manager(self._cgroup_path(c)).destroy)
        if parent and not any(o is not c and (o.state.running or o.lock.locked())
                              and o.cfg.host_config.get("CgroupParent", "").strip("/") == parent
                              for o in self.by_id.values()):
            await asyncio.to_thread(cgroups.remove_if_empty, parent)   # a --cgroup-parent of its own
        (self.paths.bundle(c.id) / "exit.json").unlink(missing_ok=True)

    # --- stop / kill / wait -----------------------------------------------------------------
    def _exit_future(self, c: Container) -> asyncio.Future[ContainerState]:
        f: asyncio.Future[ContainerState] = asyncio.get_running_loop().create_future()
        c.exit_waiters.append(f)
        return f

    async def kill(self, ref: str, sig: str | int = "SIGKILL") -> None:
        """`POST /containers/{id}/kill`."""
        n = create_mod.parse_signal(sig or "SIGKILL")
        c = self.lookup(ref)
        if not c.state.docker_running:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        self._mark_stopped_by_hand(c)
        if self._cancel_restart(c):
            self.on_event("kill", c, {"signal": str(n)})
            return
        await self._settled(c)
        if not c.state.running:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        if n == signal.SIGKILL:
            await self._kill_and_wait(c)
        else:
            await self._signal(c, n)
        self.on_event("kill", c, {"signal": str(n)})

    async def _kill_and_wait(self, c: Container) -> None:
        """SIGKILL, then wait for the exit (the waiter exists before the signal: no lost wake-up)."""
        done = self._exit_future(c)
        await self._signal(c, signal.SIGKILL)
        await self._wait_exit(c, done)

    async def _wait_exit(self, c: Container, fut: asyncio.Future[ContainerState], timeout: float = 30.0) -> None:
        """Bounded: a container that does not die after SIGKILL (D state, lost monitor) is an error,
        not a request that hangs forever."""
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            raise SystemError_(f"container {c.id[:12]} did not exit within {timeout:.0f}s of SIGKILL") from None

    async def _signal(self, c: Container, n: int) -> None:
        rt = self.runtimes[c.cfg.runtime]
        rc, _, err = await self.monitor_of(c).runtime(rt.describe(), ["kill", c.id, str(n)])
        if rc != 0 and c.state.running:
            log.warning("runtime kill %s: %s", c.id, err.strip())
        if n in (signal.SIGKILL, create_mod.parse_signal(c.cfg.config.get("StopSignal") or "SIGTERM")) and (
                c.state.status == Status.PAUSED or await self._kernel_frozen(c)):
            # as dockerd: a frozen process cannot act on the signal; thaw it (stop, kill, rm -f),
            # also when it was frozen behind the daemon's back (a crash in the middle of pause)
            await self._freeze(c, False)

    # --- top --------------------------------------------------------------------------------
    async def top(self, ref: str, ps_args: str) -> dict[str, Any]:
        """`GET /containers/{id}/top?ps_args=`."""
        c = self.lookup(ref)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        from .top import top
        return await asyncio.to_thread(top, c.state.pid, ps_args)

    # --- stats ------------------------------------------------------------------------------
    async def stats(self, ref: str, stream: bool, one_shot: bool) -> AsyncIterator[dict[str, Any]]:
        """`GET /containers/{id}/stats`: a sample a second (each with the previous one's CPU as
        `precpu_stats`); without `stream`, the second sample only (so CPU % is meaningful), and
        with `one-shot` the first at once. A container that is not running gives dockerd's
        zeroed record."""
        from . import stats as stats_mod
        c = self.lookup(ref)
        prev: dict[str, Any] | None = None
        while True:
            if not c.state.running or c.removed:
                yield stats_mod.empty(c.id, c.name)
                return
            cur = await asyncio.to_thread(stats_mod.sample, c.id, c.name, c.state.pid,
                                          c.cfg.host_config.get("NetworkMode") != "host")
            if prev is not None:
                cur["precpu_stats"], cur["preread"] = prev["cpu_stats"], prev["read"]
            if stream or one_shot or prev is not None:
                yield cur
                if not stream:
                    return
            prev = cur
            await asyncio.sleep(1.0)

    # --- pause ------------------------------------------------------------------------------
    async def pause(self, ref: str) -> None:
        """`POST /containers/{id}/pause`: freeze every process (the freezer cgroup)."""
        c = self.lookup(ref)
        async with c.lock:
            await self._settle_freezer(c)
            if c.state.status == Status.PAUSED:
                raise Conflict(f"Container {c.id} is already paused")
            if c.state.status != Status.RUNNING:
                raise Conflict(f"Container {c.id} is not running")
            await self._freeze(c, True)
        self.on_event("pause", c, {})

    async def _kernel_frozen(self, c: Container) -> bool:
        """What the freezer says, when the container has a process."""
        from .cgroupfs import frozen
        return bool(c.state.pid) and bool(await asyncio.to_thread(frozen, c.state.pid))

    def op_freeze_marker(self, cid: str) -> Path:
        """Written before an operation (cp, export, commit) freezes a running container, removed
        after it thaws it: the intent a restart reads when the daemon died in between."""
        return self.paths.data(cid) / "frozen-for-operation"

    async def _thaw_after_crash(self, c: Container) -> None:
        """Start-up: a container an operation froze when the daemon died is thawed — unless its
        record says its user paused it."""
        marker = self.op_freeze_marker(c.id)
        if not marker.exists():
            return
        if c.state.status == Status.RUNNING and await self._kernel_frozen(c):
            rt = self.runtimes[c.cfg.runtime]
            rc, _, err = await self.monitor_of(c).runtime(rt.describe(), ["resume", c.id])
            if rc != 0:
                log.warning("container %s: thawing what an interrupted operation froze: %s", c.id[:12], err.strip())
                return
            log.warning("container %s was left frozen by an operation the daemon did not finish: thawed", c.id[:12])
        marker.unlink(missing_ok=True)

    async def _settle_freezer(self, c: Container) -> None:
        """The kernel is the truth: a running container that is frozen is paused, a paused one
        that is not frozen is running (a crash between the freezer and the record)."""
        if c.state.status not in (Status.RUNNING, Status.PAUSED) or not c.state.pid:
            return
        from .cgroupfs import frozen
        f = await asyncio.to_thread(frozen, c.state.pid)
        if f is None:
            return
        want = Status.PAUSED if f else Status.RUNNING
        if c.state.status != want:
            log.warning("container %s: the freezer says %s, the record said %s: the record follows the kernel",
                        c.id[:12], want.value, c.state.status.value)
            c.state.to(want)
            self._persist(c)

    async def unpause(self, ref: str) -> None:
        """`POST /containers/{id}/unpause`."""
        c = self.lookup(ref)
        async with c.lock:
            await self._settle_freezer(c)
            if c.state.status != Status.PAUSED:
                raise Conflict(f"Container {c.id} is not paused")
            await self._freeze(c, False)
        self.on_event("unpause", c, {})

    async def _freeze(self, c: Container, on: bool) -> None:
        rt = self.runtimes[c.cfg.runtime]
        try:
            rc, _, err = await self.monitor_of(c).runtime(rt.describe(), ["pause" if on else "resume", c.id])
        except (OSError, EngineError):
            # the answer was lost (a monitor killed under it), not necessarily the act
            await self._settle_freezer(c)
            raise
        if rc != 0:
            await self._settle_freezer(c)
            raise SystemError_(f"Cannot {'pause' if on else 'unpause'} container {c.id}: {err.strip()}")
        if c.state.status in (Status.RUNNING, Status.PAUSED):
            c.state.to(Status.PAUSED if on else Status.RUNNING)
            self._persist(c)

    async def stop(self, ref: str, timeout: int | None = None) -> None:
        """`POST /containers/{id}/stop`: StopSignal, then SIGKILL after the timeout."""
        c = self.lookup(ref)
        self._mark_stopped_by_hand(c)
        if self._cancel_restart(c):
            self.on_event("stop", c, {})
            return
        await self._settled(c)
        if not c.state.running:
            raise NotModified("container already stopped")
        await self._stop(c, timeout)

    def _mark_stopped_by_hand(self, c: Container) -> None:
        """`stop`/`kill` through the API: restart policies leave the container alone (not when
        the daemon itself stops containers on its way down)."""
        if not self.shutting_down and c.state.status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING):
            c.state.manually_stopped = True
            self._persist(c)

    async def _stop(self, c: Container, timeout: int | None) -> None:
        if timeout is None:
            st = c.cfg.config.get("StopTimeout")
            timeout = st if isinstance(st, int) else 10
        done = self._exit_future(c)
        sig = create_mod.parse_signal(c.cfg.config.get("StopSignal") or "SIGTERM")
        await self._signal(c, sig)
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout=timeout if timeout >= 0 else None)
        except TimeoutError:
            await self._signal(c, signal.SIGKILL)
            await self._wait_exit(c, done)
        self.on_event("stop", c, {})

    async def restart(self, ref: str, timeout: int | None = None) -> None:
        """`POST /containers/{id}/restart`."""
        c = self.lookup(ref)
        self._mark_stopped_by_hand(c)
        self._cancel_restart(c)
        await self._settled(c)
        if c.state.running:
            await self._stop(c, timeout)
        await self.start(c.id)  # RestartCount counts policy restarts only, as in Docker
        self.on_event("restart", c, {})

    async def wait(self, ref: str, condition: str = "not-running") -> ContainerState:
        """`POST /containers/{id}/wait`."""
        if condition not in ("", "not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        c = self.lookup(ref)
        if condition == "removed":
            if c.removed:
                return c.state
            f: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            c.remove_waiters.append(f)
            await f
            return c.state
        if condition in ("", "not-running") and not c.state.running:
            return c.state
        return await asyncio.shield(self._exit_future(c))

    # --- remove / rename / prune -----------------------------------------------------------
    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """`DELETE /containers/{id}`."""
        c = self.lookup(ref)
        if c.state.status == Status.RESTARTING:
            if not force:
                raise Conflict(f"You cannot remove a restarting container {c.id}. Stop the container before "
                               "attempting removal or force remove")
            self._cancel_restart(c)
            await self._settled(c)
        for _ in range(10):   # a restart in flight (restart, health-on-failure) may start it again
            if c.state.running:
                if not force:
                    raise Conflict(f"You cannot remove a running container {c.id}. Stop the container before "
                                   "attempting removal or force remove")
                c.state.manually_stopped = True   # its exit must not trigger a policy restart
                await self._kill_and_wait(c)
            await c.lock.acquire()
            if not c.state.running:
                break
            c.lock.release()
        else:
            raise Conflict(f"container {c.id} keeps being started: it cannot be removed now")
        try:
            if c.removed:
                return
            if c.state.status == Status.REMOVING:
                raise Conflict(f"removal of container {c.id} is already in progress")
            c.state.to(Status.REMOVING)
            try:
                await self._cleanup_runtime(c)
                later = await asyncio.to_thread(self._remove_files, c.id)   # file walks stay off the event loop
            except BaseException:
                # as dockerd: a removal that failed leaves the container Dead; rm -f tries again
                c.state.to(Status.DEAD)
                self._persist(c)
                raise
            self.meta.delete_container(c.id)
            self.by_id.pop(c.id, None)
            c.removed = True
            if volumes and c.cfg.mounts and self.volumes is not None:
                try:
                    await asyncio.to_thread(self.volumes.remove_anonymous, c)
                except (OSError, EngineError) as e:
                    log.warning("removing the anonymous volumes of %s: %s", c.id[:12], e)
        finally:
            c.lock.release()
        for f in c.remove_waiters:
            if not f.done():
                f.set_result(None)
        for w in c.exit_waiters:
            if not w.done():
                w.set_result(c.state)
        self.on_event("destroy", c, {})
        # the deletion itself (rm -rf: ~5 ms even for a tiny container) after the answer
        self._spawn(asyncio.to_thread(trash.purge_all, later))
        with contextlib.suppress(EngineError, OSError):   # clients still waiting for a start
            await self.monitor_of(c).request({"op": "forget", "id": c.id})

    async def remove_link(self, ref: str) -> None:
        """`DELETE /containers/PARENT/ALIAS?link=1`: the parent's legacy link of that alias goes
        (from HostConfig.Links and from its endpoints' links); dockerd's words when there is none."""
        parent_ref, _, alias = ref.strip("/").rpartition("/")
        if not parent_ref or not alias:
            raise InvalidArgument(f"Conflict, cannot remove the default link name: {ref}")
        c = self.lookup(parent_ref)
        async with c.lock:
            def other(x: str) -> bool:
                return networking.parse_link(x)[1] != alias
            links = list(c.cfg.host_config.get("Links") or [])
            keep = [x for x in links if other(x)]
            nets = {n: {**conf, "Links": [x for x in conf.get("Links") or [] if other(x)] or None}
                    if conf.get("Links") else conf for n, conf in c.cfg.networks.items()}
            if keep == links and nets == c.cfg.networks:
                raise NotFound(f"Could not find entity for {ref}")
            c.cfg = dataclasses.replace(c.cfg, host_config={**c.cfg.host_config, "Links": keep or None}, networks=nets)
            self.meta.update_container_config(c.id, c.cfg.to_json())

    def rename(self, ref: str, new: str) -> None:
        """`POST /containers/{id}/rename`."""
        c = self.lookup(ref)
        new = names.validate(new)
        if new == c.name:
            raise Conflict('Renaming a container with the same name as its current name')
        self._check_name_free(new)
        self.meta.rename_container(c.id, new)
        old, c.name = c.name, new
        self.on_event("rename", c, {"oldName": "/" + old})

    async def prune(self, pred: Callable[[Container], bool]) -> tuple[builtins.list[str], int]:
        """`POST /containers/prune`: remove stopped containers that match."""
        deleted, space = [], 0
        for c in list(self.by_id.values()):
            if c.state.running or c.state.status == Status.REMOVING or not pred(c):
                continue
            size = self.rw_size(c)
            try:
                await self.remove(c.id)
            except EngineError:
                continue
            deleted.append(c.id)
            space += size
        return deleted, space

    def rw_size(self, c: Container) -> int:
        """Bytes in the container's writable layer."""
        try:
            return self.snapshots.usage(c.id)
        except NotFound:
            return 0

    # --- logs and attach ---------------------------------------------------------------------
    def log_driver_of(self, c: Container) -> str:
        return str((c.cfg.host_config.get("LogConfig") or {}).get("Type") or logconfig.DRIVER)

    def log_path(self, c: Container) -> str:
        """The log file of a container; 501 as dockerd's when its driver keeps none to read."""
        driver = self.log_driver_of(c)
        if driver == "none":
            raise NotImplemented_("configured logging driver does not support reading")
        if driver == "cri":
            return str((c.cfg.host_config.get("LogConfig") or {}).get("Config", {}).get("path"))
        return str(self.paths.log(c.id, driver))

    def _log_spec(self, c: Container) -> dict[str, Any]:
        """What the monitor needs to write the container's log."""
        lc = c.cfg.host_config.get("LogConfig") or {}
        driver = self.log_driver_of(c)
        img = c.cfg.config.get("Image") or c.cfg.image_ref
        info = {"ID": c.id[:12], "FullID": c.id, "Name": c.name, "ImageID": c.cfg.image_id.split(":")[-1][:12],
                "ImageFullID": c.cfg.image_id, "ImageName": str(img), "DaemonName": "docker"}
        return logconfig.writer_spec(lc, str(self.paths.log(c.id, driver)), c.cfg.config.get("Labels") or {},
                                     list(c.cfg.config.get("Env") or []), info)

    async def reopen_log(self, ref: str) -> None:
        """Have the monitor write a running container's log to a new file at its path (after a rotation)."""
        c = self.lookup(ref)
        if not c.state.running:
            raise Conflict(f"container {c.id} is not running")
        rep = await self.monitor_of(c).request({"op": "reopen_log", "id": c.id})
        if rep.get("error"):
            raise SystemError_(rep["error"])

    async def attach(self, c: Container, stdin: bool = False) -> Channel:
        """A channel to a container: its output from now until it exits and, if asked and the
        container keeps stdin open, its stdin."""
        running = c.state.status in (Status.RUNNING, Status.PAUSED)
        # before a start: to the monitor that will run it (the start finds the attach there)
        monitor = self.monitor_of(c) if running else await self._place(c)
        return await monitor.attach(c.id, stdin=stdin and bool(c.cfg.config.get("OpenStdin")), running=running)

    async def resize(self, ref: str, h: int, w: int) -> None:
        """`POST /containers/{id}/resize`."""
        c = self.lookup(ref)
        check_size(h, w)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        if not c.cfg.config.get("Tty"):
            raise Conflict(f"Container {c.id} has no terminal (it was created without -t)")
        try:
            await self.monitor_of(c).resize(c.id, h, w)
        except SystemError_ as e:
            raise Conflict(f"cannot resize container {c.id}: {e.message}") from None

    # --- start-up and shut-down --------------------------------------------------------------
    async def load_and_reconcile(self) -> None:
        """Load containers from metadata; settle whatever happened while the daemon was away."""
        for row in self.meta.containers():
            cfg = ContainerConfig(**json.loads(row["config"]))
            st = ContainerState.from_json(json.loads(row["state"]))
            self.by_id[cfg.id] = Container(cfg, st, row["name"])
        # group 0, the groups of running containers (a dead monitor's is started again and adopts
        # them), and any group whose monitor an earlier daemon left running; not the empty rest
        groups = {0, *(c.state.monitor for c in self.by_id.values() if c.state.running),
                  *(g for g in self.groups.known() if self.groups.alive(g))}
        alive = set()
        for g in sorted(groups):
            await self._follow_group(g)
            listing = await self.groups.client(g).request({"op": "list"})
            alive |= {x["id"] for x in listing.get("containers", []) if x.get("running")}
        # export/cp views a crash left (one read of the mount table for all containers)
        for m in mnt.mounts_under(str(self.paths.data_root / "containers")):
            if os.path.basename(m).startswith("view-"):
                mnt.unmount(m)
                with contextlib.suppress(OSError):
                    os.rmdir(m)
        for c in list(self.by_id.values()):
            if c.state.status == Status.REMOVING:
                c.state.status = Status.EXITED
                await self.remove(c.id, force=True)
                continue
            if not c.state.running:
                if mnt.is_mounted(str(self.paths.rootfs(c.id))):
                    await self._cleanup_runtime(c)
                continue
            ev = self._recorded_exit(c)
            if ev is not None:
                await self._on_exit(ev)
            elif c.id in alive:
                self.stdio.hold(c.id, self.paths.bundle(c.id))
                await self._thaw_after_crash(c)
                await self._settle_freezer(c)
        for g in sorted(groups):
            await self._adopt_orphans(g)   # a monitor lost while the daemon was down
        if self.networks is not None:   # addresses and ports of running containers; the rest of ours goes
            for c in self.by_id.values():
                if (c.state.endpoints or c.state.sandbox) and not c.state.running:
                    c.state.endpoints, c.state.sandbox = {}, ""
                    self._persist(c)
            for c in self.by_id.values():
                if c.state.running and c.state.sandbox and c.state.pid and \
                        not await asyncio.to_thread(netns.rebind, c.state.sandbox, c.state.pid):
                    log.info("network namespace of %s bound again from its process", c.id[:12])
            nets = self.networks.nets
            for n in nets.bridges():
                assert n.bridge is not None
                await asyncio.to_thread(n.bridge.restore, self._endpoints(n.name))
            await asyncio.to_thread(nets.drop_sandboxes_except,
                                    {c.id for c in self.by_id.values() if c.state.running and c.state.sandbox})
            for c in self.by_id.values():
                if c.state.running:
                    try:
                        await self.networks.serve_dns(c)
                    except OSError as e:
                        log.warning("the embedded DNS of %s: %s", c.id[:12], e)
            self._fw_task = asyncio.create_task(self._watch_firewall())
        self._spawn(asyncio.to_thread(trash.empty, self.paths.data_root / "trash"))   # what a crash left
        self._remove_leftovers()
        await self._remove_runtime_leftovers()
        for c in list(self.by_id.values()):
            if c.state.status == Status.RESTARTING:   # the daemon went down during a restart delay
                c.state.to(Status.EXITED)
                self._persist(c)
            if not c.state.running and c.state.status == Status.EXITED and restart.start_at_boot(
                    c.cfg.host_config.get("RestartPolicy") or {}, c.state.exit_code, c.state.manually_stopped,
                    not c.state.started_at.startswith("0001")):
                self._spawn(self._boot_start(c))

    def _endpoints(self, network: str) -> dict[str, dict[str, Any]]:
        """The running containers' endpoints on a network (the gateway bridge's are those an
        overlay endpoint holds)."""
        out = {c.id: c.state.endpoints[network] for c in self.by_id.values()
               if c.state.running and network in c.state.endpoints}
        for c in self.by_id.values():
            for ep in c.state.endpoints.values() if c.state.running else ():
                if ep.get("gw") and ep["gw"].get("bridge") == self._bridge_name(network):
                    out[c.id] = ep["gw"]
        return out

    def _bridge_name(self, network: str) -> str:
        try:
            br = self.networks.nets.get(network).bridge if self.networks is not None else None
        except NotFound:
            return ""
        return br.cfg.name if br is not None else ""

    async def _watch_firewall(self) -> None:
        """Every second: if the bridge or a rule of ours is gone (a firewall flush, a firewalld
        reload, a deleted link), make them again — dockerd does not (moby #12294)."""
        while not self.shutting_down:
            await asyncio.sleep(FIREWALL_CHECK)
            try:
                if any(c.lock.locked() for c in self.by_id.values()) or self.net.nets.lock.locked():
                    continue   # a start, stop or network change is changing the rules: next time
                for n in self.net.nets.bridges():
                    if not await asyncio.to_thread(self.net.nets.repair, n, self._endpoints(n.name)):
                        log.warning("the bridge of network %s or its firewall rules were changed behind our back: "
                                    "made again", n.name)
            except (OSError, EngineError) as e:
                log.warning("checking the firewall rules: %s", e)

    async def _adopt_orphans(self, group: int) -> None:
        """Running containers of a group that its monitor does not know: adopted if their init
        still runs in their cgroup, else recorded as exited (code 255, with the reason)."""
        from .cgroupfs import dirs
        monitor = self.groups.client(group)
        listing = await monitor.request({"op": "list"})
        known = {x["id"] for x in listing.get("containers", [])}
        for c in list(self.by_id.values()):
            if not c.state.running or c.state.monitor != group or c.id in known or self._recorded_exit(c) is not None:
                continue
            alive = bool(c.state.pid) and any(c.id in d for d in dirs(c.state.pid).values())
            if alive:
                bundle = self.paths.bundle(c.id)
                log.info("the new monitor adopts %s (pid %d)", c.id[:12], c.state.pid)
                if not c.lock.locked():   # a pause or unpause in flight settles it itself
                    await self._settle_freezer(c)
                self.stdio.hold(c.id, bundle)
                await monitor.request({"op": "adopt", "id": c.id, "pid": c.state.pid, "bundle": str(bundle),
                                            "log": self._log_spec(c),
                                            "exit_file": str(bundle / "exit.json"),
                                            "cgroup": self._cgroup_path(c),
                                            "runtime": self.runtimes[c.cfg.runtime].describe()})
            else:
                log.info("%s exited while no monitor watched it: exit code unknown", c.id[:12])
                self._spawn(self._on_exit({"id": c.id, "exit_code": 255, "finished_at": now_iso(),
                                           "oom_killed": False, "lost": True}))

    async def _boot_start(self, c: Container) -> None:
        try:
            await self.start(c.id)
        except EngineError as e:
            log.warning("starting %s at daemon start (restart policy) failed: %s", c.id[:12], e.message)

    async def _remove_runtime_leftovers(self) -> None:
        """Runtime state (and so cgroups, processes) of containers the engine does not know."""
        for rt in self.runtimes.values():
            if not os.path.isdir(rt.root):
                continue
            for cid in os.listdir(rt.root):
                if cid.startswith(".") or cid in self.by_id:
                    continue
                log.info("removing runtime leftovers of unknown container %s (%s)", cid, rt.name)
                await self._rt_delete(rt, cid)

    def _remove_leftovers(self) -> None:
        """Container directories and snapshots that belong to no known container."""
        for base in (self.paths.data_root / "containers", self.paths.exec_root / "containers"):
            if not base.exists():
                continue
            for d in base.iterdir():
                if d.name not in self.by_id:
                    for m in mnt.mounts_under(str(d)):
                        mnt.unmount(m)
                    shutil.rmtree(d, ignore_errors=True)
        for key in self.meta.snapshots_of_kind("active"):
            if key not in self.by_id:
                self.snapshots.remove(key)

    @staticmethod
    async def _settled_lock(c: Container) -> None:
        async with c.lock:
            pass

    async def shutdown(self, live_restore: bool) -> None:
        """Without live-restore, stop every container (as dockerd does) and end the monitor."""
        self.shutting_down = True
        if self._fw_task is not None:
            self._fw_task.cancel()
        for c in self.by_id.values():
            if c.restart_task is not None:
                c.restart_task.cancel()
        if self._watchers:
            # operations in flight (a start, say) finish first, or they would leave what they made
            busy = [c for c in self.by_id.values() if c.lock.locked()]
            if busy:
                await asyncio.wait([asyncio.create_task(self._settled_lock(c)) for c in busy], timeout=30)
            running = [c for c in self.by_id.values() if c.state.running]
            if not live_restore:
                await asyncio.gather(*(self._stop(c, None) for c in running), return_exceptions=True)
                for c in running:   # an exit not handled in time: its mounts and cgroup go all the same
                    gone = not c.state.running or not os.path.exists(f"/proc/{c.state.pid}")
                    if gone and mnt.is_mounted(str(self.paths.rootfs(c.id))):
                        with contextlib.suppress(OSError, EngineError):
                            await self._cleanup_runtime(c)
                for g in list(self._watchers):
                    try:
                        await self.groups.client(g).request({"op": "shutdown"})
                    except EngineError:
                        pass
                from ..runtime.cgroups import remove_if_empty
                remove_if_empty(self.cgroup_parent)   # nothing of ours runs any more
            # bridges and their rules serve no one once no container holds an endpoint (with
            # live-restore too: kept only for running containers); made again at the next start
            if self.networks is not None and not any(c.state.endpoints for c in self.by_id.values()):
                self.networks.dns.stop_all()
                for n in self.networks.nets.bridges():
                    assert n.bridge is not None
                    with contextlib.suppress(OSError, EngineError):
                        await asyncio.to_thread(n.bridge.teardown)
            for t in self._watchers.values():
                t.cancel()
