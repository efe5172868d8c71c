"""Pod sandboxes and their containers over the engine's container service.

What the CRI needs beyond the engine's own record (the CRI config as kubelet sent it, the pod's
network namespace, the CNI result, host ports, creation time in nanoseconds) is kept in one JSON
file per sandbox and per container under `<data-root>/cri/`, written atomically."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ..errors import Conflict, EngineError, InvalidArgument, NotFound
from ..network import netns
from ..network.firewall import Port, Rules, set_sysctl
from . import cni, fields
from .proto import runtime_v1_pb2 as pb

log = logging.getLogger(__name__)
KIND = "io.dockyard.cri.kind"
SANDBOX = "io.dockyard.cri.sandbox"


def _now_ns() -> int:
    return time.time_ns()


def _ts(iso: str) -> int:
    """An engine timestamp (RFC 3339, ns) → ns since the epoch; 0 for Go's zero time."""
    if not iso or iso.startswith("0001-"):
        return 0
    from ..units import unix_seconds
    base = unix_seconds(iso)
    frac = iso.split(".", 1)[1].rstrip("Z") if "." in iso else "0"
    return base * 1_000_000_000 + int((frac + "000000000")[:9])


class Records:
    """`<dir>/<id>.json`, written atomically; read once at start and kept in memory (this daemon is their
    only writer), so lists and status answer without touching the disk."""

    def __init__(self, d: Path) -> None:
        self.d = d
        d.mkdir(parents=True, exist_ok=True)
        self.cache: dict[str, dict[str, Any]] = {}
        for p in d.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                rec = json.loads(p.read_text())
                self.cache[rec["id"]] = rec

    def put(self, rid: str, rec: dict[str, Any]) -> None:
        tmp = self.d / f".{rid}.tmp"
        tmp.write_text(json.dumps(rec))
        os.replace(tmp, self.d / f"{rid}.json")
        self.cache[rid] = rec

    def get(self, rid: str) -> dict[str, Any] | None:
        return self.cache.get(rid)

    def drop(self, rid: str) -> None:
        (self.d / f"{rid}.json").unlink(missing_ok=True)
        self.cache.pop(rid, None)

    def all(self) -> list[dict[str, Any]]:
        return list(self.cache.values())


def _enc(msg: Any) -> str:
    return base64.b64encode(msg.SerializeToString()).decode()


@functools.lru_cache(maxsize=4096)
def _decoded(cls: Any, text: str) -> Any:
    m = cls()
    m.ParseFromString(base64.b64decode(text))
    return m


def _dec(cls: Any, text: str) -> Any:
    """A recorded CRI message (decoded once; callers get their own copy to change)."""
    m = cls()
    m.CopyFrom(_decoded(cls, text))
    return m


class Pods:
    """The CRI's RuntimeService over one engine."""

    def __init__(self, containers: Any, images: Any, execs: Any, state_dir: Path, run_dir: Path,
                 net: cni.Cni, holder_image: Any) -> None:
        self.containers, self.images, self.execs = containers, images, execs
        self.sandboxes = Records(state_dir / "sandboxes")
        self.ctrs = Records(state_dir / "containers")
        self.netns_dir = run_dir / "netns"
        self.net = net
        self.holder_image = holder_image   # async () -> (image ref, is Dockyard's holder)
        self.locks: dict[str, asyncio.Lock] = {}
        self.held: dict[str, str] = {}   # sandbox → the network namespace made for it (the engine joins it)
        containers.netns_of = self.held.get

    def _lock(self, sid: str) -> asyncio.Lock:
        return self.locks.setdefault(sid, asyncio.Lock())

    # ---- lookups ----------------------------------------------------------------------------
    @staticmethod
    def _find(records: Records, ref: str, what: str) -> dict[str, Any]:
        """By full ID, or by a prefix that names exactly one (as crictl abbreviates IDs)."""
        rec = records.get(ref) if len(ref) == 64 else None
        if rec is None:
            hits = [r for r in records.all() if r["id"].startswith(ref)] if ref else []
            if len(hits) != 1:
                raise NotFound(f"{what} {ref!r} not found")
            rec = hits[0]
        return rec

    def _sandbox(self, ref: str) -> dict[str, Any]:
        return self._find(self.sandboxes, ref, "pod sandbox")

    def _container(self, ref: str) -> dict[str, Any]:
        return self._find(self.ctrs, ref, "container")

    def running_netns(self, ref: str) -> tuple[dict[str, Any], str]:
        """A running sandbox's record and the path of its network namespace (Conflict when it is not running)."""
        rec = self._sandbox(ref)
        c = self._engine(rec["id"])
        if c is None or not c.state.running:
            raise Conflict(f"pod sandbox {rec['id']} is not running")
        return rec, rec.get("netns") or f"/proc/{c.state.pid}/ns/net"

    def _engine(self, cid: str) -> Any | None:
        try:
            return self.containers.lookup(cid)
        except NotFound:
            return None

    # ---- sandboxes ---------------------------------------------------------------------------
    async def run_sandbox(self, req: pb.RunPodSandboxRequest) -> str:
        if req.runtime_handler and req.runtime_handler not in self.containers.runtimes:
            raise InvalidArgument(f"runtime_handler: no runtime named {req.runtime_handler!r} "
                                  f"(have: {', '.join(sorted(self.containers.runtimes))})")
        cfg = req.config
        image, holder = await self.holder_image()
        body = fields.sandbox_body(cfg, image, holder)
        ns = cfg.linux.security_context.namespace_options
        if ns.network == pb.POD and self.net.config is None:
            self.net.reload()
            if self.net.config is None:
                raise InvalidArgument(f"network not ready: {self.net.why}")
        if req.runtime_handler:
            body["HostConfig"]["Runtime"] = req.runtime_handler
        labels = body["Labels"]
        labels.update({KIND: "sandbox", "io.kubernetes.pod.name": cfg.metadata.name,
                       "io.kubernetes.pod.namespace": cfg.metadata.namespace, "io.kubernetes.pod.uid": cfg.metadata.uid})
        t0 = time.perf_counter()
        try:
            c = await self.containers.create(fields.sandbox_name(cfg.metadata), body)
        except Conflict as e:
            raise Conflict(f"pod sandbox name {fields.sandbox_name(cfg.metadata)!r} is already in use: {e.message}") \
                from None
        rec: dict[str, Any] = {"id": c.id, "config": _enc(cfg), "created": _now_ns(), "handler": req.runtime_handler,
                               "network": ns.network, "pid": ns.pid, "ipc": ns.ipc,
                               "cgroup_parent": cfg.linux.cgroup_parent,
                               "privileged": cfg.linux.security_context.privileged,
                               "netns": "", "cni": None, "ips": [], "ports": [], "state": "starting"}
        self.sandboxes.put(c.id, rec)
        async with self._lock(c.id):
            try:
                t1 = time.perf_counter()
                if ns.network == pb.POD:
                    # the namespace first: CNI wires it while the holder starts in it
                    path = str(self.netns_dir / c.id)
                    rec["netns"] = path
                    self.sandboxes.put(c.id, rec)   # the intent first: a crash from here on, recovery releases it
                    await asyncio.to_thread(netns.create_in_thread, path)
                    self.held[c.id] = path
                    results = await asyncio.gather(self.containers.start(c.id), self._network_up(rec, cfg),
                                                   return_exceptions=True)
                    for r in results:
                        if isinstance(r, BaseException):
                            raise r
                else:
                    await self.containers.start(c.id)
                await self._pod_limits(rec, cfg.linux.resources, cfg.linux.overhead, "config.linux")
                rec["state"] = "ready"
                self.sandboxes.put(c.id, rec)
                log.info("sandbox %s ready in %.1f ms (create %.1f ms)", c.id[:12], (time.perf_counter() - t1) * 1000,
                         (t1 - t0) * 1000)
            except BaseException:
                with contextlib.suppress(EngineError, OSError):
                    await self._network_down(rec)
                with contextlib.suppress(EngineError):
                    await self.containers.remove(c.id, force=True)
                self.sandboxes.drop(c.id)
                self.held.pop(c.id, None)
                raise
        return str(c.id)

    async def _pod_limits(self, rec: dict[str, Any], res: pb.LinuxContainerResources,
                          overhead: pb.LinuxContainerResources, where: str) -> None:
        """The pod's cgroup sized from its resources and overhead (as kubelet sizes it)."""
        limits = fields.pod_limits(res, overhead, rec.get("cgroup_parent") or "", where)
        if any(limits.values()):
            from ..containers import cgroupfs
            rec["limits"] = await asyncio.to_thread(cgroupfs.set_parent_limits, rec["cgroup_parent"], **limits)

    async def update_sandbox_resources(self, req: pb.UpdatePodSandboxResourcesRequest) -> None:
        fields.check_unknown(req, "request")
        rec = self._sandbox(req.pod_sandbox_id)
        if self._sandbox_state(rec) != pb.SANDBOX_READY:
            raise Conflict(f"pod sandbox {rec['id']} is not ready")
        async with self._lock(rec["id"]):
            await self._pod_limits(rec, req.resources, req.overhead, "")
            self.sandboxes.put(rec["id"], rec)

    async def _network_up(self, rec: dict[str, Any], cfg: pb.PodSandboxConfig) -> None:
        """CNI ADD into the sandbox's namespace; host ports."""
        path = rec["netns"]
        conf = self.net.config
        assert conf is not None
        ports = [{"hostPort": p.host_port, "containerPort": p.container_port,
                  "protocol": "udp" if p.protocol == pb.UDP else "tcp", "hostIP": p.host_ip}
                 for p in cfg.port_mappings if p.host_port]
        runtime: dict[str, Any] = {}
        by_cni = conf.capable("portMappings")
        if ports and by_cni:
            runtime["portMappings"] = ports
        pod = cni.Pod(rec["id"], path, cfg.metadata.name, cfg.metadata.namespace, cfg.metadata.uid)
        # the intent first: a crash during ADD leaves a record that DEL (with this configuration) undoes
        rec["cni"] = {"config": conf.raw, "result": {}, "runtime": runtime}
        self.sandboxes.put(rec["id"], rec)
        rec["cni"] = await asyncio.to_thread(self.net.add, pod, runtime)
        rec["ips"] = cni.ips(rec["cni"]["result"])
        self.sandboxes.put(rec["id"], rec)
        if ports and not by_cni:
            if not rec["ips"]:
                raise InvalidArgument("config.port_mappings: the pod has no IP to forward host ports to")
            rec["ports"] = ports
            rec["bridge"] = conf.bridge_name()
            rec["subnet"] = _subnet(rec["cni"]["result"])
            self.sandboxes.put(rec["id"], rec)
            await asyncio.to_thread(_publish, rec)

    async def _network_down(self, rec: dict[str, Any]) -> None:
        """CNI DEL and the host ports' rules; the namespace unpinned. Idempotent."""
        if rec.get("ports"):
            last = not any(r.get("ports") and r.get("bridge") == rec.get("bridge") and r["id"] != rec["id"]
                           for r in self.sandboxes.all())
            await asyncio.to_thread(_unpublish, rec, last)
            rec["ports"] = []
        if rec.get("netns"):
            if rec.get("cni") is not None:
                md = _dec(pb.PodSandboxConfig, rec["config"]).metadata
                # a namespace that is gone (or never made) is named as none: DEL still releases the address
                held = await asyncio.to_thread(_is_netns, rec["netns"])
                pod = cni.Pod(rec["id"], rec["netns"] if held else "", md.name, md.namespace, md.uid)
                await asyncio.to_thread(self.net.delete, pod, rec["cni"])
                rec["cni"] = None
            await asyncio.to_thread(_unpin_netns, rec["netns"])
            self.held.pop(rec["id"], None)
            rec["netns"] = ""
            rec["ips"] = []
        self.sandboxes.put(rec["id"], rec)

    async def stop_sandbox(self, sid: str) -> None:
        """Idempotent: an unknown ID is success, as the CRI says."""
        try:
            rec = self._sandbox(sid)
        except NotFound:
            return
        async with self._lock(rec["id"]):
            await self._stop_all(rec)

    async def _stop_all(self, rec: dict[str, Any]) -> None:
        """The intent first (a crash in the middle: recovery finishes the stop), then containers, network,
        holder."""
        if rec.get("state") != "stopped":
            rec["state"] = "stopping"
            self.sandboxes.put(rec["id"], rec)
        for crec, _ in self.matching_containers(sandbox=rec["id"]):
            await self._stop_container(crec, 0)
        await self._network_down(rec)
        c = self._engine(rec["id"])
        if c is not None and c.state.running:
            await self.containers.stop(rec["id"], 10)
        rec["state"] = "stopped"
        self.sandboxes.put(rec["id"], rec)

    async def remove_sandbox(self, sid: str) -> None:
        try:
            rec = self._sandbox(sid)
        except NotFound:
            return
        for crec, _ in self.matching_containers(sandbox=rec["id"]):
            await self.remove_container(crec["id"])
        async with self._lock(rec["id"]):
            await self._network_down(rec)
            if self._engine(rec["id"]) is not None:
                await self.containers.remove(rec["id"], force=True)
            self.sandboxes.drop(rec["id"])
        self.locks.pop(rec["id"], None)

    def _sandbox_state(self, rec: dict[str, Any]) -> int:
        c = self._engine(rec["id"])
        ready = rec.get("state") == "ready" and c is not None and c.state.running
        return pb.SANDBOX_READY if ready else pb.SANDBOX_NOTREADY

    def sandbox_status(self, sid: str, verbose: bool) -> pb.PodSandboxStatusResponse:
        rec = self._sandbox(sid)
        cfg = _dec(pb.PodSandboxConfig, rec["config"])
        st = pb.PodSandboxStatus(id=rec["id"], metadata=cfg.metadata, state=self._sandbox_state(rec),  # type: ignore[arg-type]
                                 created_at=rec["created"], labels=dict(cfg.labels), annotations=dict(cfg.annotations),
                                 runtime_handler=rec.get("handler") or "")
        ips = rec.get("ips") or []
        if ips and st.state == pb.SANDBOX_READY:
            st.network.ip = ips[0]
            for ip in ips[1:]:
                st.network.additional_ips.add(ip=ip)
        opts = st.linux.namespaces.options
        opts.network, opts.pid, opts.ipc = rec["network"], rec["pid"], rec["ipc"]
        out = pb.PodSandboxStatusResponse(status=st, timestamp=_now_ns())
        if verbose:
            c = self._engine(rec["id"])
            out.info["info"] = json.dumps({"pid": c.state.pid if c else 0, "netns": rec.get("netns", ""),
                                           "cni": rec.get("cni"), "hostPorts": rec.get("ports", []),
                                           "podCgroupLimits": rec.get("limits", {}),
                                           "engineContainer": rec["id"]})
        return out

    def matching_sandboxes(self, sid: str = "",
                           labels: Any = None) -> list[tuple[dict[str, Any], pb.PodSandboxConfig]]:
        """(record, config as sent) of the sandboxes whose ID starts as given and that carry the labels."""
        out = []
        for rec in self.sandboxes.all():
            if sid and not rec["id"].startswith(sid):
                continue
            cfg = _dec(pb.PodSandboxConfig, rec["config"])
            if labels and any(cfg.labels.get(k) != v for k, v in labels.items()):
                continue
            out.append((rec, cfg))
        return out

    def list_sandboxes(self, f: pb.PodSandboxFilter | None) -> list[pb.PodSandbox]:
        if f is None:
            f = pb.PodSandboxFilter()
        out = []
        for rec, cfg in self.matching_sandboxes(f.id, f.label_selector):
            state = self._sandbox_state(rec)
            if f.HasField("state") and f.state.state != state:
                continue
            out.append(pb.PodSandbox(id=rec["id"], metadata=cfg.metadata, state=state,  # type: ignore[arg-type]
                                     created_at=rec["created"], labels=dict(cfg.labels),
                                     annotations=dict(cfg.annotations), runtime_handler=rec.get("handler") or ""))
        return sorted(out, key=lambda s: s.created_at)

    # ---- containers ----------------------------------------------------------------------------
    async def create_container(self, req: pb.CreateContainerRequest) -> str:
        rec = self._sandbox(req.pod_sandbox_id)
        if self._sandbox_state(rec) != pb.SANDBOX_READY:
            raise Conflict(f"pod sandbox {rec['id']} is not ready")
        cfg = req.config
        pcfg = _dec(pb.PodSandboxConfig, rec["config"])
        log_path = os.path.join(pcfg.log_directory, cfg.log_path) if cfg.log_path else ""
        if cfg.log_path and not os.path.isabs(log_path):
            raise InvalidArgument("config.log_path: with the sandbox's log_directory it must make an absolute path")
        image = self._image_ref(cfg.image)
        body = fields.container_body(cfg, rec["id"], rec, image, log_path)
        body["Labels"].update({KIND: "container", SANDBOX: rec["id"],
                               "io.kubernetes.container.name": cfg.metadata.name,
                               "io.kubernetes.pod.name": pcfg.metadata.name,
                               "io.kubernetes.pod.namespace": pcfg.metadata.namespace,
                               "io.kubernetes.pod.uid": pcfg.metadata.uid})
        if rec.get("handler"):
            body["HostConfig"]["Runtime"] = rec["handler"]
        for m in body["HostConfig"].get("Mounts") or []:   # as containerd: a missing host directory is made
            if not os.path.exists(m["Source"]):
                await asyncio.to_thread(os.makedirs, m["Source"], 0o755, True)
        name = fields.container_name(cfg.metadata, pcfg.metadata)
        try:
            c = await self.containers.create(name, body)
        except Conflict as e:
            raise Conflict(f"container name {name!r} is already in use: {e.message}") from None
        self.ctrs.put(c.id, {"id": c.id, "sandbox": rec["id"], "config": _enc(cfg), "created": _now_ns(),
                             "log_path": log_path, "image": cfg.image.image})
        return str(c.id)

    def _image_ref(self, spec: pb.ImageSpec) -> str:
        if not spec.image:
            raise InvalidArgument("config.image.image: an image is required")
        try:
            return str(self.images.resolve(spec.image).id)
        except NotFound:
            raise NotFound(f"image {spec.image!r} not found: pull it first") from None

    async def start_container(self, cid: str) -> None:
        rec = self._container(cid)
        c = self._engine(rec["id"])
        if c is None:
            raise NotFound(f"container {cid!r} not found")
        if c.state.status.value != "created":
            raise Conflict(f"container {rec['id']} is in state {c.state.status.value}, not created")
        if rec.get("log_path"):
            await asyncio.to_thread(os.makedirs, os.path.dirname(rec["log_path"]), 0o755, True)
        await self.containers.start(rec["id"])

    async def _stop_container(self, crec: dict[str, Any], timeout: int) -> None:
        c = self._engine(crec["id"])
        if c is not None and c.state.running:
            await self.containers.stop(crec["id"], max(0, timeout))

    async def stop_container(self, cid: str, timeout: int) -> None:
        try:
            rec = self._container(cid)
        except NotFound:
            return
        await self._stop_container(rec, timeout)

    async def remove_container(self, cid: str) -> None:
        try:
            rec = self._container(cid)
        except NotFound:
            return
        if self._engine(rec["id"]) is not None:
            await self.containers.remove(rec["id"], force=True)
        self.ctrs.drop(rec["id"])

    def _container_state(self, c: Any) -> int:
        if c is None:
            return pb.CONTAINER_UNKNOWN
        s = c.state.status.value
        if s == "created":
            return pb.CONTAINER_CREATED
        if s in ("running", "paused", "restarting"):
            return pb.CONTAINER_RUNNING
        return pb.CONTAINER_EXITED

    def _short(self, rec: dict[str, Any]) -> pb.Container:
        cfg = _dec(pb.ContainerConfig, rec["config"])
        c = self._engine(rec["id"])
        image_id = c.cfg.image_id if c is not None else ""
        return pb.Container(id=rec["id"], pod_sandbox_id=rec["sandbox"], metadata=cfg.metadata,
                            image=pb.ImageSpec(image=rec.get("image") or cfg.image.image), image_ref=image_id,
                            image_id=image_id, state=self._container_state(c),  # type: ignore[arg-type]
                            created_at=rec["created"], labels=dict(cfg.labels), annotations=dict(cfg.annotations))

    def matching_containers(self, cid: str = "", sandbox: str = "",
                            labels: Any = None) -> list[tuple[dict[str, Any], pb.Container]]:
        """(record, summary) of the containers whose ID and sandbox ID start as given and that carry the labels."""
        out = []
        for rec in self.ctrs.all():
            if (cid and not rec["id"].startswith(cid)) or (sandbox and not rec["sandbox"].startswith(sandbox)):
                continue
            item = self._short(rec)
            if labels and any(item.labels.get(k) != v for k, v in labels.items()):
                continue
            out.append((rec, item))
        return out

    def list_containers(self, f: pb.ContainerFilter | None) -> list[pb.Container]:
        if f is None:
            f = pb.ContainerFilter()
        items = [item for _, item in self.matching_containers(f.id, f.pod_sandbox_id, f.label_selector)
                 if not f.HasField("state") or f.state.state == item.state]
        return sorted(items, key=lambda x: x.created_at)

    def container_status(self, cid: str, verbose: bool) -> pb.ContainerStatusResponse:
        rec = self._container(cid)
        cfg = _dec(pb.ContainerConfig, rec["config"])
        c = self._engine(rec["id"])
        short = self._short(rec)
        st = pb.ContainerStatus(id=rec["id"], metadata=cfg.metadata, state=short.state, created_at=rec["created"],
                                image=short.image, image_ref=short.image_ref, image_id=short.image_id,
                                labels=dict(cfg.labels), annotations=dict(cfg.annotations),
                                log_path=rec.get("log_path") or "", stop_signal=cfg.stop_signal)
        st.mounts.extend(cfg.mounts)
        if c is not None:
            st.started_at = _ts(c.state.started_at)
            if short.state == pb.CONTAINER_EXITED:
                # a process that exits at once can be reaped before its start was stamped: never before it
                st.finished_at = max(_ts(c.state.finished_at), st.started_at)
                st.exit_code = c.state.exit_code
                st.reason = "OOMKilled" if c.state.oom_killed else ("Completed" if c.state.exit_code == 0 else "Error")
                st.message = c.state.error or ""
            elif c.state.error:
                st.reason, st.message = "StartError", c.state.error
            r = st.resources.linux
            hc = c.cfg.host_config
            r.cpu_period, r.cpu_quota, r.cpu_shares = hc.get("CpuPeriod") or 0, hc.get("CpuQuota") or 0, hc.get("CpuShares") or 0
            r.memory_limit_in_bytes = hc.get("Memory") or 0
            r.memory_swap_limit_in_bytes = max(0, hc.get("MemorySwap") or 0)
            r.cpuset_cpus, r.cpuset_mems = hc.get("CpusetCpus") or "", hc.get("CpusetMems") or ""
            r.oom_score_adj = hc.get("OomScoreAdj") or 0
        out = pb.ContainerStatusResponse(status=st)
        if verbose and c is not None:
            out.info["info"] = json.dumps({"pid": c.state.pid, "engineName": c.name, "sandboxID": rec["sandbox"]})
        return out

    async def update_resources(self, cid: str, r: pb.LinuxContainerResources) -> None:
        rec = self._container(cid)
        await self.containers.update(rec["id"], fields.update_body(r))

    async def reopen_log(self, cid: str) -> None:
        rec = self._container(cid)
        if not rec.get("log_path"):
            raise InvalidArgument(f"container {rec['id']} has no log_path")
        await self.containers.reopen_log(rec["id"])

    async def exec_sync(self, cid: str, cmd: list[str], timeout: int) -> pb.ExecSyncResponse:
        """Run to completion, output collected; at the timeout the process is killed (exit code -1... as
        DeadlineExceeded)."""
        rec = self._container(cid)
        e = self.execs.create(rec["id"], {"Cmd": cmd, "AttachStdout": True, "AttachStderr": True})
        _, frames = await self.execs.start(e.id)
        out: dict[int, list[bytes]] = {1: [], 2: []}

        async def collect() -> None:
            async for stream, data in frames:
                out.setdefault(stream, []).append(data)
        try:
            await asyncio.wait_for(collect(), timeout if timeout > 0 else None)
        except TimeoutError:
            if e.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(e.pid, 9)
            raise TimeoutError(f"command {cmd!r} timed out after {timeout}s (killed)") from None
        for _ in range(100):
            if e.exit_code is not None:
                break
            await asyncio.sleep(0.01)
        return pb.ExecSyncResponse(stdout=b"".join(out[1]), stderr=b"".join(out[2]),
                                   exit_code=e.exit_code if e.exit_code is not None else -1)

    # ---- recovery ---------------------------------------------------------------------------------
    async def recover(self) -> None:
        """After a (re)start: sandboxes whose holder is gone get their network torn down (CNI DEL with
        the recorded result); records whose engine container vanished are dropped."""
        for rec in self.sandboxes.all():
            c = self._engine(rec["id"])
            if rec.get("state") == "starting":   # half made when the daemon died: undone (kubelet retries)
                log.warning("sandbox %s was half made when the daemon stopped: removing it", rec["id"][:12])
                try:
                    await self._network_down(rec)
                    if c is not None:
                        await self.containers.remove(rec["id"], force=True)
                    self.sandboxes.drop(rec["id"])
                except (EngineError, OSError) as e:
                    log.warning("sandbox %s: removing it: %s", rec["id"][:12], e)
                continue
            if rec.get("state") == "stopping" and c is not None:   # a stop the daemon did not finish
                try:
                    await self._stop_all(rec)
                except (EngineError, OSError) as e:
                    log.warning("sandbox %s: finishing its stop: %s", rec["id"][:12], e)
                continue
            if c is None or not c.state.running:
                try:
                    await self._network_down(rec)
                except (EngineError, OSError) as e:
                    log.warning("sandbox %s: tearing its network down: %s", rec["id"][:12], e)
                if c is None:
                    self.sandboxes.drop(rec["id"])
                elif rec.get("state") != "stopped":
                    rec["state"] = "stopped"
                    self.sandboxes.put(rec["id"], rec)
            else:
                if rec.get("netns"):
                    self.held[rec["id"]] = rec["netns"]
                if rec.get("ports"):
                    await asyncio.to_thread(_publish, rec)   # the engine flushed its port rules at start-up
        for crec in self.ctrs.all():
            if self._engine(crec["id"]) is None:
                self.ctrs.drop(crec["id"])
        known = {r["id"] for r in self.sandboxes.all()} | {r["id"] for r in self.ctrs.all()}
        for c in list(self.containers.by_id.values()):   # made by the engine, not yet recorded when the daemon died
            if (c.cfg.config.get("Labels") or {}).get(KIND) in ("sandbox", "container") and c.id not in known:
                log.warning("removing %s %s: created for the CRI but never recorded", c.name, c.id[:12])
                try:
                    await self.containers.remove(c.id, force=True)
                except EngineError as e:
                    log.warning("removing %s: %s", c.id[:12], e)


def _is_netns(path: str) -> bool:
    """Whether a namespace is bound at `path` (an nsfs mount there)."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(parts[4] == real and " - nsfs " in line for line in f if (parts := line.split()))


def _unpin_netns(path: str) -> None:
    netns.remove(path)


def _subnet(result: dict[str, Any]) -> str:
    import ipaddress
    for ip in result.get("ips") or []:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return str(ipaddress.ip_interface(ip["address"]).network)
    return ""


def _rules(rec: dict[str, Any]) -> Rules:
    return Rules(rec.get("bridge") or "cni0", rec.get("subnet") or "", icc=True)


def _ports(rec: dict[str, Any]) -> list[Port]:
    return [Port(p.get("hostIP") or "", int(p["hostPort"]), p["protocol"], int(p["containerPort"]))
            for p in rec.get("ports") or []]


def _publish(rec: dict[str, Any]) -> None:
    """Host ports by Dockyard's DNAT rules, in chains of the CNI bridge (made when missing); the bridge
    routes 127.0.0.1 so a hostPort answers on the loopback too."""
    rules = _rules(rec)
    rules.install()   # idempotent, keeps the port rules of other pods
    bridge = rec.get("bridge") or "cni0"
    with contextlib.suppress(OSError):
        set_sysctl(f"net/ipv4/conf/{bridge}/route_localnet", "1")
    ip = [x for x in rec.get("ips") or [] if ":" not in x][0]
    rules.unpublish(rec["id"], ip, _ports(rec))
    rules.publish(rec["id"], ip, _ports(rec))


def _unpublish(rec: dict[str, Any], last: bool) -> None:
    """The pod's port rules; with the bridge's last pod with host ports, the chains too."""
    ips = [x for x in rec.get("ips") or [] if ":" not in x]
    rules = _rules(rec)
    if ips:
        rules.unpublish(rec["id"], ips[0], _ports(rec))
    if last:
        rules.remove()
