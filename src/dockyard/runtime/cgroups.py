"""Cgroup manager for v1 (incl. hybrid) and v2 hosts: create, join, set limits, destroy.
Narrow on purpose: create / join / destroy / paths."""

from __future__ import annotations

import os
from typing import Any

from ..linux import syscalls as sc

CGROUP_ROOT = "/sys/fs/cgroup"


def hierarchies() -> dict[str, str]:
    """Mounted cgroup hierarchies: {name: mountpoint}; v2 is named '' (unified)."""
    out: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields = post.split()
            if not fields:
                continue
            mp = pre.split()[4]
            if fields[0] == "cgroup2":
                out.setdefault("", mp)
            elif fields[0] == "cgroup":
                opts = fields[2].split(",")
                names = [o for o in opts if o not in ("rw", "ro", "relatime", "noexec", "nosuid", "nodev", "clone_children")]
                names = [o[5:] if o.startswith("name=") else o for o in names if not o.startswith("release_agent")]
                out.setdefault(",".join(names) or os.path.basename(mp), mp)
    return out


def is_unified() -> bool:
    """True on a pure cgroup v2 host."""
    return os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))


def _write(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise OSError(e.errno, f"cannot write {value!r} to {path}: {e.strerror}") from None


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _v1_memory(p: str, r: dict[str, Any]) -> None:
    m = r.get("memory") or {}
    limit, swap = m.get("limit"), m.get("swap")
    lim_f, sw_f = os.path.join(p, "memory.limit_in_bytes"), os.path.join(p, "memory.memsw.limit_in_bytes")
    if limit is not None and swap is not None:
        # the kernel keeps limit <= memsw at every step: raise memsw first when growing
        cur_sw = int(_read(sw_f)) if os.path.exists(sw_f) else -1
        if swap == -1 or (limit != -1 and cur_sw != -1 and limit > cur_sw):
            _write(sw_f, str(swap))
            _write(lim_f, str(limit))
        else:
            _write(lim_f, str(limit))
            _write(sw_f, str(swap))
    elif limit is not None:
        _write(lim_f, str(limit))
    elif swap is not None:
        _write(sw_f, str(swap))
    if m.get("reservation") is not None:
        _write(os.path.join(p, "memory.soft_limit_in_bytes"), str(m["reservation"]))
    if m.get("kernel") is not None:
        _write(os.path.join(p, "memory.kmem.limit_in_bytes"), str(m["kernel"]))
    if m.get("kernelTCP") is not None:
        _write(os.path.join(p, "memory.kmem.tcp.limit_in_bytes"), str(m["kernelTCP"]))
    if m.get("swappiness") is not None:
        _write(os.path.join(p, "memory.swappiness"), str(m["swappiness"]))
    if m.get("disableOOMKiller"):
        _write(os.path.join(p, "memory.oom_control"), "1")


def _v1_cpu(p: str, r: dict[str, Any]) -> None:
    c = r.get("cpu") or {}
    if c.get("shares"):
        _write(os.path.join(p, "cpu.shares"), str(c["shares"]))
    if c.get("period"):
        _write(os.path.join(p, "cpu.cfs_period_us"), str(c["period"]))
    if c.get("quota"):
        _write(os.path.join(p, "cpu.cfs_quota_us"), str(c["quota"]))
    if c.get("realtimePeriod"):
        _write(os.path.join(p, "cpu.rt_period_us"), str(c["realtimePeriod"]))
    if c.get("realtimeRuntime"):
        _rt_budget(os.path.dirname(p), int(c["realtimeRuntime"]),
                   int(c.get("realtimePeriod") or _read(os.path.join(p, "cpu.rt_period_us"))))
        _write(os.path.join(p, "cpu.rt_runtime_us"), str(c["realtimeRuntime"]))


def _rt_budget(parent: str, want: int, period: int) -> None:
    """Give the ancestors (made by the engine, starting with no real-time budget) enough
    cpu.rt_runtime_us for a child asking `want` per `period`: the kernel checks each group's
    runtime/period share against its parent's, so budgets are shares, set from the top down."""
    chain = []
    cur = parent
    while os.path.exists(os.path.join(cur, "cpu.rt_runtime_us")) and \
            os.path.exists(os.path.join(os.path.dirname(cur), "cpu.rt_runtime_us")):
        chain.append(cur)
        cur = os.path.dirname(cur)
    for d in reversed(chain):
        share = want / period
        for c in os.listdir(d):
            f = os.path.join(d, c, "cpu.rt_runtime_us")
            if os.path.isfile(f):
                share += int(_read(f)) / int(_read(os.path.join(d, c, "cpu.rt_period_us")))
        d_period = int(_read(os.path.join(d, "cpu.rt_period_us")))
        need = -(-int(share * d_period * 1000) // 1000)
        if int(_read(os.path.join(d, "cpu.rt_runtime_us"))) < need:
            _write(os.path.join(d, "cpu.rt_runtime_us"), str(need))


def prepare_rt_parent(cgroups_path: str, want: int, period: int) -> None:
    """For a runtime that expects the parent to hold a real-time budget (runc): create the
    parent cgroup in the cpu hierarchy and give it (and its ancestors) the share."""
    if is_unified():
        return
    for name, mp in hierarchies().items():
        if "cpu" in name.split(","):
            parent = mp + os.path.dirname("/" + cgroups_path.strip("/"))
            os.makedirs(parent, exist_ok=True)
            _rt_budget(parent, want, period)


def _v1_cpuset(p: str, r: dict[str, Any]) -> None:
    c = r.get("cpu") or {}
    if c.get("cpus"):
        _write(os.path.join(p, "cpuset.cpus"), c["cpus"])
    if c.get("mems"):
        _write(os.path.join(p, "cpuset.mems"), c["mems"])


def _v1_pids(p: str, r: dict[str, Any]) -> None:
    limit = (r.get("pids") or {}).get("limit")
    if limit:
        _write(os.path.join(p, "pids.max"), str(limit) if limit > 0 else "max")


_THROTTLE = (("throttleReadBpsDevice", "read_bps_device", "rbps"), ("throttleWriteBpsDevice", "write_bps_device", "wbps"),
             ("throttleReadIOPSDevice", "read_iops_device", "riops"), ("throttleWriteIOPSDevice", "write_iops_device", "wiops"))


def _v1_blkio(p: str, r: dict[str, Any]) -> None:
    b = r.get("blockIO") or {}
    wfile = "blkio.weight" if os.path.exists(os.path.join(p, "blkio.weight")) else "blkio.bfq.weight"
    if b.get("weight"):
        _write(os.path.join(p, wfile), str(b["weight"]))
    for d in b.get("weightDevice") or []:
        _write(os.path.join(p, wfile + "_device" if wfile == "blkio.weight" else wfile),
               f"{d['major']}:{d['minor']} {d['weight']}")
    for key, fname, _ in _THROTTLE:
        for d in b.get(key) or []:
            _write(os.path.join(p, "blkio.throttle." + fname), f"{d['major']}:{d['minor']} {d['rate']}")


_V1 = {"memory": _v1_memory, "cpu": _v1_cpu, "cpuset": _v1_cpuset, "pids": _v1_pids, "blkio": _v1_blkio}


def _set_v2(p: str, r: dict[str, Any]) -> None:
    """runc's fs2 conversions."""
    m = r.get("memory") or {}
    if m.get("swappiness") is not None or m.get("disableOOMKiller") or m.get("kernel"):
        raise OSError("memory swappiness, kernel memory and disabling the OOM killer are not supported on cgroup v2")
    limit, swap = m.get("limit"), m.get("swap")
    if swap is not None:
        _write(os.path.join(p, "memory.swap.max"),
               "max" if swap == -1 or limit in (None, -1) else str(max(0, swap - limit)))
    if limit is not None:
        _write(os.path.join(p, "memory.max"), "max" if limit == -1 else str(limit))
    if m.get("reservation") is not None:
        _write(os.path.join(p, "memory.low"), str(m["reservation"]))
    c = r.get("cpu") or {}
    if c.get("realtimePeriod") or c.get("realtimeRuntime"):
        raise OSError("real-time CPU limits are not supported on cgroup v2")
    if c.get("shares"):
        _write(os.path.join(p, "cpu.weight"), str(max(1, min(10000, 1 + ((c["shares"] - 2) * 9999) // 262142))))
    if c.get("quota") or c.get("period"):
        q = c.get("quota")
        _write(os.path.join(p, "cpu.max"), f"{'max' if not q or q < 0 else q} {c.get('period') or 100000}")
    if c.get("cpus"):
        _write(os.path.join(p, "cpuset.cpus"), c["cpus"])
    if c.get("mems"):
        _write(os.path.join(p, "cpuset.mems"), c["mems"])
    limit = (r.get("pids") or {}).get("limit")
    if limit:
        _write(os.path.join(p, "pids.max"), str(limit) if limit > 0 else "max")
    b = r.get("blockIO") or {}
    if b.get("weight"):
        _write(os.path.join(p, "io.bfq.weight"), f"default {b['weight']}")
    for d in b.get("weightDevice") or []:
        _write(os.path.join(p, "io.bfq.weight"), f"{d['major']}:{d['minor']} {d['weight']}")
    for key, _, v2 in _THROTTLE:
        for d in b.get(key) or []:
            _write(os.path.join(p, "io.max"), f"{d['major']}:{d['minor']} {v2}={d['rate']}")


class Manager:
    """Cgroups of one container, at `path` (e.g. /dockyard/<id>) in every hierarchy."""

    def __init__(self, path: str, paths: dict[str, str] | None = None) -> None:
        self.path = "/" + path.strip("/")
        self.paths = paths if paths is not None else {k: mp + self.path for k, mp in hierarchies().items()}

    def create(self, resources: dict[str, Any]) -> None:
        """mkdir in every hierarchy and apply resources."""
        for name, p in self.paths.items():
            if name == "" and not is_unified():
                os.makedirs(p, exist_ok=True)  # hybrid: membership only
                continue
            if "cpuset" in name.split(","):
                self._init_cpuset(p)
            os.makedirs(p, exist_ok=True)
        if is_unified():
            self._enable_v2_controllers()
        self.set(resources)

    def _init_cpuset(self, p: str) -> None:
        # v1 cpuset cgroups start empty; copy cpus/mems down from the root.
        root = p[: -len(self.path)]
        parts = self.path.strip("/").split("/")
        cur = root
        for comp in parts:
            parent, cur = cur, os.path.join(cur, comp)
            os.makedirs(cur, exist_ok=True)
            for f in ("cpuset.cpus", "cpuset.mems"):
                try:
                    if not open(os.path.join(cur, f)).read().strip():
                        _write(os.path.join(cur, f), open(os.path.join(parent, f)).read().strip())
                except OSError:
                    pass

    def _enable_v2_controllers(self) -> None:
        root = self.paths[""][: -len(self.path)]
        cur = root
        for comp in self.path.strip("/").split("/")[:-1]:
            cur = os.path.join(cur, comp)
        # enable every available controller down the chain
        cur = root
        for comp in self.path.strip("/").split("/"):
            try:
                ctrls = open(os.path.join(cur, "cgroup.controllers")).read().split()
                _write(os.path.join(cur, "cgroup.subtree_control"), " ".join("+" + c for c in ctrls))
            except OSError:
                pass
            cur = os.path.join(cur, comp)

    def set(self, r: dict[str, Any]) -> None:
        """Apply the OCI `linux.resources` (memory, cpu, cpuset, pids, blockIO, devices); a value
        the kernel refuses is an error naming the file, never skipped."""
        if is_unified():
            _set_v2(self.paths[""], r)
            if r.get("devices"):   # no devices controller on v2: an eBPF filter on the cgroup
                from . import devfilter
                devfilter.attach(self.paths[""], r["devices"])
            return
        for name, p in self.paths.items():
            for ctrl in name.split(","):
                fn = _V1.get(ctrl)
                if fn is not None:
                    fn(p, r)
            if "devices" in name.split(",") and r.get("devices"):
                self._devices(p, r["devices"])

    @staticmethod
    def _devices(p: str, rules: list[dict[str, Any]]) -> None:
        for rule in rules:
            t = rule.get("type", "a")
            major = "*" if rule.get("major") in (None, -1) else str(rule["major"])
            minor = "*" if rule.get("minor") in (None, -1) else str(rule["minor"])
            line = "a" if t == "a" and major == "*" and minor == "*" else f"{t} {major}:{minor} {rule.get('access', 'rwm')}"
            _write(os.path.join(p, "devices.allow" if rule.get("allow") else "devices.deny"), line)

    def join(self, pid: int) -> None:
        """Move a process into every hierarchy."""
        for p in self.paths.values():
            _write(os.path.join(p, "cgroup.procs"), str(pid))

    def fork(self, flags: int = 0) -> tuple[int, bool]:
        """os.fork() with the child placed in the unified hierarchy's cgroup at birth when the
        kernel can (clone3): (pid, placed). The child then calls `join_self(placed)`.
        With namespace `flags` (CLONE_NEW*) the child is also born in new namespaces: that
        needs clone3, so OSError when the kernel has none (the caller forks the slow way)."""
        unified = self.paths.get("")
        fd = -1
        if unified:
            try:
                fd = os.open(unified, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                fd = -1
        try:
            if fd >= 0 or flags:
                try:
                    return sc.fork_into_cgroup(fd, flags), fd >= 0
                except OSError:
                    if flags:
                        raise
        finally:
            if fd >= 0:
                os.close(fd)
        return os.fork(), False

    def join_self(self, placed: bool = False) -> None:
        """Move the calling single-threaded process into every hierarchy: a cgroup v1 one by
        writing 0 to `tasks` (the calling thread: the kernel then takes no global lock, so no
        RCU grace period, unlike a write of a pid to cgroup.procs), the unified one through
        cgroup.procs unless `fork` placed it there already."""
        for name, p in self.paths.items():
            if name == "":
                if not placed:
                    _write(os.path.join(p, "cgroup.procs"), "0")
            else:
                _write(os.path.join(p, "tasks"), "0")

    def freeze(self, frozen: bool) -> None:
        """Freeze (pause) or thaw every process of the container, and wait until it holds. A thaw
        of a cgroup that is gone is done: a thawed container with a pending SIGKILL (`rm -f` of a
        paused one) dies at once, and its cgroup may be removed before the state is read back."""
        try:
            self._freeze(frozen)
        except FileNotFoundError:   # (_write's OSError for ENOENT is a FileNotFoundError too)
            if frozen:
                raise

    def _freeze(self, frozen: bool) -> None:
        import time
        for name, p in self.paths.items():
            if is_unified() and name == "":
                want, f, key = ("1" if frozen else "0"), os.path.join(p, "cgroup.events"), "frozen"
                _write(os.path.join(p, "cgroup.freeze"), want)
            elif "freezer" in name.split(","):
                want, f, key = ("FROZEN" if frozen else "THAWED"), os.path.join(p, "freezer.state"), ""
                _write(f, want)
            else:
                continue
            for _ in range(500):
                text = open(f).read()
                state = dict(line.split() for line in text.splitlines()).get(key, "") if key else text.strip()
                if state == want:
                    return
                time.sleep(0.002)
            raise OSError(f"cgroup did not reach {want}")
        raise OSError("no freezer cgroup for this container")

    def pids(self) -> list[int]:
        """Processes in the container's cgroup."""
        for p in self.paths.values():
            try:
                return [int(x) for x in open(os.path.join(p, "cgroup.procs")).read().split()]
            except OSError:
                continue
        return []

    def kill_all(self, tries: int = 200) -> None:
        """SIGKILL every process in the container's cgroup until none is left (thawed first: a
        frozen process cannot die). For leftovers: a pre-start init whose creator was lost."""
        import signal
        import time
        try:
            self.freeze(False)
        except OSError:
            pass
        for _ in range(tries):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def destroy(self, wait: bool = True) -> bool:
        """rmdir the container's cgroups. The parent stays: removing it when it looks empty would
        race with another container being created in it (its mkdir -p, then the child's mkdir).
        A cgroup still busy is retried for up to 0.5 s; without `wait`, not at all. Whether all
        are gone."""
        gone = True
        for p in self.paths.values():
            for _ in range(50 if wait else 1):
                try:
                    os.rmdir(p)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if wait:
                        import time
                        time.sleep(0.01)
            else:
                gone = False
        return gone


def remove_if_empty(path: str) -> None:
    """rmdir a parent cgroup (`/a/b`) and its ancestors below the root in every hierarchy,
    where they are empty (for the engine, when it knows no container is being made there)."""
    parts = ["/" + "/".join(path.strip("/").split("/")[:i]) for i in range(len(path.strip("/").split("/")), 0, -1)]
    for mp in hierarchies().values():
        for rel in parts:
            try:
                os.rmdir(mp + rel)
            except OSError:
                break
