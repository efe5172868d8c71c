"""Exec routes: create in a container, start (hijacked output stream, or detached), inspect."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from ...containers.execs import ExecService
from ...errors import EngineError
from .. import params
from ..server import Routes
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
            body = {}
        eid = req.match_info["id"]
        e = self.execs.get(eid)
        if body.get("Tty"):
            from ...errors import InvalidArgument
            raise InvalidArgument("exec with a TTY is not supported yet")
        gen = await self.execs.start(eid)   # 404/409 before anything is sent
        if body.get("Detach"):
            t = asyncio.create_task(self._drain(gen))
            self._bg.add(t)
            t.add_done_callback(self._bg.discard)
            return web.Response(status=200)
        h = await Hijacked.take(req)
        try:
            try:
                async for stream, data in gen:
                    h.write(frame(stream, data))
            except EngineError as err:
                e.exit_code = 126
                h.write(frame(1, f"OCI runtime exec failed: {err.message}: unknown\r\n".encode()))
        finally:
            await h.finish()
        return h.response()

    async def _drain(self, gen: Any) -> None:
        try:
            async for _ in gen:
                pass
        except EngineError as err:
            log.warning("detached exec failed: %s", err.message)
