"""CRI metrics (ListMetricDescriptors, ListPodSandboxMetrics): the container metrics kubelet's cAdvisor-less
stats provider asks for, by cAdvisor's names, read from the cgroups (v1 and v2), /proc and the writable layer.

Values are integers (the CRI's UInt64Value): `*_seconds_total` counters are in **nanoseconds** except the
timestamps (`container_start_time_seconds`, `container_last_seen`: seconds). Every series carries the
labels its descriptor lists. Not served (no source here): hugetlb usage, pressure stall information, the
CPU quota and memory reservation specs, rlimits."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ..containers import cgroupfs
from ..containers import stats as engine_stats
from .proto import runtime_v1_pb2 as pb

BASE = ["id", "name", "image"]
C, G = pb.COUNTER, pb.GAUGE
# name → (help, kind, extra label keys)
DESCRIPTORS: dict[str, tuple[str, int, list[str]]] = {
    "container_cpu_usage_seconds_total": ("Cumulative CPU time consumed (ns)", C, []),
    "container_cpu_user_seconds_total": ("Cumulative user CPU time (ns)", C, []),
    "container_cpu_system_seconds_total": ("Cumulative system CPU time (ns)", C, []),
    "container_cpu_cfs_periods_total": ("Elapsed enforcement periods", C, []),
    "container_cpu_cfs_throttled_periods_total": ("Throttled periods", C, []),
    "container_cpu_cfs_throttled_seconds_total": ("Time throttled (ns)", C, []),
    "container_memory_usage_bytes": ("Memory in use, cache included", G, []),
    "container_memory_max_usage_bytes": ("Largest memory use recorded", G, []),
    "container_memory_working_set_bytes": ("Memory in use without inactive file pages", G, []),
    "container_memory_cache": ("Page cache", G, []),
    "container_memory_rss": ("Anonymous and swap cache memory", G, []),
    "container_memory_mapped_file": ("Memory-mapped files", G, []),
    "container_memory_swap": ("Swap in use", G, []),
    "container_memory_kernel_usage": ("Kernel memory", G, []),
    "container_memory_failcnt": ("Times the memory limit was hit", C, []),
    "container_memory_failures_total": ("Page faults, by type and scope", C, ["failure_type", "scope"]),
    "container_oom_events_total": ("OOM kills in the container", C, []),
    "container_network_receive_bytes_total": ("Bytes received", C, ["interface"]),
    "container_network_receive_packets_total": ("Packets received", C, ["interface"]),
    "container_network_receive_errors_total": ("Receive errors", C, ["interface"]),
    "container_network_receive_packets_dropped_total": ("Received packets dropped", C, ["interface"]),
    "container_network_transmit_bytes_total": ("Bytes sent", C, ["interface"]),
    "container_network_transmit_packets_total": ("Packets sent", C, ["interface"]),
    "container_network_transmit_errors_total": ("Transmit errors", C, ["interface"]),
    "container_network_transmit_packets_dropped_total": ("Sent packets dropped", C, ["interface"]),
    "container_fs_usage_bytes": ("Bytes in the writable layer", G, ["device"]),
    "container_fs_limit_bytes": ("Size of the filesystem holding the writable layer", G, ["device"]),
    "container_fs_inodes_total": ("Inodes of that filesystem", G, ["device"]),
    "container_fs_inodes_free": ("Free inodes of that filesystem", G, ["device"]),
    "container_fs_reads_bytes_total": ("Bytes read from block devices", C, ["device"]),
    "container_fs_writes_bytes_total": ("Bytes written to block devices", C, ["device"]),
    "container_fs_reads_total": ("Reads from block devices", C, ["device"]),
    "container_fs_writes_total": ("Writes to block devices", C, ["device"]),
    "container_blkio_device_usage_total": ("Block I/O bytes by device and operation", C,
                                           ["device", "major", "minor", "operation"]),
    "container_processes": ("Processes", G, []),
    "container_threads": ("Threads", G, []),
    "container_threads_max": ("Most threads allowed (pids.max; 0: no limit)", G, []),
    "container_file_descriptors": ("Open file descriptors", G, []),
    "container_sockets": ("Open sockets", G, []),
    "container_start_time_seconds": ("Start time, seconds since the epoch", G, []),
    "container_last_seen": ("When these values were read, seconds since the epoch", G, []),
    "container_spec_cpu_period": ("CPU period of the limit (us)", G, []),
    "container_spec_cpu_shares": ("CPU shares", G, []),
    "container_spec_memory_limit_bytes": ("Memory limit (0: none)", G, []),
    "container_spec_memory_swap_limit_bytes": ("Memory + swap limit (0: none)", G, []),
}


def descriptors() -> list[pb.MetricDescriptor]:
    return [pb.MetricDescriptor(name=n, help=h, label_keys=BASE + extra) for n, (h, _, extra) in DESCRIPTORS.items()]


def _proc_counts(pids: set[int]) -> tuple[int, int, int]:
    """Threads, open descriptors and sockets of the processes."""
    threads = fds = socks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                threads += next((int(ln.split()[1]) for ln in f if ln.startswith("Threads:")), 0)
            for fd in os.listdir(f"/proc/{pid}/fd"):
                fds += 1
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                        socks += 1
                except OSError:
                    pass
        except (OSError, StopIteration):
            continue
    return threads, fds, socks


def container_metrics(c: Any, rootfs: str, rw_bytes: int, net_pid: int) -> list[pb.Metric]:
    """Every metric of one running engine container (blocking: a worker thread)."""
    now = time.time_ns()
    pid = c.state.pid
    r = engine_stats.sample(c.id, c.name, pid, with_networks=False)
    d = cgroupfs.dirs(pid)
    base = [c.id, c.name, str(c.cfg.config.get("Image") or c.cfg.image_ref)]
    out: list[pb.Metric] = []

    def put(name: str, value: int | float, extra: list[str] | None = None) -> None:
        m = pb.Metric(name=name, timestamp=now, label_values=base + (extra or []))
        m.metric_type = DESCRIPTORS[name][1]  # type: ignore[assignment]
        m.value.value = max(0, int(value))
        out.append(m)
    cpu = r["cpu_stats"]
    put("container_cpu_usage_seconds_total", cpu["cpu_usage"].get("total_usage", 0))
    put("container_cpu_user_seconds_total", cpu["cpu_usage"].get("usage_in_usermode", 0))
    put("container_cpu_system_seconds_total", cpu["cpu_usage"].get("usage_in_kernelmode", 0))
    th = cpu.get("throttling_data") or {}
    put("container_cpu_cfs_periods_total", th.get("periods", 0))
    put("container_cpu_cfs_throttled_periods_total", th.get("throttled_periods", 0))
    put("container_cpu_cfs_throttled_seconds_total", th.get("throttled_time", 0))
    mem = r.get("memory_stats") or {}
    st: dict[str, int] = mem.get("stats") or {}
    get: Callable[..., int] = lambda *keys: next((int(st[k]) for k in keys if k in st), 0)   # noqa: E731
    usage = int(mem.get("usage") or 0)
    put("container_memory_usage_bytes", usage)
    put("container_memory_max_usage_bytes", int(mem.get("max_usage") or usage))
    put("container_memory_working_set_bytes", usage - get("total_inactive_file", "inactive_file"))
    put("container_memory_cache", get("total_cache", "file"))
    put("container_memory_rss", get("total_rss", "anon"))
    put("container_memory_mapped_file", get("total_mapped_file", "file_mapped"))
    put("container_memory_swap", get("total_swap", "swap"))
    memdir = d.get("memory") or d.get("", "")
    put("container_memory_kernel_usage", (cgroupfs.read_int(os.path.join(memdir, "memory.kmem.usage_in_bytes"))
                                          or get("kernel", "kernel_stack")))
    put("container_memory_failcnt", cgroupfs.read_int(os.path.join(memdir, "memory.failcnt")) or 0)
    for ftype, key in (("pgfault", ("total_pgfault", "pgfault")), ("pgmajfault", ("total_pgmajfault", "pgmajfault"))):
        for scope in ("container", "hierarchy"):
            put("container_memory_failures_total", get(*key), [ftype, scope])
    oom = cgroupfs.kv(os.path.join(memdir, "memory.oom_control")) or cgroupfs.kv(os.path.join(memdir, "memory.events"))
    put("container_oom_events_total", oom.get("oom_kill", 0))
    for ifname, n in sorted(engine_stats.networks(net_pid).items()):
        for direction, short in (("receive", "rx"), ("transmit", "tx")):
            put(f"container_network_{direction}_bytes_total", n.get(f"{short}_bytes", 0), [ifname])
            put(f"container_network_{direction}_packets_total", n.get(f"{short}_packets", 0), [ifname])
            put(f"container_network_{direction}_errors_total", n.get(f"{short}_errors", 0), [ifname])
            put(f"container_network_{direction}_packets_dropped_total", n.get(f"{short}_dropped", 0), [ifname])
    try:
        vfs = os.statvfs(rootfs)
        dev = f"{os.major(os.stat(rootfs).st_dev)}:{os.minor(os.stat(rootfs).st_dev)}"
        put("container_fs_usage_bytes", rw_bytes, [dev])
        put("container_fs_limit_bytes", vfs.f_blocks * vfs.f_frsize, [dev])
        put("container_fs_inodes_total", vfs.f_files, [dev])
        put("container_fs_inodes_free", vfs.f_ffree, [dev])
    except OSError:
        pass
    io = (r.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    for e in io:
        dev = f"{e['major']}:{e['minor']}"
        op = str(e["op"]).lower()
        put("container_blkio_device_usage_total", e["value"], [dev, str(e["major"]), str(e["minor"]), op])
        if op == "read":
            put("container_fs_reads_bytes_total", e["value"], [dev])
        elif op == "write":
            put("container_fs_writes_bytes_total", e["value"], [dev])
    blk = d.get("blkio")
    if blk:
        for line in cgroupfs.read(os.path.join(blk, "blkio.throttle.io_serviced_recursive")).splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in ("Read", "Write"):
                put(f"container_fs_{parts[1].lower()}s_total", int(parts[2]), [parts[0]])
    procs = cgroupfs.pids(pid)
    threads, fds, socks = _proc_counts(procs)
    put("container_processes", (r.get("pids_stats") or {}).get("current") or len(procs))
    put("container_threads", threads)
    put("container_threads_max", (r.get("pids_stats") or {}).get("limit") or 0)
    put("container_file_descriptors", fds)
    put("container_sockets", socks)
    from .pods import _ts
    put("container_start_time_seconds", _ts(c.state.started_at) // 1_000_000_000)
    put("container_last_seen", now // 1_000_000_000)
    hc = c.cfg.host_config
    put("container_spec_cpu_period", hc.get("CpuPeriod") or 100000)
    put("container_spec_cpu_shares", hc.get("CpuShares") or 1024)
    put("container_spec_memory_limit_bytes", hc.get("Memory") or 0)
    put("container_spec_memory_swap_limit_bytes", max(0, hc.get("MemorySwap") or 0))
    return out
