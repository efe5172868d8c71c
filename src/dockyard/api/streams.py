"""Streaming helpers: Docker's 8-byte multiplexed frames, hijacked (101) connections,
chunked JSON streams."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import queue
import struct
import threading
from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO

from aiohttp import web

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"


def frame(stream: int, data: bytes) -> bytes:
    """[stream, 0, 0, 0, size (big endian u32)] + data."""
    return struct.pack(">BxxxI", stream, len(data)) + data


async def open_stream(request: web.Request, content_type: str = RAW_STREAM) -> web.StreamResponse:
    """A 200 response whose headers are sent right away; body written as it comes."""
    resp = web.StreamResponse(status=200)
    resp.content_type = content_type
    await resp.prepare(request)
    return resp


_LIVE: set["Hijacked"] = set()


def hang_up_all() -> None:
    """Close every hijacked connection (the daemon is shutting down: attached clients see the
    end of their stream at once, as with dockerd, and the processes run on)."""
    for h in list(_LIVE):
        h.close()


class Hijacked:
    """A connection taken over after `101 UPGRADED` (or a raw 200 for clients that did not ask
    to upgrade): writes go straight to the transport, reads come from the request body."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.transport = request.transport
        self.input: _RawInput | None = None

    @classmethod
    async def take(cls, request: web.Request, content_type: str = RAW_STREAM) -> "Hijacked":
        """Send the upgrade response and hand back the raw connection."""
        upgrade = "upgrade" in request.headers.get("Connection", "").lower()
        h = cls(request)
        if h.transport is None:
            raise ConnectionResetError("client went away")
        if upgrade:
            head = ("HTTP/1.1 101 UPGRADED\r\n"
                    f"Content-Type: {content_type}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
        else:
            head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n"
        h.transport.write(head.encode())
        # From here the connection is ours: the client may half-close (no stdin), which must
        # not close the transport, so aiohttp's protocol is swapped for one that keeps it open.
        h.input = _RawInput(h.transport)
        h.transport.set_protocol(h.input)
        h.transport.resume_reading()
        _LIVE.add(h)
        return h

    async def read(self) -> bytes | None:
        """What the client sends next: b"" when it closed its sending side (stdin ended), None
        when the connection is gone."""
        assert self.input is not None
        return await self.input.get()

    async def drain(self) -> None:
        """Wait while the client reads more slowly than we write."""
        if self.input is not None:
            await self.input.writable.wait()

    def write(self, data: bytes) -> None:
        """Write raw bytes."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        """Close the connection."""
        _LIVE.discard(self)
        if self.transport is not None:
            self.transport.close()

    async def finish(self) -> None:
        """End of output: half-close (so the client sees EOF), then close."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if transport.can_write_eof():
                transport.write_eof()
            await asyncio.sleep(0)
            self.close()

    def response(self) -> web.StreamResponse:
        """A response object aiohttp accepts as the handler's result without writing it."""
        return _Done()


class _RawInput(asyncio.Protocol):
    """Receives what the client sends on a hijacked connection (stdin), reading no further
    while more than WINDOW bytes wait to be consumed; tracks whether the client keeps up with
    what we write (pause_writing / resume_writing)."""

    WINDOW = 1 << 20

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.queued = 0
        self.paused = False
        self.closed = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        self.queue.put_nowait(data)
        self.queued += len(data)
        if self.queued > self.WINDOW and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.queue.put_nowait(b"")
        return True  # keep our write side open after the client's CloseWrite

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(None)
        self.closed.set()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    async def get(self) -> bytes | None:
        item = await self.queue.get()
        if item:
            self.queued -= len(item)
            if self.paused and self.queued <= self.WINDOW // 2 and not self.closed.is_set():
                self.paused = False
                self.transport.resume_reading()
        elif item is None:
            self.queue.put_nowait(None)   # gone stays gone for every later read
        return item


class _Done(web.StreamResponse):
    """Tells aiohttp the handler already wrote everything on the raw transport."""

    def __init__(self) -> None:
        super().__init__(status=200)

    async def prepare(self, request: web.BaseRequest) -> Any:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


async def json_line(resp: web.StreamResponse, obj: dict[str, Any]) -> None:
    """One JSON message of a progress stream."""
    await resp.write((json.dumps(obj) + "\r\n").encode())


def progress_bar(current: int, total: int) -> str:
    """The deprecated `progress` text of a JSON progress message (clients draw `progressDetail`)."""
    from ..units import human_size
    width = 50
    done = width * current // total if total else width
    bar = "=" * done + (">" if done < width else "") + " " * max(0, width - done - 1)
    return f"[{bar}] {human_size(current)}/{human_size(total)}"


class _QueueWriter(io.RawIOBase):
    """A blocking writer (for worker threads) that hands chunks to the event loop."""

    def __init__(self, q: "asyncio.Queue[Any]", loop: asyncio.AbstractEventLoop) -> None:
        self.q, self.loop = q, loop
        self.aborted = False

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        if self.aborted:
            raise BrokenPipeError("the client went away")
        try:
            on_loop = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            on_loop = False
        if on_loop:   # e.g. a BufferedWriter flushed by the garbage collector on the loop's own thread:
            # waiting for the loop from inside it would stop the daemon for good
            raise BrokenPipeError("written from the event loop's thread")
        data = bytes(b)
        asyncio.run_coroutine_threadsafe(self.q.put(data), self.loop).result()
        return len(data)


async def pipe_to_response(request: web.Request, produce: Callable[[BinaryIO], Awaitable[Any]],
                           content_type: str, headers: Callable[[Any], dict[str, str]] | None = None
                           ) -> web.StreamResponse:
    """Run `produce(writer)` (which writes from worker threads) and stream what it writes.
    An error before the first byte becomes a normal error response; `headers(result)` may add
    headers, computed when production finished or produced its first megabyte."""
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[Any] = asyncio.Queue(maxsize=8)
    done = object()
    result: list[Any] = []
    raw = _QueueWriter(q, loop)

    async def run() -> None:
        try:
            w = io.BufferedWriter(raw, 1 << 20)
            result.append(await produce(w))
            await asyncio.to_thread(w.flush)
            await q.put(done)
        except BaseException as e:  # noqa: BLE001 - handed to the response side
            raw.aborted = True   # what the writer still buffers is dropped, never flushed later
            await q.put(e)

    task = asyncio.create_task(run())
    first = await q.get()
    if isinstance(first, BaseException):
        await task
        raise first
    resp = web.StreamResponse()
    resp.content_type = content_type
    if headers is not None:
        resp.headers.update(headers(result[0] if result else None))
    await resp.prepare(request)
    item = first
    try:
        while item is not done:
            if isinstance(item, BaseException):
                raise ConnectionResetError(f"stream failed: {item}")
            await resp.write(item)
            item = await q.get()
    except (ConnectionError, OSError):
        raw.aborted = True  # the producer's next write fails; unblock the one in flight
        while not task.done():
            try:
                await asyncio.wait_for(q.get(), 0.1)
            except TimeoutError:
                pass
        resp.force_close()
        return resp  # nothing more to say to a client that left
    await task
    await resp.write_eof()
    return resp


class BodyReader(io.RawIOBase):
    """A blocking file-like over an aiohttp stream (a request body, or a client response), for
    a worker thread. A task on the event loop pumps chunks into a queue (at most `window` bytes
    ahead of the reader), so the loop and the worker only meet when the queue runs full or
    empty; `read` hands chunks over without copying them. Close it (or use `with`) when done:
    that stops the pump if the body was not read to its end."""

    def __init__(self, req: Any, loop: asyncio.AbstractEventLoop, window: int = 8 << 20) -> None:
        super().__init__()
        self.content, self.loop, self.window = req.content, loop, window
        self.q: queue.SimpleQueue[bytes | BaseException] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.queued = 0
        self.room = asyncio.Event()
        self.waiting = False
        self.buf = b""
        self.eof = False
        self.task = loop.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            while True:
                chunk = await self.content.readany()
                if not chunk:
                    break
                with self.lock:
                    self.queued += len(chunk)
                    full = self.queued > self.window
                    if full:
                        self.room.clear()
                        self.waiting = True
                self.q.put(chunk)
                if full:
                    await self.room.wait()
            self.q.put(b"")
        except asyncio.CancelledError:
            self.q.put(OSError("request body reader closed"))
            raise
        except Exception as e:  # noqa: BLE001 - handed to the reading thread
            self.q.put(OSError(f"reading the request body: {e}"))

    async def discard_rest(self, limit: int = 1 << 30) -> None:
        """After the reader gave up (a failed load): read and drop what the client still sends
        (up to `limit`), so it gets to read the error instead of a connection reset."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        n = 0
        while n < limit:
            chunk = await self.content.readany()
            if not chunk:
                break
            n += len(chunk)

    def _next(self) -> bytes:
        if self.eof:
            return b""
        item = self.q.get()
        if isinstance(item, BaseException):
            self.eof = True
            raise item
        if not item:
            self.eof = True
            return b""
        with self.lock:
            self.queued -= len(item)
            wake = self.waiting and self.queued <= self.window // 2
            if wake:
                self.waiting = False
        if wake:
            self.loop.call_soon_threadsafe(self.room.set)
        return item

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self.readall()
        if not self.buf:
            self.buf = self._next()
        if len(self.buf) <= n:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def readall(self) -> bytes:
        parts = [self.buf]
        self.buf = b""
        while chunk := self._next():
            parts.append(chunk)
        return b"".join(parts)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed and not self.task.done():
            self.loop.call_soon_threadsafe(self.task.cancel)
        super().close()
