"""Cgroup manager for v1 (incl. hybrid) and v2 hosts: create, join, set limits, destroy.
Narrow on purpose: create / join / destroy / paths."""

from __future__ import annotations

import os
from typing import Any

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
    with open(path, "w") as f:
        f.write(value)


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
        """Apply the OCI `linux.resources` this runtime supports."""
        mem = (r.get("memory") or {}).get("limit")
        pids = (r.get("pids") or {}).get("limit")
        shares = (r.get("cpu") or {}).get("shares")
        if is_unified():
            p = self.paths[""]
            if mem:
                _write(os.path.join(p, "memory.max"), str(mem))
            if pids:
                _write(os.path.join(p, "pids.max"), str(pids) if pids > 0 else "max")
            if shares:
                _write(os.path.join(p, "cpu.weight"), str(max(1, min(10000, 1 + ((shares - 2) * 9999) // 262142))))
            return
        for name, p in self.paths.items():
            ctrls = name.split(",")
            if "memory" in ctrls and mem:
                _write(os.path.join(p, "memory.limit_in_bytes"), str(mem))
            if "pids" in ctrls and pids:
                _write(os.path.join(p, "pids.max"), str(pids) if pids > 0 else "max")
            if "cpu" in ctrls and shares:
                _write(os.path.join(p, "cpu.shares"), str(shares))
            if "devices" in ctrls and r.get("devices"):
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

    def freeze(self, frozen: bool) -> None:
        """Freeze (pause) or thaw every process of the container, and wait until it holds."""
        import time
        for name, p in self.paths.items():
            if is_unified() and name == "":
                _write(os.path.join(p, "cgroup.freeze"), "1" if frozen else "0")
                want, f, key = ("1" if frozen else "0"), os.path.join(p, "cgroup.events"), "frozen"
            elif "freezer" in name.split(","):
                _write(os.path.join(p, "freezer.state"), "FROZEN" if frozen else "THAWED")
                want, f, key = ("FROZEN" if frozen else "THAWED"), os.path.join(p, "freezer.state"), ""
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

    def destroy(self) -> None:
        """rmdir the cgroups, then the shared parent if it is empty."""
        for p in self.paths.values():
            for _ in range(50):
                try:
                    os.rmdir(p)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    import time
                    time.sleep(0.01)
            parent = os.path.dirname(p)
            try:
                os.rmdir(parent)
            except OSError:
                pass
