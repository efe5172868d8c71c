"""The daemon's side of the monitor protocol (see server.py), plus starting the monitor."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

from ..errors import SystemError_, Unavailable

# the named pipes, in a container's bundle, that its stdout and stderr go to
FIFOS = ("stdout.fifo", "stderr.fifo")

class MonitorClient:
    """Requests to the monitor of one exec root."""

    def __init__(self, exec_root: str) -> None:
        self.exec_root = exec_root
        self.sock = os.path.join(exec_root, "monitor.sock")
        # the bound on every request (DOCKYARD_MONITOR_TIMEOUT seconds; tests shorten it)
        self.timeout = float(os.environ.get("DOCKYARD_MONITOR_TIMEOUT") or 60)

    async def ensure_running(self) -> None:
        """Connect to the monitor, starting one if none answers."""
        try:
            await self.request({"op": "list"})
            return
        except (OSError, Unavailable):
            pass
        # spawned detached and never waited for: it does not block the loop
        # -OO: no docstrings held for as long as the monitor lives (~1.4 MiB of monitor + spare
        # runtime process, measured by bench/monitor_memory; the monitor and runtime have no asserts)
        subprocess.Popen([sys.executable, "-OO", "-m", "dockyard.monitor", "--exec-root", self.exec_root],  # noqa: ASYNC220
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True)
        for _ in range(400):
            await asyncio.sleep(0.01)
            try:
                await self.request({"op": "list"})
                return
            except (OSError, Unavailable):
                continue
        raise Unavailable("the container monitor did not start")

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_unix_connection(self.sock, limit=1 << 20)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise Unavailable(f"container monitor unavailable: {e}") from None

    async def request(self, req: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """One request, one reply, within `timeout` seconds: a runtime that hangs (or a wedged
        monitor) becomes an error for this one operation, never a request that waits forever."""
        r, w = await self._open()
        try:
            w.write((json.dumps(req) + "\n").encode())
            await w.drain()
            timeout = timeout or self.timeout
            try:
                line = await asyncio.wait_for(r.readline(), timeout)
            except TimeoutError:
                raise Unavailable(f"container monitor did not answer {req.get('op')} "
                                  f"{' '.join(req.get('args') or [])} within {timeout:.0f}s".rstrip()) from None
        finally:
            w.close()
        if not line:
            raise Unavailable("container monitor closed the connection")
        rep = json.loads(line)
        return rep

    async def start(self, req: dict[str, Any]) -> int:
        """Start a container; return its pid."""
        rep = await self.request({"op": "start", **req})
        if "error" in rep:
            raise SystemError_(rep["error"])
        return int(rep["pid"])

    async def runtime(self, rt: dict[str, Any], args: list[str]) -> tuple[int, str, str]:
        """Run a runtime command (kill, delete, state) through the monitor."""
        rep = await self.request({"op": "runtime", "runtime": rt, "args": args})
        if "error" in rep:
            raise SystemError_(rep["error"])
        return int(rep["rc"]), rep.get("out", ""), rep.get("err", "")

    async def attach(self, cid: str, stdin: bool = False, running: bool = False) -> "Channel":
        """Register for a container's output (and, with `stdin`, to send it input); the
        registration is in place when this returns. Read with `frames()` until it exits.
        `running`: the caller saw it running, so if the monitor no longer has it, it has exited
        and the channel ends at once (else the registration waits for its start)."""
        r, w = await self._open()
        try:
            w.write((json.dumps({"op": "attach", "id": cid, "stdin": stdin, "running": running}) + "\n").encode())
            await w.drain()
            await r.readline()
        except BaseException:
            w.close()
            raise
        return Channel(r, w)

    async def exec(self, req: dict[str, Any]) -> "Channel":
        """Run a process in a container; the channel's `pid` is set, its frames are the output and
        last (3, exit code as text)."""
        r, w = await self._open()
        try:
            w.write((json.dumps({"op": "exec", **req}) + "\n").encode())
            await w.drain()
            line = await r.readline()
            if not line:
                raise Unavailable("container monitor closed the connection")
            rep = json.loads(line)
            if "error" in rep:
                raise SystemError_(rep["error"])
        except BaseException:
            w.close()
            raise
        ch = Channel(r, w)
        ch.pid = int(rep["pid"])
        return ch

    async def resize(self, cid: str, h: int, w: int, exec_id: str = "") -> None:
        """The window size of a container's (or exec's) pty."""
        rep = await self.request({"op": "resize", "id": cid, "exec_id": exec_id, "h": h, "w": w})
        if "error" in rep:
            raise SystemError_(rep["error"])

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Exit events; the first item is {} once subscribed."""
        r, w = await self._open()
        try:
            w.write(b'{"op": "events"}\n')
            await w.drain()
            while True:
                line = await r.readline()
                if not line:
                    return
                yield json.loads(line)
        finally:
            w.close()


class Channel:
    """An attach or exec connection: output frames in, stdin frames out."""

    def __init__(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.r, self.w = r, w
        self.pid = 0

    async def frames(self) -> AsyncIterator[tuple[int, bytes]]:
        """(stream, data) until the end; for an exec the last is (3, exit code as text)."""
        async for stream, data in _frames(self.r):
            if stream == 3:
                yield 3, str(json.loads(data)["exit_code"]).encode()
                return
            yield stream, data

    async def send(self, data: bytes) -> None:
        """Stdin bytes (waits while the container does not read them)."""
        self.w.write(struct.pack(">BxxxI", 0, len(data)) + data)
        await self.w.drain()

    async def close_stdin(self) -> None:
        """The client's input ended."""
        self.w.write(struct.pack(">BxxxI", 1, 0))
        await self.w.drain()

    def close(self) -> None:
        """Hang up (a detach: the process runs on)."""
        self.w.close()


async def _frames(r: asyncio.StreamReader) -> AsyncIterator[tuple[int, bytes]]:
    """[stream u8][3 zero bytes][len u32be][data] frames until the connection ends."""
    while True:
        try:
            hdr = await r.readexactly(8)
            stream, n = struct.unpack(">BxxxI", hdr)
            data = await r.readexactly(n)
        except asyncio.IncompleteReadError:
            return
        yield stream, data
