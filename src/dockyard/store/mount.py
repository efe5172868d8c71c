"""Mounts as data (the lingua franca between snapshotter and engine) plus the one place
that performs them."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass, field

from ..errors import SystemError_

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
MNT_DETACH = 2


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
                flags |= 1
            elif o in ("bind", "rbind"):
                flags |= 4096 | (16384 if o == "rbind" else 0)
            else:
                data.append(o)
        rc = _libc.mount(self.source.encode(), target.encode(), self.type.encode(),
                         ctypes.c_ulong(flags), ",".join(data).encode() or None)
        if rc != 0:
            e = ctypes.get_errno()
            raise SystemError_(f"mount {self.type} on {target}: {os.strerror(e)}")


def unmount(target: str, detach: bool = True) -> None:
    """Unmount `target`; a target that is not mounted is fine."""
    rc = _libc.umount2(target.encode(), MNT_DETACH if detach else 0)
    if rc != 0:
        e = ctypes.get_errno()
        if e not in (22, 2):  # EINVAL: not a mount point; ENOENT: gone
            raise SystemError_(f"unmount {target}: {os.strerror(e)}")


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
