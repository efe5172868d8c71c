"""Network namespaces that outlive a process: made with `unshare --net=FILE` (util-linux binds
the new namespace onto FILE), so the engine configures them before the container's process
exists and the runtime joins them by path (ours or runc, through the OCI spec)."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Callable
from typing import TypeVar

from ..errors import SystemError_
from ..linux import syscalls

MNT_DETACH = 2
MS_BIND = 4096
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
_T = TypeVar("_T")
CLONE_NEWNET = 0x40000000


def create(path: str) -> None:
    """A new, empty network namespace bound at `path` (it has only `lo`, down)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w"):
        pass
    p = subprocess.run(["unshare", f"--net={path}", "true"], capture_output=True, text=True)
    if p.returncode != 0:
        os.unlink(path)
        raise SystemError_(f"creating a network namespace at {path}: {p.stderr.strip()}")


def create_in_thread(path: str) -> None:
    """`create` without a subprocess: the calling (worker) thread unshares a new network namespace,
    binds it at `path`, brings its `lo` up and returns to its own namespace. Blocking: run it in a
    worker thread."""
    import fcntl
    import struct
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w"):
        pass
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.unshare(CLONE_NEWNET)
        try:
            syscalls.mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", path, None, MS_BIND)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                req = struct.pack("16sH14x", b"lo", 0)
                flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
                fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
        finally:
            syscalls.setns(here, CLONE_NEWNET)
    except BaseException:
        remove(path)
        raise
    finally:
        os.close(here)


def remove(path: str) -> None:
    """Unbind and delete; a namespace no process holds any more goes away with it."""
    try:
        syscalls.umount2(path, MNT_DETACH)
    except OSError:
        pass
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def bound(path: str) -> bool:
    """Whether a namespace is bound at `path` (an nsfs file, not the empty file under it)."""
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(path)).st_dev
    except OSError:
        return False


def rebind(path: str, pid: int) -> bool:
    """Bind the network namespace of process `pid` at `path` again if `path` no longer is it (a
    daemon restarted in another mount namespace — `ip netns exec` makes one per start — does not
    see the binds of the one before); False when it had to."""
    try:
        want = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return True   # the process is gone: nothing to bind
    try:
        have = os.stat(path)
        if (have.st_dev, have.st_ino) == (want.st_dev, want.st_ino):
            return True
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a"):
        pass
    syscalls.mount(f"/proc/{pid}/ns/net", path, None, MS_BIND)
    return False


def listed(directory: str) -> list[str]:
    """The namespace files under `directory` (names are container IDs)."""
    try:
        return sorted(os.listdir(directory))
    except FileNotFoundError:
        return []


def made_in(path: str, make: Callable[[], _T]) -> _T:
    """`make()` called inside the namespace bound at `path`: a socket made there stays there, so
    the caller uses it from its own namespace. Blocking (setns of the calling thread): run it in a
    worker thread."""
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    there = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(there, CLONE_NEWNET)
        try:
            return make()
        finally:
            syscalls.setns(here, CLONE_NEWNET)
    finally:
        os.close(there)
        os.close(here)


def socket_in(path: str, family: int, kind: int, address: tuple[str, int]) -> socket.socket:
    """A socket made inside the namespace bound at `path`, bound to `address` (listening, for a
    stream socket): the daemon serves it from its own event loop."""
    s = made_in(path, lambda: socket.socket(family, kind))
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(address)
        if kind == socket.SOCK_STREAM:
            s.listen(64)
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s
