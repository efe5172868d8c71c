"""Mounts as data (the lingua franca between snapshotter and engine) plus the one place
that performs them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import SystemError_
from ..linux import syscalls as sc


@dataclass(frozen=True)
class Mount:
    """A serialized mount(2) call: type, source and options."""

    type: str
    source: str
    options: tuple[str, ...] = field(default_factory=tuple)

    def mount(self, target: str) -> None:
        """Perform the mount onto `target`."""
        flags = 0
        data = []
        for o in self.options:
            if o == "ro":
                flags |= sc.MS_RDONLY
            elif o in ("bind", "rbind"):
                flags |= sc.MS_BIND | (sc.MS_REC if o == "rbind" else 0)
            else:
                data.append(o)
        try:
            sc.mount(self.source, target, None if flags & sc.MS_BIND else self.type, flags, ",".join(data) or None)
        except OSError as e:
            raise SystemError_(f"mount {self.type} on {target}: {e.strerror}") from None


def mount_tmpfs(target: str, data: str) -> None:
    """A nosuid, nodev, noexec tmpfs on `target`."""
    try:
        sc.mount("shm", target, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, data)
    except OSError as e:
        raise SystemError_(f"mount tmpfs on {target}: {e.strerror}") from None


def unmount(target: str, detach: bool = True) -> None:
    """Unmount `target`; a target that is not mounted is fine."""
    try:
        sc.umount2(target, sc.MNT_DETACH if detach else 0)
    except OSError as e:
        if e.errno not in (22, 2):  # EINVAL: not a mount point; ENOENT: gone
            raise SystemError_(f"unmount {target}: {e.strerror}") from None


def is_mounted(target: str) -> bool:
    """Whether `target` is a mount point (per /proc/self/mountinfo)."""
    t = os.path.realpath(target)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == t:
                return True
    return False


def mounts_under(prefix: str) -> list[str]:
    """Every mount point at or below `prefix`, deepest first."""
    p = os.path.realpath(prefix)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == p or mp.startswith(p + "/"):
                out.append(mp)
    return sorted(out, key=len, reverse=True)
