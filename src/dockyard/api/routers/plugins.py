"""Managed-plugin routes (`docker plugin …`): list, inspect, privileges, pull (install), create,
enable, disable, set, push, upgrade, remove. A plugin's name may hold `/` and `:`."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ...errors import InvalidArgument
from ...plugins.manager import PluginManager, canonical_name
from ...registry import auth
from .. import params
from ..server import Routes
from ..streams import BodyReader
from .images import SharedJob, stream_job


class PluginsRouter:
    """Route table for /plugins."""

    def __init__(self, plugins: PluginManager) -> None:
        self.p = plugins

    def routes(self, r: Routes) -> None:
        """Register (the fixed paths before the ones whose name may hold slashes)."""
        r.add("GET", "/plugins", self.list)
        r.add("GET", "/plugins/privileges", self.privileges)
        r.add("POST", "/plugins/pull", self.pull)
        r.add("POST", "/plugins/create", self.create)
        r.add("GET", "/plugins/{name:.+}/json", self.inspect)
        r.add("POST", "/plugins/{name:.+}/enable", self.enable)
        r.add("POST", "/plugins/{name:.+}/disable", self.disable)
        r.add("POST", "/plugins/{name:.+}/set", self.set)
        r.add("POST", "/plugins/{name:.+}/push", self.push)
        r.add("POST", "/plugins/{name:.+}/upgrade", self.upgrade)
        r.add("DELETE", "/plugins/{name:.+}", self.remove)

    async def list(self, req: web.Request) -> web.Response:
        """`GET /plugins?filters={"capability":[…],"enabled":[…]}`."""
        f = params.filters(req)
        for k in f:
            if k not in ("capability", "enable"):
                raise InvalidArgument(f"invalid filter '{k}'")
        out = []
        for rec in self.p.list():
            if f.get("enable") and str(rec["Enabled"]).lower() not in [x.lower() for x in f["enable"]]:
                continue
            caps = [t.split("/")[0].removeprefix("docker.") for t in rec["Config"]["Interface"]["Types"]]
            if f.get("capability") and not any(c in caps for c in f["capability"]):
                continue
            out.append(self.p.view(rec))
        return web.json_response(out)

    async def inspect(self, req: web.Request) -> web.Response:
        return web.json_response(self.p.view(self.p.get(req.match_info["name"])))

    async def privileges(self, req: web.Request) -> web.Response:
        remote, creds = self._reference(req)
        return web.json_response(await asyncio.to_thread(self.p.privileges, remote, creds))

    async def _progress_job(self, req: web.Request, start: Any, what: str,
                            headers: dict[str, str] | None = None) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        shared = SharedJob()
        out = shared.subscribe()

        def emit(m: dict[str, Any]) -> None:   # from a worker thread
            loop.call_soon_threadsafe(shared.publish, m)
        shared.job = asyncio.ensure_future(start(emit))
        return await stream_job(req, shared.job, out, lambda _: None, what, headers)

    @staticmethod
    def _reference(req: web.Request) -> tuple[str, dict[str, str] | None]:
        """(`remote`, the registry credentials)."""
        remote = req.query.get("remote") or ""
        if not remote:
            raise InvalidArgument("remote is required")
        return remote, auth.decode_header(req.headers.get("X-Registry-Auth", ""))

    async def _remote(self, req: web.Request) -> tuple[str, Any, dict[str, str] | None]:
        """(`remote`, the privileges granted in the body, the registry credentials)."""
        remote, creds = self._reference(req)
        return remote, await params.json_body(req, required=False), creds

    async def pull(self, req: web.Request) -> web.StreamResponse:
        """`POST /plugins/pull?remote=&name=` with the granted privileges as the body."""
        remote, granted, creds = await self._remote(req)
        name = req.query.get("name") or remote

        async def start(emit: Any) -> None:   # (a refused privilege is the request's 400: nothing streamed yet)
            await self.p.pull(remote, name, granted, creds, emit)
            emit({"status": f"Installed plugin {name}"})
        # the docker CLI names the plugin it then sets and enables from this header
        return await self._progress_job(req, start, f"installing plugin {remote}",
                                        {"Docker-Plugin-Name": canonical_name(name)})

    async def upgrade(self, req: web.Request) -> web.StreamResponse:
        remote, granted, creds = await self._remote(req)
        name = req.match_info["name"]
        self.p.get(name)

        async def start(emit: Any) -> None:
            await self.p.upgrade(name, remote, granted, creds, emit)
            emit({"status": f"Upgraded plugin {name} to {remote}"})
        return await self._progress_job(req, start, f"upgrading plugin {name}")

    async def push(self, req: web.Request) -> web.StreamResponse:
        name = req.match_info["name"]
        self.p.get(name)
        creds = auth.decode_header(req.headers.get("X-Registry-Auth", ""))

        async def start(emit: Any) -> None:
            await self.p.push(name, creds, emit)
        return await self._progress_job(req, start, f"pushing plugin {name}")

    async def create(self, req: web.Request) -> web.Response:
        """`POST /plugins/create?name=` with a tar of config.json and rootfs/."""
        name = req.query.get("name") or ""
        if not name:
            raise InvalidArgument("name is required")
        with BodyReader(req, asyncio.get_running_loop()) as reader:
            await self.p.create(name, reader)
        return web.Response(status=204)

    async def enable(self, req: web.Request) -> web.Response:
        try:
            timeout = float(req.query.get("timeout") or 0)
        except ValueError:
            raise InvalidArgument("timeout must be a number of seconds") from None
        await self.p.enable(req.match_info["name"], timeout)
        return web.Response(status=200)

    async def disable(self, req: web.Request) -> web.Response:
        await self.p.disable(req.match_info["name"], params.qbool(req, "force"))
        return web.Response(status=200)

    async def set(self, req: web.Request) -> web.Response:
        self.p.set(req.match_info["name"], await params.json_body(req))
        return web.Response(status=204)

    async def remove(self, req: web.Request) -> web.Response:
        rec = self.p.get(req.match_info["name"])
        await self.p.remove(rec["Id"], params.qbool(req, "force"))
        return web.json_response(self.p.view(rec))
