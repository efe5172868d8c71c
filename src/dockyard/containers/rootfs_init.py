"""The init layer: what every container's root needs below its own writable layer (mount
points for /etc/hosts, /etc/hostname, /etc/resolv.conf, /proc, /sys, /dev...), as Docker's
`<id>-init` layer, but one per image (it is the same for every container of an image).
Keeping these out of the container's layer keeps `diff`, `commit` and `export` free of
engine artefacts."""

from __future__ import annotations

import os

from ..linux.syscalls import open_in_root

DIRS = ("proc", "sys", "dev", "dev/pts", "dev/shm", "etc")
FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf", ".dockerenv")


def populate(root: str, lowers: list[str]) -> None:
    """Create the mount points in an empty layer directory. A directory that the image has
    already keeps the image's owner and mode (this layer sits above it)."""
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for d in DIRS:
            p = os.path.join(root, d)
            os.makedirs(p, mode=0o755, exist_ok=True)
            for low in lowers:
                try:
                    st = os.lstat(os.path.join(low, d))
                except OSError:
                    continue
                if os.path.isdir(os.path.join(low, d)) and not os.path.islink(os.path.join(low, d)):
                    os.chown(p, st.st_uid, st.st_gid)
                    os.chmod(p, st.st_mode & 0o7777)
                break
        for f in FILES:
            parent, _, base = f.rpartition("/")
            pfd = open_in_root(rootfd, parent, os.O_PATH | os.O_DIRECTORY) if parent else os.dup(rootfd)
            try:
                os.close(os.open(base, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=pfd))
            finally:
                os.close(pfd)
    finally:
        os.close(rootfd)
