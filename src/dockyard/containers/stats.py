"""`docker stats`: one sample of a container's cgroup counters in the Engine API's StatsJSON
shape (cgroup v1 and v2). `precpu_stats` comes from the caller's previous sample, as dockerd's
collector does; the CLI computes CPU % from the two."""

from __future__ import annotations

import os
from typing import Any

from ..images.service import now_iso
from . import cgroupfs

ZERO_TIME = "0001-01-01T00:00:00Z"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def system_cpu_usage() -> int:
    """Host CPU time in ns (all CPUs), from /proc/stat, as dockerd computes it."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                ticks = sum(int(x) for x in line.split()[1:8])
                return ticks * 1_000_000_000 // _CLK_TCK
    return 0


def empty(cid: str, name: str) -> dict[str, Any]:
    """What dockerd answers for a container that is not running."""
    return {"read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {}, "blkio_stats": {
        "io_service_bytes_recursive": None, "io_serviced_recursive": None, "io_queue_recursive": None,
        "io_service_time_recursive": None, "io_wait_time_recursive": None, "io_merged_recursive": None,
        "io_time_recursive": None, "sectors_recursive": None}, "num_procs": 0, "storage_stats": {},
        "cpu_stats": _zero_cpu(), "precpu_stats": _zero_cpu(),
        "memory_stats": {}, "name": "/" + name, "id": cid}


def _zero_cpu() -> dict[str, Any]:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


_NET_FIELDS = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped", None, None, None, None,
               "tx_bytes", "tx_packets", "tx_errors", "tx_dropped")


def networks(init_pid: int) -> dict[str, dict[str, int]]:
    """Per-interface counters of the container's network namespace (its /proc/PID/net/dev, which
    the kernel answers for the namespace of that process), loopback left out as dockerd does."""
    out: dict[str, dict[str, int]] = {}
    try:
        with open(f"/proc/{init_pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return out
    for line in lines:
        ifname, _, rest = line.partition(":")
        ifname = ifname.strip()
        if ifname == "lo":
            continue
        vals = rest.split()
        out[ifname] = {k: int(v) for k, v in zip(_NET_FIELDS, vals, strict=False) if k}
    return out


def sample(cid: str, name: str, init_pid: int, with_networks: bool = True) -> dict[str, Any]:
    """One reading of the container's counters; `networks` unless it shares the host's network
    namespace, and only when it has an interface (dockerd's omitempty)."""
    d = cgroupfs.dirs(init_pid)
    out = empty(cid, name)
    out["read"] = now_iso()
    nets = networks(init_pid) if with_networks else {}
    if nets:
        out["networks"] = nets
    if "" in d and "memory" not in d:   # cgroup v2
        _v2(d[""], out)
    else:
        _v1(d, out)
    out["cpu_stats"]["system_cpu_usage"] = system_cpu_usage()
    out["cpu_stats"]["online_cpus"] = os.cpu_count() or 1
    return out


def _v1(d: dict[str, str], out: dict[str, Any]) -> None:
    cpu = d.get("cpuacct")
    if cpu:
        st = cgroupfs.kv(os.path.join(cpu, "cpuacct.stat"))
        percpu = [int(x) for x in cgroupfs.read(os.path.join(cpu, "cpuacct.usage_percpu")).split()]
        out["cpu_stats"]["cpu_usage"] = {
            "total_usage": cgroupfs.read_int(os.path.join(cpu, "cpuacct.usage")) or 0, "percpu_usage": percpu,
            "usage_in_kernelmode": st.get("system", 0) * 1_000_000_000 // _CLK_TCK,
            "usage_in_usermode": st.get("user", 0) * 1_000_000_000 // _CLK_TCK}
    if "cpu" in d:
        t = cgroupfs.kv(os.path.join(d["cpu"], "cpu.stat"))
        out["cpu_stats"]["throttling_data"] = {"periods": t.get("nr_periods", 0),
                                               "throttled_periods": t.get("nr_throttled", 0),
                                               "throttled_time": t.get("throttled_time", 0)}
    mem = d.get("memory")
    if mem:
        out["memory_stats"] = {
            "usage": cgroupfs.read_int(os.path.join(mem, "memory.usage_in_bytes")) or 0,
            "max_usage": cgroupfs.read_int(os.path.join(mem, "memory.max_usage_in_bytes")) or 0,
            "stats": cgroupfs.kv(os.path.join(mem, "memory.stat")),
            "limit": _limit(cgroupfs.read_int(os.path.join(mem, "memory.limit_in_bytes")))}
    if "pids" in d:
        out["pids_stats"] = _pids(d["pids"])
    blk = d.get("blkio")
    if blk:
        entries = []
        for line in cgroupfs.read(os.path.join(blk, "blkio.throttle.io_service_bytes_recursive")).splitlines():
            parts = line.split()
            if len(parts) == 3 and ":" in parts[0]:
                major, minor = parts[0].split(":")
                entries.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
        out["blkio_stats"]["io_service_bytes_recursive"] = entries


def _v2(d: str, out: dict[str, Any]) -> None:
    st = cgroupfs.kv(os.path.join(d, "cpu.stat"))
    out["cpu_stats"]["cpu_usage"] = {"total_usage": st.get("usage_usec", 0) * 1000,
                                     "usage_in_kernelmode": st.get("system_usec", 0) * 1000,
                                     "usage_in_usermode": st.get("user_usec", 0) * 1000}
    out["cpu_stats"]["throttling_data"] = {"periods": st.get("nr_periods", 0),
                                           "throttled_periods": st.get("nr_throttled", 0),
                                           "throttled_time": st.get("throttled_usec", 0) * 1000}
    out["memory_stats"] = {"usage": cgroupfs.read_int(os.path.join(d, "memory.current")) or 0,
                           "stats": cgroupfs.kv(os.path.join(d, "memory.stat")),
                           "limit": _limit(cgroupfs.read_int(os.path.join(d, "memory.max")))}
    out["pids_stats"] = _pids(d)
    entries = []
    for line in cgroupfs.read(os.path.join(d, "io.stat")).splitlines():
        dev, *fields = line.split()
        major, minor = dev.split(":")
        kv = dict(f.split("=", 1) for f in fields if "=" in f)
        for op, key in (("read", "rbytes"), ("write", "wbytes")):
            if key in kv:
                entries.append({"major": int(major), "minor": int(minor), "op": op, "value": int(kv[key])})
    out["blkio_stats"]["io_service_bytes_recursive"] = entries


def _pids(d: str) -> dict[str, int]:
    cur = cgroupfs.read_int(os.path.join(d, "pids.current"))
    lim = cgroupfs.read_int(os.path.join(d, "pids.max"))
    out = {"current": cur or 0}
    if lim:
        out["limit"] = lim
    return out


def _limit(v: int | None) -> int:
    """A memory limit; 'no limit' is the host's memory, as dockerd reports it."""
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return host if v is None or v <= 0 or v >= host else v
