"""specconv: config.json (OCI runtime spec) → frozen dataclasses used by everything below."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SpecError(Exception):
    """The bundle's config.json is unusable."""


@dataclass(frozen=True)
class MountSpec:
    """One entry of `mounts`."""

    destination: str
    type: str
    source: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class Rlimit:
    """One `process.rlimits` entry."""

    type: str
    soft: int
    hard: int


@dataclass(frozen=True)
class Device:
    """One `linux.devices` entry."""

    path: str
    type: str
    major: int
    minor: int
    mode: int
    uid: int
    gid: int


@dataclass(frozen=True)
class Process:
    """`process`."""

    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    caps: dict[str, tuple[str, ...]]
    rlimits: tuple[Rlimit, ...]
    no_new_privileges: bool
    terminal: bool
    oom_score_adj: int | None


@dataclass(frozen=True)
class Spec:
    """The parts of an OCI runtime config this runtime implements."""

    root: Path
    root_readonly: bool
    process: Process
    hostname: str
    domainname: str
    mounts: tuple[MountSpec, ...]
    namespaces: tuple[tuple[str, str], ...]   # (type, path-or-"")
    cgroups_path: str
    resources: dict[str, Any]
    devices: tuple[Device, ...]
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    seccomp: dict[str, Any] | None
    sysctl: dict[str, str]
    rootfs_propagation: str
    annotations: dict[str, str] = field(default_factory=dict)
    uid_mappings: tuple[tuple[int, int, int], ...] = ()   # (container, host, size)
    gid_mappings: tuple[tuple[int, int, int], ...] = ()

    @property
    def new_userns(self) -> bool:
        """A user namespace of its own is created (not joined)."""
        return any(t == "user" and not path for t, path in self.namespaces)

    def map_texts(self) -> tuple[str, str]:
        """uid_map and gid_map contents."""
        return ("".join(f"{c} {h} {n}\n" for c, h, n in self.uid_mappings),
                "".join(f"{c} {h} {n}\n" for c, h, n in self.gid_mappings))


def load(bundle: Path) -> Spec:
    """Read and convert `bundle/config.json`."""
    try:
        raw = json.loads((bundle / "config.json").read_text())
    except FileNotFoundError:
        raise SpecError(f"{bundle}/config.json: no such file") from None
    except json.JSONDecodeError as e:
        raise SpecError(f"config.json: {e}") from None
    return convert(raw, bundle)


def convert(raw: dict[str, Any], bundle: Path) -> Spec:
    """Convert a parsed config.json."""
    try:
        p = raw["process"]
        root = Path(raw["root"]["path"])
        if not root.is_absolute():
            root = bundle / root
        user = p.get("user", {})
        caps = {k: tuple(v or ()) for k, v in (p.get("capabilities") or {}).items()}
        lx = raw.get("linux", {})
        return Spec(
            root=root,
            root_readonly=bool(raw["root"].get("readonly", False)),
            process=Process(
                args=tuple(p["args"]), env=tuple(p.get("env") or ()), cwd=p.get("cwd", "/"),
                uid=int(user.get("uid", 0)), gid=int(user.get("gid", 0)),
                additional_gids=tuple(int(g) for g in user.get("additionalGids") or ()),
                caps=caps,
                rlimits=tuple(Rlimit(r["type"], int(r["soft"]), int(r["hard"])) for r in p.get("rlimits") or ()),
                no_new_privileges=bool(p.get("noNewPrivileges", False)),
                terminal=bool(p.get("terminal", False)),
                oom_score_adj=p.get("oomScoreAdj"),
            ),
            hostname=raw.get("hostname", ""),
            domainname=raw.get("domainname", ""),
            mounts=tuple(MountSpec(m["destination"], m.get("type", "bind"), m.get("source", ""),
                                   tuple(m.get("options") or ())) for m in raw.get("mounts") or ()),
            namespaces=tuple((n["type"], n.get("path", "")) for n in lx.get("namespaces") or ()),
            cgroups_path=lx.get("cgroupsPath", ""),
            resources=lx.get("resources") or {},
            devices=tuple(Device(d["path"], d["type"], int(d.get("major", 0)), int(d.get("minor", 0)),
                                 int(d.get("fileMode", 0o666)), int(d.get("uid", 0)), int(d.get("gid", 0)))
                          for d in lx.get("devices") or ()),
            masked_paths=tuple(lx.get("maskedPaths") or ()),
            readonly_paths=tuple(lx.get("readonlyPaths") or ()),
            seccomp=lx.get("seccomp"),
            sysctl=dict(lx.get("sysctl") or {}),
            rootfs_propagation=lx.get("rootfsPropagation", ""),
            annotations=dict(raw.get("annotations") or {}),
            uid_mappings=tuple((int(m["containerID"]), int(m["hostID"]), int(m["size"]))
                               for m in lx.get("uidMappings") or ()),
            gid_mappings=tuple((int(m["containerID"]), int(m["hostID"]), int(m["size"]))
                               for m in lx.get("gidMappings") or ()),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise SpecError(f"invalid config.json: {e!r}") from None
