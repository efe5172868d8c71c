"""Resource limits: HostConfig's fields (Docker's `Resources`) validated with dockerd's
messages, normalised as dockerd stores them, and turned into OCI `linux.resources` that any
runtime (ours, runc, crun) applies to the container's cgroups, at create and on update."""

from __future__ import annotations

import functools
import os
import stat
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgument

MIN_MEMORY = 6 * 1024 * 1024
NANO = 1_000_000_000
NANO_PERIOD = 100_000

RESOURCE_KEYS = ("CpuShares", "Memory", "CgroupParent", "BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps",
                 "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "CpuPeriod", "CpuQuota",
                 "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems", "Devices",
                 "DeviceCgroupRules", "DeviceRequests", "KernelMemory", "KernelMemoryTCP", "MemoryReservation",
                 "MemorySwap", "MemorySwappiness", "NanoCpus", "OomKillDisable", "Init", "PidsLimit", "Ulimits",
                 "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth")
# what `POST /containers/{id}/update` may change on a running container
UPDATABLE = ("CpuShares", "Memory", "BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
             "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "CpuPeriod", "CpuQuota", "CpuRealtimePeriod",
             "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems", "KernelMemory", "KernelMemoryTCP",
             "MemoryReservation", "MemorySwap", "NanoCpus", "PidsLimit")


@dataclass(frozen=True)
class HostInfo:
    """What this host's cgroups can do (probed once)."""

    v2: bool
    ncpu: int
    cpus: str
    mems: str
    blkio_weight: bool
    cpu_rt: bool
    swap: bool
    oom_control: bool


def _read(p: str) -> str:
    try:
        with open(p) as f:
            return f.read().strip()
    except OSError:
        return ""


@functools.lru_cache(maxsize=1)
def host() -> HostInfo:
    """Probe /sys/fs/cgroup."""
    from ..runtime.cgroups import hierarchies, is_unified
    h = hierarchies()
    v2 = is_unified()

    def ctl(name: str) -> str:
        for k, mp in h.items():
            if name in k.split(","):
                return mp
        return ""
    if v2:
        root = h.get("", "/sys/fs/cgroup")
        ctrls = _read(os.path.join(root, "cgroup.controllers")).split()
        cpus = _read(os.path.join(root, "cpuset.cpus.effective"))
        mems = _read(os.path.join(root, "cpuset.mems.effective"))
        weight = "io" in ctrls and os.path.exists(os.path.join(root, "io.bfq.weight"))
        return HostInfo(True, os.cpu_count() or 1, cpus, mems, weight, False, "memory" in ctrls, False)
    cpuset, mem, blkio, cpu = ctl("cpuset"), ctl("memory"), ctl("blkio"), ctl("cpu")
    return HostInfo(
        False, os.cpu_count() or 1, _read(os.path.join(cpuset, "cpuset.cpus")), _read(os.path.join(cpuset, "cpuset.mems")),
        bool(blkio) and (os.path.exists(os.path.join(blkio, "blkio.weight"))
                         or os.path.exists(os.path.join(blkio, "blkio.bfq.weight"))),
        bool(cpu) and os.path.exists(os.path.join(cpu, "cpu.rt_runtime_us")),
        bool(mem) and os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes")),
        bool(mem) and os.path.exists(os.path.join(mem, "memory.oom_control")))


def parse_set(spec: str) -> set[int]:
    """`0-2,4` → {0, 1, 2, 4}; ValueError when malformed."""
    out: set[int] = set()
    for part in spec.split(","):
        a, dash, b = part.partition("-")
        lo, hi = int(a), int(b) if dash else int(a)
        if lo < 0 or hi < lo:
            raise ValueError(spec)
        out.update(range(lo, hi + 1))
    return out


def _int(hc: dict[str, Any], k: str) -> int:
    v = hc.get(k)
    if v is None:
        return 0
    if not isinstance(v, int) or isinstance(v, bool):
        raise InvalidArgument(f"HostConfig.{k} must be an integer")
    return v


def validate(hc: dict[str, Any], warnings: list[str], hi: HostInfo | None = None) -> None:
    """Check and normalise the resource fields in place, with dockerd's messages."""
    hi = hi or host()
    for key, what, unit in (("CpuCount", "CPU count", "Count"), ("CpuPercent", "CPU percent", "Percent")):
        if hc.get(key):   # Windows-only: taken, as dockerd takes them on Linux, but never silently
            warnings.append(f"linux does not support {what}. {unit} discarded.")
            hc[key] = 0
    mem, swap, res = _int(hc, "Memory"), _int(hc, "MemorySwap"), _int(hc, "MemoryReservation")
    if mem < 0:
        raise InvalidArgument("invalid memory limit: it must be positive")
    if mem and mem < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if swap > 0 and not mem:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage")
    if mem and swap > 0 and swap < mem:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
    if mem and swap == 0:
        hc["MemorySwap"] = swap = 2 * mem   # dockerd: swap defaults to as much again as memory
    if swap and not hi.swap:
        raise InvalidArgument("MemorySwap: this kernel has no swap limit capabilities (memory.memsw / memory.swap.max)")
    if res and res < MIN_MEMORY:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if mem and res and mem < res:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation limit, see usage")
    sw = hc.get("MemorySwappiness")
    if sw == -1:
        hc["MemorySwappiness"] = sw = None   # the CLI's "unset", which dockerd reports as null
    if sw is not None:
        if not isinstance(sw, int) or not 0 <= sw <= 100:
            raise InvalidArgument(f"Invalid value: {sw}, valid memory swappiness range is 0-100")
        if hi.v2:
            raise InvalidArgument("MemorySwappiness: not supported on cgroup v2")
    if hc.get("OomKillDisable"):
        if not hi.oom_control:
            raise InvalidArgument("OomKillDisable: this kernel cannot disable the OOM killer for a cgroup (cgroup v2)")
        if not mem:
            warnings.append("OOM killer is disabled for the container, but no memory limit is set, "
                            "this can result in the system running out of resources.")
    nano, period, quota = _int(hc, "NanoCpus"), _int(hc, "CpuPeriod"), _int(hc, "CpuQuota")
    if nano and period:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano and quota:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if nano < 0 or nano > hi.ncpu * NANO:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {hi.ncpu}.00, as there are only {hi.ncpu} CPUs available")
    if nano and nano * NANO_PERIOD // NANO < 1000:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {hi.ncpu}.00, as there are only {hi.ncpu} CPUs available")
    if period and not 1000 <= period <= 1_000_000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if quota > 0 and quota < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if _int(hc, "CpuShares") < 0:
        raise InvalidArgument("invalid CPU shares: it must be positive")
    rtp, rtr = _int(hc, "CpuRealtimePeriod"), _int(hc, "CpuRealtimeRuntime")
    if (rtp or rtr) and not hi.cpu_rt:
        raise InvalidArgument("Your kernel does not support CPU real-time scheduler")
    if rtp and rtr > rtp:
        raise InvalidArgument("cpu-rt-runtime cannot be higher than cpu-rt-period")
    for key, avail, what in (("CpusetCpus", hi.cpus, "CPUs"), ("CpusetMems", hi.mems, "memory nodes")):
        v = hc.get(key) or ""
        if not v:
            continue
        try:
            want = parse_set(v)
        except ValueError:
            raise InvalidArgument(f"Invalid value {v} for cpuset {'cpus' if key == 'CpusetCpus' else 'mems'}") from None
        if not want <= parse_set(avail or "0"):
            raise InvalidArgument(f"Requested {what} are not available - requested {v}, available: {avail}")
    w = _int(hc, "BlkioWeight")
    if w and not 10 <= w <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")
    if (w or hc.get("BlkioWeightDevice")) and not hi.blkio_weight:
        raise InvalidArgument("BlkioWeight: this kernel does not support Block I/O weight "
                              "(no blkio.weight or io.weight: the BFQ scheduler is not in use)")
    pl = hc.get("PidsLimit")
    if pl is not None:
        if not isinstance(pl, int):
            raise InvalidArgument("HostConfig.PidsLimit must be an integer")
        if pl <= 0:
            hc["PidsLimit"] = None   # dockerd: 0 and -1 mean unlimited
    if _int(hc, "ShmSize") < 0:
        raise InvalidArgument("SHM size can not be less than 0")
    adj = _int(hc, "OomScoreAdj")
    if not -1000 <= adj <= 1000:
        raise InvalidArgument(f"Invalid value {adj}, range for oom score adj is [-1000, 1000]")


def _dev(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidArgument(f"{path}: {e.strerror.lower() if e.strerror else e}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise InvalidArgument(f"{path}: not a block device")
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def _throttle(items: list[dict[str, Any]] | None, key: str) -> list[dict[str, int]]:
    out = []
    for d in items or []:
        ma, mi = _dev(str(d.get("Path", "")))
        out.append({"major": ma, "minor": mi, key: int(d.get("Rate" if key == "rate" else "Weight", 0))})
    return out


_MEMORY = (("Memory", "limit"), ("MemorySwap", "swap"), ("MemoryReservation", "reservation"))
_CPU = (("CpuShares", "shares"), ("CpuPeriod", "period"), ("CpuQuota", "quota"), ("CpuRealtimePeriod", "realtimePeriod"),
        ("CpuRealtimeRuntime", "realtimeRuntime"), ("CpusetCpus", "cpus"), ("CpusetMems", "mems"))


def to_oci(hc: dict[str, Any]) -> dict[str, Any]:
    """OCI `linux.resources` (without devices) for a validated HostConfig."""
    r: dict[str, Any] = {}
    mem = {oci: hc[k] for k, oci in _MEMORY if hc.get(k)}
    if hc.get("MemorySwappiness") not in (None, -1):
        mem["swappiness"] = hc["MemorySwappiness"]
    if hc.get("OomKillDisable"):
        mem["disableOOMKiller"] = True
    if mem:
        r["memory"] = mem
    cpu: dict[str, Any] = {}
    if hc.get("NanoCpus"):
        cpu["period"], cpu["quota"] = NANO_PERIOD, hc["NanoCpus"] * NANO_PERIOD // NANO
    cpu.update({oci: hc[k] for k, oci in _CPU if hc.get(k)})
    if cpu:
        r["cpu"] = cpu
    if hc.get("PidsLimit"):
        r["pids"] = {"limit": hc["PidsLimit"]}
    bio: dict[str, Any] = {}
    if hc.get("BlkioWeight"):
        bio["weight"] = hc["BlkioWeight"]
    for key, oci, unit in (("BlkioWeightDevice", "weightDevice", "weight"),
                           ("BlkioDeviceReadBps", "throttleReadBpsDevice", "rate"),
                           ("BlkioDeviceWriteBps", "throttleWriteBpsDevice", "rate"),
                           ("BlkioDeviceReadIOps", "throttleReadIOPSDevice", "rate"),
                           ("BlkioDeviceWriteIOps", "throttleWriteIOPSDevice", "rate")):
        if hc.get(key):
            bio[oci] = _throttle(hc[key], unit)
    if bio:
        r["blockIO"] = bio
    return r


def to_oci_update(hc: dict[str, Any], changed: set[str]) -> dict[str, Any]:
    """Resources for `runtime update`: the new values, with limits a user cleared written as
    unlimited so the cgroup forgets them."""
    r = to_oci(hc)
    if "PidsLimit" in changed and not hc.get("PidsLimit"):
        r.setdefault("pids", {})["limit"] = -1
    if changed & {"Memory", "MemorySwap"}:
        m = r.setdefault("memory", {})
        m.setdefault("limit", -1)
        m.setdefault("swap", -1)
    if changed & {"NanoCpus", "CpuQuota", "CpuPeriod"}:
        c = r.setdefault("cpu", {})
        c.setdefault("quota", -1)
        c.setdefault("period", NANO_PERIOD)
    return r


def _has_sys_resource() -> bool:
    for line in _read("/proc/self/status").splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) & (1 << 24))
    return False


def ulimits(hc: dict[str, Any], defaults: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """OCI rlimits from HostConfig.Ulimits over the daemon's default-ulimits; a limit above the
    daemon's own hard limit is refused (raising it needs CAP_SYS_RESOURCE, which root may lack)."""
    import resource
    merged: dict[str, dict[str, Any]] = {}
    for u in list(defaults.values()) + list(hc.get("Ulimits") or []):
        if not isinstance(u, dict) or not u.get("Name"):
            raise InvalidArgument("HostConfig.Ulimits: each entry needs a Name")
        merged[str(u["Name"]).lower()] = u
    out = []
    for name, u in merged.items():
        res = getattr(resource, f"RLIMIT_{name.upper()}", None)
        if res is None:
            raise InvalidArgument(f"invalid ulimit type: {name}")
        soft, hard = int(u.get("Soft", 0)), int(u.get("Hard", 0))
        if soft > hard:
            raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        _, host_hard = resource.getrlimit(res)
        if host_hard != resource.RLIM_INFINITY and hard > host_hard and not _has_sys_resource():
            raise InvalidArgument(f"ulimit {name}: hard limit {hard} is above the daemon's hard limit {host_hard}, "
                                  "and raising it needs CAP_SYS_RESOURCE, which the daemon does not hold")
        out.append({"type": f"RLIMIT_{name.upper()}", "soft": soft, "hard": hard})
    return out
