"""Exec routes: create in a container, start (hijacked output stream, or detached), inspect."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from ... import detachkeys
from ...containers.execs import ExecService
from ...errors import EngineError, InvalidArgument
from .. import params
from ..server import Routes
from ..splice import splice
from ..streams import Hijacked, frame

log = logging.getLogger(__name__)


class ExecsRouter:
    """Route table for exec endpoints."""

    def __init__(self, execs: ExecService) -> None:
        self.execs = execs
        self._bg: set[asyncio.Task[None]] = set()

    def routes(self, r: Routes) -> None:
        """Register."""
        r.add("POST", "/containers/{id}/exec", self.create)
        r.add("POST", "/exec/{id}/start", self.start)
        r.add("GET", "/exec/{id}/json", self.inspect)
        r.add("POST", "/exec/{id}/resize", self.resize)

    async def create(self, req: web.Request) -> web.Response:
        """`POST /containers/{id}/exec`."""
        e = self.execs.create(req.match_info["id"], await params.json_body(req))
        return web.json_response({"Id": e.id}, status=201)

    async def inspect(self, req: web.Request) -> web.Response:
        """`GET /exec/{id}/json`."""
        return web.json_response(self.execs.get(req.match_info["id"]).inspect())

    async def start(self, req: web.Request) -> web.StreamResponse:
        """`POST /exec/{id}/start`: as dockerd, a failure to start the process after the stream is
        taken over is written into it and the exec's exit code is 126."""
        body: Any = await params.json_body(req, required=False) or {}
        if not isinstance(body, dict):
            raise InvalidArgument("exec start config must be a JSON object")
        eid = req.match_info["id"]
        e = self.execs.get(eid)
        size = body.get("ConsoleSize")
        if size is not None and not (isinstance(size, list) and len(size) == 2
                                     and all(isinstance(x, int) for x in size)):
            raise InvalidArgument("ConsoleSize must be [height, width]")
        keys = detachkeys.parse_keys(e.detach_keys or detachkeys.DEFAULT)
        if body.get("Detach"):
            await self.execs.start(eid, detach=True, console_size=size)
            return web.Response(status=200)
        self.execs.startable(eid, size)   # 404/409/400 before the stream is taken over
        # as dockerd: the start request's Tty, not the exec's, says whether the stream is raw or
        # multiplexed (docker-py's exec_start(socket=True) of a TTY exec reads frames)
        raw = bool(body.get("Tty"))

        def encode(s: int, data: bytes) -> bytes:
            return data if raw else frame(s, data)
        h = await Hijacked.take(req)
        try:
            try:
                ch, frames = await self.execs.start(eid, console_size=size)
            except EngineError as err:   # as dockerd: a failure to start is written into the stream
                e.exit_code = 126
                h.write(encode(1, f"OCI runtime exec failed: {err.message}: unknown\r\n".encode()))
                return h.response()

            async def write(b: bytes) -> None:
                h.write(b)
                await h.drain()
            await splice(frames, ch, h.read, write, encode, e.attach_stdin, keys if e.tty else None, e.tty)
        finally:
            await h.finish()
        return h.response()

    async def resize(self, req: web.Request) -> web.Response:
        """`POST /exec/{id}/resize?h=&w=`."""
        await self.execs.resize(req.match_info["id"], *params.window(req))
        return web.Response(status=200)
