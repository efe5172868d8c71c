"""A container's mounts, as dockerd reads them: `HostConfig.Binds` (`-v src:dst[:opts]`),
`HostConfig.Mounts` (`--mount`), `HostConfig.Tmpfs` (`--tmpfs`), `Config.Volumes` and the image's
`VOLUME`s (anonymous volumes), `HostConfig.VolumesFrom`. Create turns them into mount points (a
list of dicts kept in the container's config, `MountPoint` as inspect shows it plus what start
needs); start turns those into OCI mounts. Every target is checked here (absolute, no `..`) and
resolved inside the rootfs by the runtime, never followed out of it."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgument, NotFound

_PROPAGATION = ("rprivate", "private", "rshared", "shared", "rslave", "slave")
_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_BIND_MODES = {"ro", "rw", "z", "Z", "nocopy", *_PROPAGATION, "consistent", "cached", "delegated"}


def _target(dest: Any, what: str) -> str:
    if not isinstance(dest, str) or not dest:
        raise InvalidArgument(f"invalid mount config for type \"{what}\": field Target must not be empty")
    if not dest.startswith("/"):
        raise InvalidArgument(f"invalid mount config for type \"{what}\": invalid mount path: '{dest}' "
                              "mount path must be absolute")
    if ".." in dest.split("/"):
        raise InvalidArgument(f"invalid mount path: '{dest}': '..' is not allowed in a mount target")
    clean = posixpath.normpath(dest)
    if clean == "/":
        raise InvalidArgument(f"invalid specification: destination can't be '/' in '{dest}'")
    if clean in ("/proc", "/sys", "/dev"):
        raise InvalidArgument(f"invalid mount config: {clean} cannot be mounted over")
    return clean


def _point(typ: str, dest: str, **kw: Any) -> dict[str, Any]:
    out = {"Type": typ, "Name": "", "Source": "", "Destination": dest, "Driver": "", "Mode": "", "RW": True,
           "Propagation": "", "NoCopy": False, "Anonymous": False, "CreateSource": False, "NonRecursive": False,
           "TmpfsOptions": [], "VolumeOptions": {}}
    out.update(kw)
    return out


def _bind(spec: str) -> dict[str, Any]:
    """One `-v src:dst[:opts]` of HostConfig.Binds."""
    parts = spec.split(":")
    if len(parts) == 1 and spec.startswith("/"):   # a destination alone: an anonymous volume
        return _point("volume", _target(spec, "volume"), Driver="local", Anonymous=True)
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    src, dest = parts[0], _target(parts[1], "bind" if parts[0].startswith("/") else "volume")
    modes = [m for m in (parts[2].split(",") if len(parts) == 3 else []) if m]
    for m in modes:
        if m not in _BIND_MODES:
            raise InvalidArgument(f"invalid mode: {m}")
    if "ro" in modes and "rw" in modes:
        raise InvalidArgument(f"invalid mode: {parts[2]}")
    prop = next((m for m in modes if m in _PROPAGATION), "")
    rw = "ro" not in modes
    mode = parts[2] if len(parts) == 3 else ""
    if src.startswith("/"):
        if "nocopy" in modes:
            raise InvalidArgument(f"invalid mode: {parts[2]}: nocopy applies to volumes only")
        return _point("bind", dest, Source=posixpath.normpath(src), Mode=mode, RW=rw, Propagation=prop or "rprivate",
                      CreateSource=True)
    if not _VOLUME_NAME.match(src):
        raise InvalidArgument(f"create {src}: \"{src}\" includes invalid characters for a local volume name, only "
                              "\"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, "
                              "use absolute path")
    if prop:
        raise InvalidArgument(f"invalid mode: {parts[2]}: propagation applies to binds only")
    return _point("volume", dest, Name=src, Driver="local", Mode=mode or "z", RW=rw, NoCopy="nocopy" in modes)


def _mount(m: Any) -> dict[str, Any]:
    """One entry of HostConfig.Mounts (`--mount`)."""
    if not isinstance(m, dict):
        raise InvalidArgument("HostConfig.Mounts: each mount must be an object")
    typ = m.get("Type")
    known = {"Type", "Source", "Target", "ReadOnly", "Consistency", "BindOptions", "VolumeOptions", "TmpfsOptions"}
    for k, v in m.items():
        if k not in known and v not in (None, "", {}, [], False):
            raise InvalidArgument(f"HostConfig.Mounts: field {k} is not supported")
    if typ not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"mount type unknown or not supported: \"{typ}\"" if typ not in ("npipe", "cluster")
                              else f"mount type \"{typ}\" is not supported on Linux")
    dest = _target(m.get("Target"), typ)
    rw = not m.get("ReadOnly")
    src = m.get("Source") or ""
    for other, key in (("bind", "BindOptions"), ("volume", "VolumeOptions"), ("tmpfs", "TmpfsOptions")):
        if other != typ and m.get(key):
            raise InvalidArgument(f"invalid mount config for type \"{typ}\": field {key} must not be specified")
    if typ == "bind":
        if not src:
            raise InvalidArgument("invalid mount config for type \"bind\": field Source must not be empty")
        if not src.startswith("/"):
            raise InvalidArgument(f"invalid mount config for type \"bind\": invalid mount path: '{src}' mount path "
                                  "must be absolute")
        bo = m.get("BindOptions") or {}
        for k, v in bo.items():
            if k not in ("Propagation", "NonRecursive", "CreateMountpoint") and v not in (None, "", False):
                raise InvalidArgument(f"invalid mount config for type \"bind\": BindOptions.{k} is not supported")
        prop = bo.get("Propagation") or "rprivate"
        if prop not in _PROPAGATION:
            raise InvalidArgument(f"invalid mount config for type \"bind\": invalid propagation mode {prop!r}")
        if not os.path.exists(src) and not bo.get("CreateMountpoint"):
            raise InvalidArgument(f"invalid mount config for type \"bind\": bind source path does not exist: {src}")
        return _point("bind", dest, Source=posixpath.normpath(src), RW=rw, Propagation=prop,
                      NonRecursive=bool(bo.get("NonRecursive")), CreateSource=bool(bo.get("CreateMountpoint")))
    if typ == "volume":
        vo = m.get("VolumeOptions") or {}
        for k, v in vo.items():
            if k not in ("NoCopy", "Labels", "DriverConfig") and v not in (None, "", {}, False):
                raise InvalidArgument(f"invalid mount config for type \"volume\": VolumeOptions.{k} is not supported")
        dc = vo.get("DriverConfig") or {}
        driver = dc.get("Name") or "local"
        if src and not _VOLUME_NAME.match(src):
            raise InvalidArgument(f"invalid mount config for type \"volume\": invalid volume name {src!r}")
        return _point("volume", dest, Name=src, Driver=driver, RW=rw, NoCopy=bool(vo.get("NoCopy")), Mode="z",
                      Anonymous=not src, VolumeOptions={"Labels": vo.get("Labels") or {},
                                                        "DriverOptions": dc.get("Options") or {}})
    if src:
        raise InvalidArgument("invalid mount config for type \"tmpfs\": field Source must not be specified")
    to = m.get("TmpfsOptions") or {}
    for k, v in to.items():
        if k not in ("SizeBytes", "Mode") and v not in (None, "", 0, [], False):
            raise InvalidArgument(f"invalid mount config for type \"tmpfs\": TmpfsOptions.{k} is not supported")
    opts = []
    if to.get("SizeBytes"):
        opts.append(f"size={int(to['SizeBytes'])}")
    if to.get("Mode"):
        opts.append(f"mode={int(to['Mode']):o}")
    return _point("tmpfs", dest, RW=rw, TmpfsOptions=opts)


def _tmpfs(dest: str, opts: str) -> dict[str, Any]:
    """One `--tmpfs /path[:opts]`."""
    items = [o for o in str(opts or "").split(",") if o]
    for o in items:
        key = o.split("=", 1)[0]
        if key not in ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "ro", "rw", "exec", "noexec", "suid",
                       "nosuid", "dev", "nodev", "atime", "noatime", "relatime", "strictatime", "nodiratime", "diratime",
                       "tmpcopyup", "notmpcopyup", "rprivate", "private"):
            raise InvalidArgument(f"invalid tmpfs option {o!r} for {dest}")
    # Unlisted: dockerd keeps HostConfig.Tmpfs out of inspect's Mounts (a --mount tmpfs is listed)
    return _point("tmpfs", _target(dest, "tmpfs"), RW="ro" not in items, Unlisted=True,
                  TmpfsOptions=[o for o in items if o not in ("ro", "rw")])


def parse(hc: dict[str, Any], config: dict[str, Any],
          donor: Callable[[str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Mount points of a new container (volumes not yet created: Name '' means anonymous)."""
    points: list[dict[str, Any]] = []
    for item in hc.get("VolumesFrom") or []:
        ref, _, mode = str(item).partition(":")
        if mode not in ("", "ro", "rw"):
            raise InvalidArgument(f"invalid mode for volumes-from: {mode}")
        for p in donor(ref):
            q = dict(p)
            if mode:
                q["RW"] = mode == "rw"
            q["Anonymous"] = False   # it belongs to the donor: `rm -v` of this one leaves it
            points.append(q)
    own: list[dict[str, Any]] = [_bind(str(b)) for b in hc.get("Binds") or []]
    own += [_mount(m) for m in hc.get("Mounts") or []]
    own += [_tmpfs(str(d), o) for d, o in (hc.get("Tmpfs") or {}).items()]
    seen: set[str] = set()
    for p in own:
        if p["Destination"] in seen:
            raise InvalidArgument(f"Duplicate mount point: {p['Destination']}")
        seen.add(p["Destination"])
    points = [p for p in points if p["Destination"] not in seen] + own   # its own win over a donor's
    seen |= {p["Destination"] for p in points}
    for dest in config.get("Volumes") or {}:   # the request's and the image's, merged by create
        d = _target(dest, "volume")
        if d not in seen:
            points.append(_point("volume", d, Driver="local", Anonymous=True))
            seen.add(d)
    return points


def donor_points(points: list[dict[str, Any]], ref: str) -> list[dict[str, Any]]:
    """What `--volumes-from` takes: volumes and binds (not tmpfs)."""
    if points is None:
        raise NotFound(f"No such container: {ref}")
    return [p for p in points if p["Type"] in ("volume", "bind")]


def inspect(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`Mounts` of inspect and of the container list, as dockerd shows them."""
    out = []
    for p in points:
        if p.get("Unlisted"):
            continue
        m = {"Type": p["Type"], "Source": p["Source"], "Destination": p["Destination"], "Mode": p["Mode"],
             "RW": p["RW"], "Propagation": p["Propagation"]}
        if p["Type"] == "volume":
            m = {"Type": "volume", "Name": p["Name"], **{k: v for k, v in m.items() if k != "Type"},
                 "Driver": p["Driver"]}
        out.append(m)
    return out


def oci(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OCI mounts, parents before children (sorted by depth, as dockerd)."""
    out = []
    for p in sorted(points, key=lambda p: p["Destination"].rstrip("/").count("/")):
        ro = [] if p["RW"] else ["ro"]
        if p["Type"] == "tmpfs":
            out.append({"destination": p["Destination"], "type": "tmpfs", "source": "tmpfs",
                        "options": ["noexec", "nosuid", "nodev", *p["TmpfsOptions"], *ro]})
        else:
            prop = p["Propagation"] or "rprivate"
            out.append({"destination": p["Destination"], "type": "bind", "source": p["Source"],
                        "options": ["bind" if p["NonRecursive"] else "rbind", prop, *ro]})
    return out
