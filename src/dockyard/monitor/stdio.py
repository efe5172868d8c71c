"""Stdin and terminals in the monitor: the pty master (or the write end of the stdin pipe) of
every interactive container and exec lives here, so a daemon that dies leaves it open.

Input comes on an attach (or exec) connection after its reply line, in the same 8-byte frames
the output uses: kind 0 carries stdin bytes, kind 1 (empty) closes stdin when the client's
input ended (the container's stdin is closed only if it was created with StdinOnce, or for an
exec). A connection that simply ends is a detach: stdin stays open for the next client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import tempfile
from dataclasses import dataclass, field

from ..linux import tty

IN_DATA, IN_CLOSE = 0, 1
HIGH_WATER = 4 << 20   # bytes buffered towards one slow client before the container is paused


@dataclass
class Stdin:
    """Where a container's (or exec's) input goes: a pty master or a pipe's write end."""

    fd: int = -1
    is_tty: bool = False
    once: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def close(self) -> None:
        """Close a pipe's write end (the reader sees EOF). A pty is left as it is (its master is
        closed with the output): as dockerd, a terminal's input is never closed by a client."""
        if self.is_tty:
            return
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = -1
        self.ready.set()


async def write_all(fd: int, data: bytes) -> bool:
    """Write everything to a non-blocking fd, waiting for room; False if the reader is gone."""
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            ready: asyncio.Future[None] = loop.create_future()
            try:
                loop.add_writer(fd, _resolve, ready)
            except (OSError, ValueError):
                return False
            try:
                await ready
            finally:
                with contextlib.suppress(OSError, ValueError):
                    loop.remove_writer(fd)
            continue
        except OSError:
            return False
        view = view[n:]
    return True


async def feed(reader: asyncio.StreamReader, stdin: Stdin | None, exec_: bool) -> None:
    """Input frames from a connection into stdin until the connection ends."""
    while True:
        try:
            hdr = await reader.readexactly(8)
            kind, n = struct.unpack(">BxxxI", hdr)
            data = await reader.readexactly(n) if n else b""
        except (asyncio.IncompleteReadError, ConnectionError):
            return   # a detach, or the daemon went away: stdin stays as it is
        if stdin is None:
            continue
        await stdin.ready.wait()
        if kind == IN_CLOSE:
            if exec_ or stdin.once:
                stdin.close()
            continue
        if stdin.fd < 0 or not data:
            continue
        async with stdin.lock:   # two attached clients typing do not interleave inside a write
            await write_all(stdin.fd, data)


def read_output(fd: int, more: bool = False) -> bytes:
    """One read of a pipe or pty master; b"" at the end (EIO is a pty whose slave is gone).
    With `more` (a non-blocking `fd`), a read that filled its buffer is followed by more, up to
    1 MiB, while there is data: a fast writer's output then costs a fraction of the wake-ups
    and log writes."""
    try:
        data = os.read(fd, 65536)
    except BlockingIOError:
        raise
    except OSError:   # EIO: a pty whose slave is gone
        return b""
    if not more or len(data) < 65536:
        return data
    parts = [data]
    for _ in range(15):
        try:
            data = os.read(fd, 65536)
        except OSError:   # EAGAIN (drained for now), or the end: the next call sees it
            break
        if not data:
            break
        parts.append(data)
        if len(data) < 65536:
            break
    return b"".join(parts)


class ConsoleSocket:
    """A listening unix socket for a runtime's `--console-socket`: the runtime connects and
    sends the pty master during `create` (or `exec`), before it exits, so the master is read
    from the backlog once the runtime is done; no concurrent accept is needed."""

    def __init__(self, near: str) -> None:
        base = near if len(near) < 80 else tempfile.gettempdir()
        self.dir = tempfile.mkdtemp(prefix="con-", dir=base)
        self.path = os.path.join(self.dir, "s")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.bind(self.path)
        self.sock.listen(4)
        self.sock.setblocking(False)

    def master(self) -> int | None:
        """The master the runtime sent, if any."""
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return None
        with conn:
            conn.setblocking(False)
            try:
                fd = tty.recv_master(conn)
            except (BlockingIOError, OSError):
                return None
        if fd is not None:
            os.set_blocking(fd, False)
        return fd

    def close(self) -> None:
        """Remove the socket."""
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.rmdir(self.dir)


def stdin_pipe() -> tuple[int, int]:
    """(read end for the process, blocking; write end for us, non-blocking)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(w, False)
    return r, w


def resize(fd: int, rows: int, cols: int) -> None:
    """Set a pty's window size."""
    tty.set_size(fd, rows, cols)


def _resolve(f: asyncio.Future[None]) -> None:
    if not f.done():
        f.set_result(None)
