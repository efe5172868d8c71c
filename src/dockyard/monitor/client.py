"""The daemon's side of the monitor protocol (see server.py), plus starting the monitor."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
from collections.abc import AsyncGenerator, AsyncIterator
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
        subprocess.Popen([sys.executable, "-m", "dockyard.monitor", "--exec-root", self.exec_root],  # noqa: ASYNC220
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

    async def attach(self, cid: str) -> AsyncGenerator[tuple[int, bytes], None]:
        """Register for a container's output; yields (stream, data) until it exits.
        The first `__anext__` returns (0, b"") once the registration is in place."""
        r, w = await self._open()
        try:
            w.write((json.dumps({"op": "attach", "id": cid}) + "\n").encode())
            await w.drain()
            await r.readline()
            yield 0, b""
            async for stream, data in _frames(r):
                yield stream, data
        finally:
            w.close()

    async def exec(self, req: dict[str, Any]) -> AsyncGenerator[tuple[int, bytes], None]:
        """Run a process in a container. Yields (0, pid as text) first, then (stream, data)
        for its output, and last (3, exit code as text)."""
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
            yield 0, str(rep["pid"]).encode()
            async for stream, data in _frames(r):
                if stream == 3:
                    yield 3, str(json.loads(data)["exit_code"]).encode()
                    return
                yield stream, data
            raise Unavailable("container monitor closed the exec stream before the exit code")
        finally:
            w.close()

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
