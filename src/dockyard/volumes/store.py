"""Volumes of the `local` driver, laid out as dockerd's: `<data-root>/volumes/<name>/_data` holds
the data, `<name>/opts.json` the record (driver, labels, options, created). Options `type`,
`device`, `o` (tmpfs, bind, block-device filesystems) are mounted on `_data` when the first
running container needs the volume, and unmounted when the last one stops.

Blocking (files, mounts, copies): run in worker threads."""

from __future__ import annotations

import builtins
import json
import os
import re
import secrets
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Conflict, InvalidArgument, NotFound, SystemError_, Unavailable
from ..linux import syscalls
from .plugins import Registry

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ANONYMOUS = "com.docker.volume.anonymous"
LOCAL_OPTS = {"type", "device", "o", "size"}


@dataclass
class Volume:
    """One volume's record."""

    name: str
    mountpoint: str
    created: str
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    driver: str = "local"

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS in self.labels

    def view(self, usage: tuple[int, int] | None = None) -> dict[str, Any]:
        """Docker's Volume object."""
        out: dict[str, Any] = {"CreatedAt": self.created, "Driver": self.driver, "Labels": self.labels or {},
                               "Mountpoint": self.mountpoint, "Name": self.name,
                               "Options": self.options or {}, "Scope": "local"}
        if usage is not None:
            out["UsageData"] = {"Size": usage[0], "RefCount": usage[1]}
        return out


class VolumeStore:
    """The local driver's volumes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o701)
        self.lock = threading.Lock()
        self.plugins = Registry()
        self.by_name: dict[str, Volume] = {}
        for d in sorted(root.iterdir()):
            try:
                rec = json.loads((d / "opts.json").read_text())
            except (OSError, ValueError):
                continue   # a create cut short: no record, so never a volume (its data is kept)
            driver = rec.get("driver") or "local"
            self.by_name[d.name] = Volume(d.name, str(d / "_data") if driver == "local" else "", rec["created"],
                                          rec.get("labels") or {}, rec.get("options") or {}, driver)

    def get(self, name: str) -> Volume:
        v = self.by_name.get(name)
        if v is None:
            raise NotFound(f"get {name}: no such volume")
        return v

    def find(self, name: str) -> Volume:
        """`get`, else a volume one of the plugins in use knows (VolumeDriver.Get)."""
        v = self.by_name.get(name)
        if v is not None:
            return v
        for pname, plugin in sorted(self.plugins.by_name.items()):
            try:
                got = plugin.get(name)
            except (SystemError_, Unavailable):
                continue
            if got.get("Name") == name:
                return Volume(name, str(got.get("Mountpoint") or ""), "", {}, {}, pname)
        raise NotFound(f"get {name}: no such volume")

    def list(self) -> list[Volume]:
        return sorted(self.by_name.values(), key=lambda v: v.name)

    def with_plugins(self) -> tuple["builtins.list[Volume]", "builtins.list[str]"]:
        """Our records and the volumes the plugins in use list beyond them (as dockerd's list
        merges every driver's); a plugin that fails is a warning, not an error."""
        out, warnings = self.list(), []
        for name, plugin in sorted(self.plugins.by_name.items()):
            try:
                listed = plugin.list()
            except (SystemError_, Unavailable, NotFound) as e:
                warnings.append(f"volume plugin {name}: {e.message}")
                continue
            for item in listed:
                n = str(item.get("Name") or "")
                if n and n not in self.by_name:
                    out.append(Volume(n, str(item.get("Mountpoint") or ""), "", {}, {}, name))
        return sorted(out, key=lambda v: v.name), warnings

    def create(self, name: str, driver: str, options: dict[str, str], labels: dict[str, str], created: str) -> Volume:
        """A new volume, or the existing one of that name (as dockerd: create is idempotent)."""
        driver = driver or "local"
        if driver != "local":
            return self._create_with_plugin(name, driver, options, labels, created)
        if not name:
            name = secrets.token_hex(32)
        elif not _NAME.match(name):
            raise InvalidArgument(f"create {name}: \"{name}\" includes invalid characters for a local volume name, "
                                  "only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host "
                                  "directory, use absolute path")
        for k in options:
            if k not in LOCAL_OPTS:
                raise InvalidArgument(f"create {name}: invalid option key: \"{k}\"")
        if options and not options.get("type") and not options.get("size"):
            raise InvalidArgument(f"create {name}: missing required option: \"type\"")
        if options.get("type") and options["type"] != "tmpfs" and not options.get("device"):
            raise InvalidArgument(f"create {name}: missing required option: \"device\"")
        with self.lock:
            if name in self.by_name:
                return self.by_name[name]
            d = self.root / name
            (d / "_data").mkdir(parents=True, exist_ok=True)
            os.chmod(d / "_data", 0o755)
            rec = {"created": created, "labels": labels, "options": options, "driver": "local"}
            tmp = d / "opts.json.tmp"
            tmp.write_text(json.dumps(rec))
            os.replace(tmp, d / "opts.json")   # the record last: a crash before it leaves no half volume
            v = Volume(name, str(d / "_data"), created, labels, options)
            self.by_name[name] = v
            return v

    def _create_with_plugin(self, name: str, driver: str, options: dict[str, str], labels: dict[str, str],
                            created: str) -> Volume:
        plugin = self.plugins.get(driver)
        with self.lock:
            if name in self.by_name:
                v = self.by_name[name]
                if v.driver != driver:
                    raise Conflict(f"create {name}: volume name must be unique (it exists with driver {v.driver})")
                return v
        name = name or secrets.token_hex(32)
        if not _NAME.match(name):
            raise InvalidArgument(f"create {name}: invalid volume name")
        plugin.create(name, options)   # the plugin first: no record of a volume it refused
        with self.lock:
            d = self.root / name
            d.mkdir(exist_ok=True)
            rec = {"created": created, "labels": labels, "options": options, "driver": driver}
            tmp = d / "opts.json.tmp"
            tmp.write_text(json.dumps(rec))
            os.replace(tmp, d / "opts.json")
            v = Volume(name, "", created, labels, options, driver)
            self.by_name[name] = v
            return v

    def remove(self, v: Volume, users: "builtins.list[str]", trash: Path) -> None:
        """Record and data; 409 while containers use it."""
        if users:
            raise Conflict(f"remove {v.name}: volume is in use - [{', '.join(users)}]")
        from ..store import trash as trash_mod
        if v.driver != "local":
            self.plugins.get(v.driver).remove(v.name)   # its error keeps the record, as dockerd
        with self.lock:
            self.unmount(v)
            (self.root / v.name / "opts.json").unlink(missing_ok=True)   # gone as a volume, then its data
            self.by_name.pop(v.name, None)
        trash_mod.remove_tree(self.root / v.name, trash)

    # --- mounting the local driver's options ---------------------------------------------------------------------
    def mount(self, v: Volume, ident: str) -> str:
        """The path a container (`ident`) binds: a plugin's mountpoint for that mount ID; else
        `_data`, with the volume's filesystem mounted on it first when it has options."""
        if v.driver != "local":
            v.mountpoint = self.plugins.get(v.driver).mount(v.name, ident)
            return v.mountpoint
        if not v.options:
            return v.mountpoint
        from ..store.mount import is_mounted
        with self.lock:
            if is_mounted(v.mountpoint):
                return v.mountpoint
            typ = v.options.get("type") or "tmpfs"
            data = v.options.get("o", "")
            if v.options.get("size"):
                data = ",".join(x for x in (data, f"size={v.options['size']}") if x)
            device = v.options.get("device") or typ
            flags = 0
            if typ == "none" or "bind" in data.split(","):
                flags = syscalls.MS_BIND | (syscalls.MS_REC if "rbind" in data.split(",") else 0)
                data = ",".join(x for x in data.split(",") if x not in ("bind", "rbind"))
            try:
                syscalls.mount(device, v.mountpoint, None if flags else typ, flags, data or None)
            except OSError as e:
                raise SystemError_(f"error while mounting volume '{v.mountpoint}': failed to mount local volume: "
                                   f"mount {device}:{v.mountpoint}, flags: {hex(flags)}, data: {data}: "
                                   f"{e.strerror or e}") from None
            return v.mountpoint

    def unmount(self, v: Volume, ident: str = "") -> None:
        """The local driver's filesystem; a plugin's mount for that mount ID."""
        if v.driver != "local":
            if ident:
                self.plugins.get(v.driver).unmount(v.name, ident)
            return
        if not v.options:
            return
        from ..store.mount import is_mounted, unmount
        if is_mounted(v.mountpoint):
            unmount(v.mountpoint)

    def size(self, v: Volume) -> int:
        """Bytes used (du), -1 if unknown."""
        p = subprocess.run(["du", "-s", "-B1", "--", v.mountpoint], capture_output=True, text=True)
        try:
            return int(p.stdout.split()[0])
        except (IndexError, ValueError):
            return -1
