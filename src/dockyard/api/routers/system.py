"""System routes: /_ping, /version, /info."""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from ... import API_VERSION
from ..server import Routes


class SystemBackend(Protocol):
    """What the system routes need."""

    def version(self) -> dict[str, Any]:
        """`GET /version` body."""

    def info(self) -> dict[str, Any]:
        """`GET /info` body."""

    def disk_usage(self) -> dict[str, Any]:
        """`GET /system/df` body."""


class SystemRouter:
    """Route table for system endpoints."""

    def __init__(self, backend: SystemBackend) -> None:
        self.b = backend

    def routes(self, r: Routes) -> None:
        """Register."""
        r.add("GET", "/_ping", self.ping)
        r.add("HEAD", "/_ping", self.ping)
        r.add("GET", "/version", self.version)
        r.add("GET", "/info", self.info)
        r.add("GET", "/system/df", self.df)
        r.add("POST", "/auth", self.auth)

    async def ping(self, req: web.Request) -> web.Response:
        """`GET|HEAD /_ping`."""
        headers = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
                   "Builder-Version": "1", "Api-Version": API_VERSION,
                   "Dockyard-Context-Sync": "1"}
        if req.method == "HEAD":
            return web.Response(status=200, headers={**headers, "Content-Type": "text/plain; charset=utf-8",
                                                     "Content-Length": "0"})
        return web.Response(text="OK", headers=headers)

    async def version(self, req: web.Request) -> web.Response:
        """`GET /version`."""
        return web.json_response(self.b.version())

    async def info(self, req: web.Request) -> web.Response:
        """`GET /info`."""
        return web.json_response(self.b.info())

    async def df(self, req: web.Request) -> web.Response:
        """`GET /system/df` (sizes are file walks: a worker thread)."""
        import asyncio
        return web.json_response(await asyncio.to_thread(self.b.disk_usage))

    async def auth(self, req: web.Request) -> web.Response:
        """`POST /auth` (`docker login`): the credentials are checked against the registry (basic
        auth, or the token flow); nothing is stored by the daemon, as with dockerd."""
        import asyncio

        from ...errors import InvalidArgument
        from ...registry import auth
        from ...registry.client import Registry
        from .. import params
        body = await params.json_body(req)
        if not isinstance(body, dict):
            raise InvalidArgument("request body must be an AuthConfig JSON object")
        creds = auth.credentials(body)
        if creds is None:
            raise InvalidArgument("username and password (or an identity token) are required")
        domain = auth.domain_of(str(body.get("serveraddress") or ""))
        reg = Registry("registry-1.docker.io" if domain == "docker.io" else domain, "", creds)
        identity = await asyncio.to_thread(reg.login)
        return web.json_response({"Status": "Login Succeeded", "IdentityToken": identity})

