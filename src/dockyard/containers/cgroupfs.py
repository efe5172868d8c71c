"""Where a running container's cgroups are, read from its init process (works whatever runtime
created them: ours, runc or crun), and the counters `stats` reports."""

from __future__ import annotations

import os

from ..runtime.cgroups import hierarchies, is_unified


def dirs(init_pid: int) -> dict[str, str]:
    """{controller: directory} of the process's cgroups; v2 is keyed ''."""
    try:
        lines = open(f"/proc/{init_pid}/cgroup").read().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    mounts = hierarchies()
    out: dict[str, str] = {}
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        for names, mp in mounts.items():
            if names == ctrls:
                d = os.path.join(mp, path.lstrip("/"))
                for name in (ctrls.split(",") if ctrls else [""]):
                    out[name] = d
    return out


def pids(init_pid: int) -> set[int]:
    """Every process in the container's cgroup."""
    d = dirs(init_pid)
    for want in ("pids", "memory", ""):
        if want in d:
            try:
                with open(os.path.join(d[want], "cgroup.procs")) as f:
                    return {int(x) for x in f.read().split()}
            except FileNotFoundError:
                continue
    return {init_pid}


def read(path: str) -> str:
    """A cgroup file's text, '' if it is not there."""
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, OSError):
        return ""


def read_int(path: str) -> int | None:
    """A number in a cgroup file ('max' and absent are None)."""
    s = read(path).strip()
    return int(s) if s.lstrip("-").isdigit() else None


def kv(path: str) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, cpuacct.stat)."""
    out = {}
    for line in read(path).splitlines():
        k, _, v = line.partition(" ")
        if v.strip().lstrip("-").isdigit():
            out[k] = int(v)
    return out


def frozen(init_pid: int) -> bool | None:
    """Whether the kernel holds the container frozen (v1 freezer.state, v2 cgroup.events);
    None when its cgroup cannot be read (the process is gone)."""
    d = dirs(init_pid)
    if "freezer" in d:
        state = read(os.path.join(d["freezer"], "freezer.state")).strip()
        return state in ("FROZEN", "FREEZING") if state else None
    if "" in d:
        for line in read(os.path.join(d[""], "cgroup.events")).splitlines():
            if line.startswith("frozen "):
                return line.split()[1] == "1"
    return None


def set_parent_limits(parent: str, shares: int, period: int, quota: int, memory: int) -> dict[str, str]:
    """CPU shares, CFS period and quota and the memory limit (0: leave as is / no limit) of a cgroup that
    holds containers (a Kubernetes pod's), in every hierarchy that has the controller; made when missing.
    Returns {file: value written}. Blocking: a worker thread."""
    mounts = hierarchies()
    written: dict[str, str] = {}

    def put(controller: str, name: str, value: str) -> None:
        for names, mp in mounts.items():
            if controller in names.split(","):
                d = os.path.join(mp, parent.strip("/"))
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, name), "w") as f:
                    f.write(value)
                written[os.path.join(d, name)] = value
                return
    if is_unified():
        if shares:
            put("", "cpu.weight", str(1 + ((shares - 2) * 9999) // 262142))
        if quota:
            put("", "cpu.max", f"{quota} {period or 100000}")
        if memory:
            put("", "memory.max", str(memory))
        return written
    if shares:
        put("cpu", "cpu.shares", str(shares))
    if period:
        put("cpu", "cpu.cfs_period_us", str(period))
    if quota:
        put("cpu", "cpu.cfs_quota_us", str(quota))
    if memory:
        put("memory", "memory.limit_in_bytes", str(memory))
    return written
