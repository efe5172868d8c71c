"""What kubelet reads about running pods: container and pod statistics from the cgroups (the same
readings `docker stats` takes), CRI metrics, and the container event stream (from the engine's event
bus, for the CRI's own containers and sandboxes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from ..containers import stats as engine_stats
from ..errors import NotFound
from .proto import runtime_v1_pb2 as pb

# the CRI event of each engine event (a sandbox's events are its holder's)
EVENTS = {"create": pb.CONTAINER_CREATED_EVENT, "start": pb.CONTAINER_STARTED_EVENT,
          "die": pb.CONTAINER_STOPPED_EVENT, "destroy": pb.CONTAINER_DELETED_EVENT}


class Observer:
    def __init__(self, pods: Any, bus: Any) -> None:
        self.pods, self.bus = pods, bus
        self.last_cpu: dict[str, tuple[int, int]] = {}   # container → (wall ns, cpu ns) of its last reading
        self.rw: dict[str, tuple[float, int]] = {}       # container → (when, writable layer bytes)

    # ---- statistics ----------------------------------------------------------------------------
    def _reading(self, cid: str) -> dict[str, Any] | None:
        """One cgroup reading of a running engine container (blocking: worker thread)."""
        c = self.pods._engine(cid)
        if c is None or not c.state.running or not c.state.pid:
            return None
        try:
            return dict(engine_stats.sample(c.id, c.name, c.state.pid, with_networks=True))
        except OSError:
            return None

    def _rw_bytes(self, cid: str) -> int:
        """Writable layer usage, walked at most every 10 s (blocking)."""
        at, n = self.rw.get(cid, (0.0, 0))
        if time.monotonic() - at > 10:
            c = self.pods._engine(cid)
            n = self.pods.containers.rw_size(c) if c is not None else 0
            self.rw[cid] = (time.monotonic(), n)
        return n

    def _cpu(self, cid: str, r: dict[str, Any], now: int) -> pb.CpuUsage:
        total = int(r["cpu_stats"]["cpu_usage"].get("total_usage") or 0)
        out = pb.CpuUsage(timestamp=now)
        out.usage_core_nano_seconds.value = total
        prev = self.last_cpu.get(cid)
        if prev is not None and now > prev[0]:
            out.usage_nano_cores.value = max(0, (total - prev[1]) * 1_000_000_000 // (now - prev[0]))
        self.last_cpu[cid] = (now, total)
        return out

    @staticmethod
    def _memory(r: dict[str, Any], now: int) -> pb.MemoryUsage:
        m = r.get("memory_stats") or {}
        st = m.get("stats") or {}
        usage = int(m.get("usage") or 0)
        inactive = int(st.get("total_inactive_file", st.get("inactive_file", 0)) or 0)
        ws = max(0, usage - inactive)
        out = pb.MemoryUsage(timestamp=now)
        out.working_set_bytes.value, out.usage_bytes.value = ws, usage
        out.rss_bytes.value = int(st.get("total_rss", st.get("anon", 0)) or 0)
        out.page_faults.value = int(st.get("total_pgfault", st.get("pgfault", 0)) or 0)
        out.major_page_faults.value = int(st.get("total_pgmajfault", st.get("pgmajfault", 0)) or 0)
        limit = int(m.get("limit") or 0)
        if limit:
            out.available_bytes.value = max(0, limit - ws)
        return out

    def container_stats(self, rec: dict[str, Any]) -> pb.ContainerStats:
        """Blocking (cgroup files, a walk of the writable layer): call in a worker thread."""
        short = self.pods._short(rec)
        out = pb.ContainerStats()
        out.attributes.id = rec["id"]
        out.attributes.metadata.CopyFrom(short.metadata)
        out.attributes.labels.update(short.labels)
        out.attributes.annotations.update(short.annotations)
        now = time.time_ns()
        r = self._reading(rec["id"])
        if r is not None:
            out.cpu.CopyFrom(self._cpu(rec["id"], r, now))
            out.memory.CopyFrom(self._memory(r, now))
        out.writable_layer.timestamp = now
        c = self.pods._engine(rec["id"])
        if c is not None:
            out.writable_layer.fs_id.mountpoint = str(self.pods.containers.paths.rootfs(c.id))
            out.writable_layer.used_bytes.value = self._rw_bytes(rec["id"])
        return out

    def _container_recs(self, cid: str = "", sandbox: str = "", labels: Any = None) -> list[dict[str, Any]]:
        return [rec for rec, _ in self.pods.matching_containers(cid, sandbox, labels)]

    async def one_container(self, cid: str) -> pb.ContainerStats:
        return await asyncio.to_thread(self.container_stats, self.pods._container(cid))

    async def list_containers(self, f: pb.ContainerStatsFilter | None) -> list[pb.ContainerStats]:
        recs = self._container_recs(f.id, f.pod_sandbox_id, f.label_selector) if f is not None else \
            self._container_recs()
        running = [r for r in recs if (c := self.pods._engine(r["id"])) is not None and c.state.running]
        return await asyncio.to_thread(lambda: [self.container_stats(r) for r in running])

    def sandbox_stats(self, rec: dict[str, Any]) -> pb.PodSandboxStats:
        """Blocking: call in a worker thread."""
        from .pods import _dec
        cfg = _dec(pb.PodSandboxConfig, rec["config"])
        out = pb.PodSandboxStats()
        a = out.attributes
        a.id = rec["id"]
        a.metadata.CopyFrom(cfg.metadata)
        a.labels.update(cfg.labels)
        a.annotations.update(cfg.annotations)
        now = time.time_ns()
        members = [rec["id"], *(r["id"] for r in self._container_recs(sandbox=rec["id"]))]
        readings = [(m, self._reading(m)) for m in members]
        got = [(m, r) for m, r in readings if r is not None]
        lx = out.linux
        if got:
            cpu_total = sum(int(r["cpu_stats"]["cpu_usage"].get("total_usage") or 0) for _, r in got)
            pod_cpu = {"cpu_stats": {"cpu_usage": {"total_usage": cpu_total}}}
            lx.cpu.CopyFrom(self._cpu("pod:" + rec["id"], pod_cpu, now))
            usage, totals = 0, dict[str, int]()   # the pod's memory: the sum of its members'
            for _, r in got:
                m = r.get("memory_stats") or {}
                usage += int(m.get("usage") or 0)
                for k, v in (m.get("stats") or {}).items():
                    if isinstance(v, int):
                        totals[k] = totals.get(k, 0) + v
            lx.memory.CopyFrom(self._memory({"memory_stats": {"usage": usage, "stats": totals}}, now))
            lx.process.timestamp = now
            lx.process.process_count.value = sum(int((r.get("pids_stats") or {}).get("current") or 0) for _, r in got)
            nets = next((r.get("networks") for m, r in got if m == rec["id"]), None) or {}
            lx.network.timestamp = now
            for name, n in sorted(nets.items()):
                i = lx.network.interfaces.add(name=name)
                i.rx_bytes.value, i.rx_errors.value = n.get("rx_bytes", 0), n.get("rx_errors", 0)
                i.tx_bytes.value, i.tx_errors.value = n.get("tx_bytes", 0), n.get("tx_errors", 0)
                if name == "eth0":
                    lx.network.default_interface.CopyFrom(i)
        for r in self._container_recs(sandbox=rec["id"]):
            c = self.pods._engine(r["id"])
            if c is not None and c.state.running:
                lx.containers.append(self.container_stats(r))
        return out

    async def one_sandbox(self, sid: str) -> pb.PodSandboxStats:
        rec = self.pods._sandbox(sid)
        return await asyncio.to_thread(self.sandbox_stats, rec)

    async def list_sandboxes(self, f: pb.PodSandboxStatsFilter | None) -> list[pb.PodSandboxStats]:
        recs = [rec for rec, _ in (self.pods.matching_sandboxes(f.id, f.label_selector) if f is not None
                                   else self.pods.matching_sandboxes())
                if self.pods._sandbox_state(rec) == pb.SANDBOX_READY]
        return await asyncio.to_thread(lambda: [self.sandbox_stats(r) for r in recs])

    # ---- metrics --------------------------------------------------------------------------------
    @staticmethod
    def descriptors() -> list[pb.MetricDescriptor]:
        from . import metrics
        return metrics.descriptors()

    def _pod_metrics(self, rec: dict[str, Any]) -> pb.PodSandboxMetrics:
        """Blocking: a worker thread."""
        from . import metrics
        out = pb.PodSandboxMetrics(pod_sandbox_id=rec["id"])
        holder = self.pods._engine(rec["id"])
        for crec in self._container_recs(sandbox=rec["id"]):
            c = self.pods._engine(crec["id"])
            if c is None or not c.state.running or holder is None:
                continue
            try:
                ms = metrics.container_metrics(c, str(self.pods.containers.paths.rootfs(c.id)),
                                               self._rw_bytes(c.id), holder.state.pid)
            except OSError:
                continue   # it stopped while being read
            out.container_metrics.add(container_id=c.id, metrics=ms)
        return out

    async def pod_metrics(self) -> list[pb.PodSandboxMetrics]:
        recs = [r for r in self.pods.sandboxes.all() if self.pods._sandbox_state(r) == pb.SANDBOX_READY]
        return await asyncio.to_thread(lambda: [self._pod_metrics(r) for r in recs])

    # ---- events ---------------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[pb.ContainerEventResponse]:
        """Live events of the CRI's containers and sandboxes, with their status at the time."""
        async for ev in self.bus.stream(None, None):
            if ev.get("Type") != "container" or ev.get("Action") not in EVENTS:
                continue
            attrs = (ev.get("Actor") or {}).get("Attributes") or {}
            kind = attrs.get("io.dockyard.cri.kind")
            if kind not in ("sandbox", "container"):
                continue
            cid = ev["Actor"]["ID"]
            out = pb.ContainerEventResponse(container_id=cid, container_event_type=EVENTS[ev["Action"]],
                                            created_at=int(ev.get("timeNano") or time.time_ns()))
            sid = cid if kind == "sandbox" else attrs.get("io.dockyard.cri.sandbox", "")
            try:
                if sid:
                    out.pod_sandbox_status.CopyFrom(self.pods.sandbox_status(sid, False).status)
                if kind == "container":
                    out.containers_statuses.append(self.pods.container_status(cid, False).status)
            except NotFound:
                pass   # created before the CRI recorded it, or removed already: the event still goes out
            yield out
