"""The CRI streaming server: the URLs Exec, Attach and PortForward answer point here.

It speaks Kubernetes' remotecommand over **websocket** (`v5.channel.k8s.io`, `v4.channel.k8s.io`):
every binary message starts with a channel byte — 0 stdin, 1 stdout, 2 stderr, 3 error (a
metav1.Status JSON at the end: Success, or Failure with the exit code), 4 resize (`{"Width",
"Height"}`), and in v5 255 "close" (`[255, channel]`: that stream ended). Port forwarding
(`portforward.k8s.io` over websocket, `?port=N&port=M`): port i's data on channel 2i and its errors
on 2i+1, each channel's first server message the port number (uint16, little endian); the
connection is made from inside the pod's network namespace to 127.0.0.1:port.

The same over **SPDY/3.1** (`spdy.py`), the transport of kubectl before 1.31 and crictl's fallback: the
client opens one SPDY stream per channel (`streamtype` error, stdin, stdout, stderr, resize;
`v4.channel.k8s.io` down to `channel.k8s.io`), and for port forwarding a pair per port (`streamtype`
error and data, with `port` and `requestid`).

URLs are single-use tokens, valid for `TOKEN_TTL` seconds after the RPC (kubelet's cache keeps
them a minute); a stream idle for `idle_timeout` seconds is closed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from ..errors import EngineError

log = logging.getLogger(__name__)
TOKEN_TTL = 60.0
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
PF_PROTOCOLS = ("v4.channel.k8s.io", "portforward.k8s.io")
SPDY_PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


def status_json(exit_code: int | None, message: str = "") -> bytes:
    """The error channel's last word, as kubelet writes it."""
    if exit_code == 0 and not message:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    if exit_code is None:
        return json.dumps({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError"}).encode()
    return json.dumps({"metadata": {}, "status": "Failure",
                       "message": f"command terminated with non-zero exit code: exit status {exit_code}",
                       "reason": "NonZeroExitCode",
                       "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]}}).encode()


class Streaming:
    """An aiohttp server on `addr` (127.0.0.1 and a free port by default)."""

    def __init__(self, pods: Any, addr: str = "127.0.0.1:0", idle_timeout: float = 4 * 3600) -> None:
        self.pods = pods
        self.addr = addr
        self.idle_timeout = idle_timeout
        self.tokens: dict[str, tuple[float, str, dict[str, Any]]] = {}
        self.base_url = ""
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{kind:exec|attach|portforward}/{token}", self.handle)
        app.router.add_post("/{kind:exec|attach|portforward}/{token}", self.handle)   # SPDY upgrades are POSTs
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        host, _, port = self.addr.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        site = web.TCPSite(self.runner, host, int(port or 0))
        await site.start()
        server = site._server
        assert server is not None and server.sockets   # type: ignore[attr-defined]
        bound = server.sockets[0].getsockname()   # type: ignore[attr-defined]
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.base_url = f"http://{shown}:{bound[1]}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def register(self, kind: str, args: dict[str, Any]) -> str:
        now = time.monotonic()
        for t, (at, _, _) in list(self.tokens.items()):
            if now - at > TOKEN_TTL:
                del self.tokens[t]
        token = secrets.token_urlsafe(18)
        self.tokens[token] = (now, kind, args)
        return f"{self.base_url}/{kind}/{token}"

    async def handle(self, req: web.Request) -> web.StreamResponse:
        kind, token = req.match_info["kind"], req.match_info["token"]
        entry = self.tokens.pop(token, None)
        if entry is None or entry[1] != kind or time.monotonic() - entry[0] > TOKEN_TTL:
            raise web.HTTPNotFound(text="unknown or expired streaming token\n")
        args = entry[2]
        upgrade = req.headers.get("Upgrade", "").lower()
        if upgrade.startswith("spdy/3.1"):
            return await self._spdy(req, kind, args)
        if upgrade != "websocket":
            raise web.HTTPBadRequest(text="upgrade to websocket (v5.channel.k8s.io, v4.channel.k8s.io) or "
                                          "SPDY/3.1\n")
        protos = PF_PROTOCOLS if kind == "portforward" else PROTOCOLS
        ws = web.WebSocketResponse(protocols=protos, heartbeat=None, max_msg_size=0)
        await ws.prepare(req)
        try:
            if kind == "portforward":
                await self._portforward(req, ws, args)
            else:
                await self._remotecommand(kind, ws, args)
        except (ConnectionError, EngineError) as e:
            msg = e.message if isinstance(e, EngineError) else str(e)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_bytes(bytes([ERROR]) + status_json(None, msg))
        finally:
            await ws.close()
        return ws

    async def _remotecommand(self, kind: str, ws: web.WebSocketResponse, args: dict[str, Any]) -> None:
        v5 = ws.ws_protocol == "v5.channel.k8s.io"

        async def incoming() -> AsyncIterator[tuple[int, bytes]]:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY and msg.data:
                    if v5 and msg.data[0] == CLOSE:
                        if msg.data[1:2] == bytes([STDIN]):
                            yield STDIN, b""
                        continue
                    yield msg.data[0], msg.data[1:]

        async def out(chan: int, data: bytes) -> None:
            await ws.send_bytes(bytes([chan]) + data)
        await self._run_command(kind, args, incoming(), out)

    async def _run_command(self, kind: str, args: dict[str, Any], incoming: AsyncIterator[tuple[int, bytes]],
                           out: Callable[[int, bytes], Awaitable[None]]) -> None:
        """Run an exec or attach between a client's channels (`incoming`: (channel, data), b"" on stdin:
        its end) and `out` (channel, data); the last word on the error channel."""
        cid = args["container"]
        svc = self.pods.containers
        if kind == "exec":
            execs = self.pods.execs
            e = execs.create(cid, {"Cmd": args["cmd"], "Tty": args["tty"], "AttachStdin": args["stdin"],
                                   "AttachStdout": args["stdout"], "AttachStderr": args["stderr"]})
            inp, frames = await execs.start(e.id)
            send, close_in = inp.send, inp.close_stdin

            async def resize(h: int, w: int) -> None:
                await execs.resize(e.id, h, w)
        else:
            c = svc.lookup(cid)
            ch = await svc.attach(c, stdin=args["stdin"])
            frames = ch.frames()
            send, close_in = ch.send, ch.close_stdin

            async def resize(h: int, w: int) -> None:
                await svc.resize(cid, h, w)
        last = [time.monotonic()]

        async def pump_in() -> None:
            async for chan, data in incoming:
                last[0] = time.monotonic()
                if chan == STDIN and args["stdin"]:
                    if data:
                        await send(data)
                    else:
                        await close_in()
                elif chan == RESIZE:
                    for size in _json_objects(data):
                        with contextlib.suppress(ValueError, EngineError, AttributeError):
                            await resize(int(size.get("Height", 0)), int(size.get("Width", 0)))
            if args["stdin"]:   # the client hung up: its input ended
                with contextlib.suppress(EngineError, ConnectionError):
                    await close_in()

        async def pump_out() -> None:
            async for stream, data in frames:
                last[0] = time.monotonic()
                if stream in (STDOUT, STDERR):
                    await out(stream, data)

        async def idle() -> None:
            while True:
                left = self.idle_timeout - (time.monotonic() - last[0])
                if left <= 0:
                    return
                await asyncio.sleep(left)

        tin = asyncio.ensure_future(pump_in())
        tidle = asyncio.ensure_future(idle())
        tout = asyncio.ensure_future(pump_out())
        done, _ = await asyncio.wait({tout, tidle}, return_when=asyncio.FIRST_COMPLETED)
        tin.cancel()
        tidle.cancel()
        if tout not in done:   # idle: give up on the stream
            tout.cancel()
            await out(ERROR, status_json(None, "stream idle timeout"))
            return
        code: int | None = 0
        if kind == "exec":
            for _ in range(200):
                if e.exit_code is not None:
                    break
                await asyncio.sleep(0.01)
            code = e.exit_code
        await out(ERROR, status_json(code, "" if code is not None else "exit code unknown"))

    async def _spdy(self, req: web.Request, kind: str, args: dict[str, Any]) -> web.StreamResponse:
        from . import spdy
        offered = [p.strip() for v in req.headers.getall("X-Stream-Protocol-Version", []) for p in v.split(",")]
        known = ("portforward.k8s.io",) if kind == "portforward" else SPDY_PROTOCOLS
        chosen = next((p for p in known if p in offered), "")
        if not chosen:
            raise web.HTTPForbidden(text=f"no supported stream protocol among {offered} (have {', '.join(known)})\n")
        transport = req.transport
        if transport is None:
            raise ConnectionResetError("client went away")
        transport.write(("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                         f"X-Stream-Protocol-Version: {chosen}\r\n\r\n").encode())
        arrived: asyncio.Queue[spdy.Stream] = asyncio.Queue()
        session = spdy.Session(transport, arrived.put_nowait)
        transport.set_protocol(session)
        transport.resume_reading()
        try:
            if kind == "portforward":
                await self._spdy_portforward(session, arrived, args)
            else:
                await self._spdy_command(kind, session, arrived, args, chosen)
        except (ConnectionError, EngineError, TimeoutError) as e:
            log.info("SPDY %s stream ended: %s", kind, e)
        finally:
            await asyncio.sleep(0.05)   # let the last frames go out
            session.close()
        return _Done()

    async def _spdy_command(self, kind: str, session: Any, arrived: asyncio.Queue[Any], args: dict[str, Any],
                            proto: str) -> None:
        """Wait for the channels the request asked for, then run as over websocket."""
        want = {"error"} | {k for k in ("stdin", "stdout", "stderr") if args[k]}
        if args["tty"] and proto in ("v4.channel.k8s.io", "v3.channel.k8s.io"):
            want.add("resize")
        if proto == "channel.k8s.io":   # the oldest: no error stream of its own is required
            want.discard("error")
        streams: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while not want <= set(streams):
            s = await asyncio.wait_for(arrived.get(), max(0.1, deadline - time.monotonic()))
            streams[s.headers.get("streamtype", "")] = s
        chans = {"stdin": STDIN, "resize": RESIZE}
        incoming: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()

        async def feed(name: str) -> None:
            s = streams[name]
            while True:
                data = await s.read()
                await incoming.put((chans[name], data))
                if not data:
                    return
        feeders = [asyncio.ensure_future(feed(n)) for n in ("stdin", "resize") if n in streams]

        async def gone() -> None:
            await session.gone.wait()
            await incoming.put(None)
        watcher = asyncio.ensure_future(gone())

        async def messages() -> AsyncIterator[tuple[int, bytes]]:
            while (item := await incoming.get()) is not None:
                yield item
        names = {STDOUT: "stdout", STDERR: "stderr", ERROR: "error"}

        async def out(chan: int, data: bytes) -> None:
            s = streams.get(names[chan])
            if s is None:
                return
            if chan == ERROR and proto != "v4.channel.k8s.io":   # before v4: plain text, and only on failure
                st = json.loads(data)
                if st.get("status") == "Success":
                    return
                data = str(st.get("message") or "").encode()
            s.write(data)
        try:
            await self._run_command(kind, args, messages(), out)
        finally:
            for t in [*feeders, watcher]:
                t.cancel()
            for s in streams.values():
                s.close()

    async def _spdy_portforward(self, session: Any, arrived: asyncio.Queue[Any], args: dict[str, Any]) -> None:
        """Each pair of streams (error, data) with `port` and `requestid`: a connection to that port from
        inside the pod, until the session ends."""
        rec, nspath = self.pods.running_netns(args["sandbox"])
        loop = asyncio.get_running_loop()
        errors: dict[str, Any] = {}
        tasks: set[asyncio.Task[None]] = set()

        async def serve(data_stream: Any) -> None:
            port = int(data_stream.headers.get("port") or 0)
            err = errors.get(data_stream.headers.get("requestid", ""))
            try:
                sock = await asyncio.to_thread(_socket_in, nspath)
                await loop.sock_connect(sock, ("127.0.0.1", port))
            except (OSError, ValueError) as e:
                if err is not None:
                    err.write(f"error forwarding port {port} to pod {rec['id']}: {e}".encode())
                    err.close()
                data_stream.close()
                return

            async def up() -> None:
                while data := await data_stream.read():
                    await loop.sock_sendall(sock, data)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
            t = asyncio.ensure_future(up())
            try:
                with contextlib.suppress(OSError):
                    while data := await loop.sock_recv(sock, 65536):
                        data_stream.write(data)
            finally:
                await asyncio.wait({t}, timeout=1)
                t.cancel()
                sock.close()
                data_stream.close()
                if err is not None:
                    err.close()

        getter = asyncio.ensure_future(session.gone.wait())
        try:
            while not session.gone.is_set():
                nxt = asyncio.ensure_future(arrived.get())
                done, _ = await asyncio.wait({nxt, getter}, return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    nxt.cancel()
                    break
                s = nxt.result()
                if s.headers.get("streamtype") == "error":
                    errors[s.headers.get("requestid", "")] = s
                elif s.headers.get("streamtype") == "data":
                    t = asyncio.ensure_future(serve(s))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
        finally:
            getter.cancel()
            for t in tasks:
                t.cancel()

    async def _portforward(self, req: web.Request, ws: web.WebSocketResponse, args: dict[str, Any]) -> None:
        ports = [int(p) for p in req.query.getall("port", [])] or list(args["ports"])
        if not ports or not all(0 < p < 65536 for p in ports):
            raise web.HTTPBadRequest(text="port forwarding needs ?port=N in 1..65535\n")
        rec, nspath = self.pods.running_netns(args["sandbox"])
        loop = asyncio.get_running_loop()
        conns: dict[int, socket.socket] = {}
        for i, port in enumerate(ports):
            for chan in (2 * i, 2 * i + 1):
                await ws.send_bytes(bytes([chan]) + struct.pack("<H", port))
            try:
                s = await asyncio.to_thread(_socket_in, nspath)
                await loop.sock_connect(s, ("127.0.0.1", port))
                conns[i] = s
            except OSError as e:
                await ws.send_bytes(bytes([2 * i + 1]) + f"error forwarding port {port} to pod: {e}".encode())
        readers = [asyncio.ensure_future(_sock_to_ws(loop, s, ws, 2 * i)) for i, s in conns.items()]
        try:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY or not msg.data:
                    continue
                chan, data = msg.data[0], msg.data[1:]
                target = conns.get(chan // 2) if chan % 2 == 0 else None
                if target is not None and data:
                    await loop.sock_sendall(target, data)
        finally:
            for t in readers:
                t.cancel()
            for s in conns.values():
                s.close()


def _json_objects(data: bytes) -> list[Any]:
    """Resize messages: one JSON object per message, or several back to back (SPDY's stream)."""
    out, dec, text, pos = [], json.JSONDecoder(), data.decode("utf-8", "replace"), 0
    while pos < len(text):
        while pos < len(text) and text[pos] in " \r\n\t":
            pos += 1
        if pos >= len(text):
            break
        try:
            obj, pos = dec.raw_decode(text, pos)
        except ValueError:
            break
        out.append(obj)
    return out


class _Done(web.StreamResponse):
    """The handler already answered on the raw transport (after a 101)."""

    def __init__(self) -> None:
        super().__init__(status=101)

    async def prepare(self, request: web.BaseRequest) -> Any:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def _socket_in(nspath: str) -> socket.socket:
    from ..network import netns
    s = netns.made_in(nspath, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    s.setblocking(False)
    return s


async def _sock_to_ws(loop: asyncio.AbstractEventLoop, s: socket.socket, ws: web.WebSocketResponse, chan: int) -> None:
    with contextlib.suppress(OSError, ConnectionError, RuntimeError):
        while data := await loop.sock_recv(s, 65536):
            await ws.send_bytes(bytes([chan]) + data)
