"""Resolve `user[:group]` against the container's /etc/passwd and /etc/group, read inside the
rootfs (never through a symlink that leaves it)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import InvalidArgument
from ..linux.syscalls import open_in_root


@dataclass(frozen=True)
class ExecUser:
    """Numeric identity plus the home directory (for HOME)."""

    uid: int
    gid: int
    additional_gids: list[int]
    home: str


def _read(rootfs: str, path: str) -> list[list[str]]:
    try:
        rootfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        fd = open_in_root(rootfd, path, os.O_RDONLY)
    except OSError:
        return []
    finally:
        os.close(rootfd)
    with os.fdopen(fd, "r", errors="replace") as f:
        data = f.read(1 << 20)
    return [line.split(":") for line in data.splitlines() if line and not line.startswith("#")]


def resolve(rootfs: str, spec: str) -> ExecUser:
    """Docker's rules: names looked up, numbers taken as they are."""
    user, _, group = (spec or "").partition(":")
    passwd = _read(rootfs, "/etc/passwd")
    groups = _read(rootfs, "/etc/group")
    uid, gid, home, uname = 0, 0, "/", "root"
    found = False
    if user == "" or user.isdigit():
        uid = int(user or 0)
        for p in passwd:
            if len(p) >= 6 and p[2] == str(uid):
                gid, home, uname, found = int(p[3]), p[5], p[0], True
                break
        if not found and uid != 0:
            gid, home, uname = 0, "/", ""
    else:
        for p in passwd:
            if len(p) >= 6 and p[0] == user:
                uid, gid, home, uname, found = int(p[2]), int(p[3]), p[5], user, True
                break
        if not found:
            raise InvalidArgument(f"unable to find user {user}: no matching entries in passwd file")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            for g in groups:
                if len(g) >= 3 and g[0] == group:
                    gid = int(g[2])
                    break
            else:
                raise InvalidArgument(f"unable to find group {group}: no matching entries in group file")
    extra: list[int] = []
    if uname:
        for g in groups:
            if len(g) >= 4 and uname in g[3].split(",") and int(g[2]) != gid:
                extra.append(int(g[2]))
    return ExecUser(uid, gid, extra, home or "/")


def group_ids(rootfs: str, names: list[str]) -> list[int]:
    """`--group-add` values: numbers as they are, names looked up in the image's /etc/group."""
    groups = None
    out: list[int] = []
    for n in names:
        n = str(n)
        if n.isdigit():
            out.append(int(n))
            continue
        if groups is None:
            groups = _read(rootfs, "/etc/group")
        for g in groups:
            if len(g) >= 3 and g[0] == n:
                out.append(int(g[2]))
                break
        else:
            raise InvalidArgument(f"Unable to find group {n}: no matching entries in group file")
    return out
