"""Network routes: the predefined networks (`bridge` when the daemon has a default bridge, `host`,
`none`) and user-defined bridge networks — create, list, inspect, remove, prune, connect and
disconnect (live on running containers)."""

from __future__ import annotations

import builtins
from typing import Any

from aiohttp import web

from ... import units
from ...containers import networking
from ...containers.service import ContainerService
from ...errors import InvalidArgument, NotFound, PermissionDenied
from ...images.filters import label_match, labels_pass
from ...images.service import now_iso
from ...network.networks import Network
from .. import params
from ..server import Routes

_FILTERS = {"name", "id", "driver", "type", "scope", "label", "dangling"}


class NetworksRouter:
    """Route table for `/networks`."""

    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers

    @property
    def nets(self) -> Any:
        return self.containers.net.nets

    def routes(self, r: Routes) -> None:
        """Register."""
        r.add("GET", "/networks", self.list)
        r.add("POST", "/networks/create", self.create)
        r.add("POST", "/networks/prune", self.prune)
        r.add("GET", "/networks/{name}", self.inspect)
        r.add("DELETE", "/networks/{name}", self.delete)
        r.add("POST", "/networks/{name}/connect", self.connect)
        r.add("POST", "/networks/{name}/disconnect", self.disconnect)

    async def _find(self, ref: str) -> Network:
        """The network a request names — read through the cluster store when this host has not
        heard yet of an overlay network made on another a moment ago."""
        if self.nets.overlay is not None:
            await self.nets.overlay.catch_up([ref])
        return self.nets.get(ref)

    def _view(self, n: Network, members: bool = True) -> dict[str, Any]:
        out = dict(n.record)
        out["Containers"] = networking.members(self.containers.by_id.values(), n) if members else {}
        return out

    async def list(self, req: web.Request) -> web.Response:
        """`GET /networks?filters=`: name (substring), id (prefix), driver, type (builtin/custom),
        scope, label (key or key=value), dangling (no container connected)."""
        f = params.filters(req, _FILTERS)
        if f.get("type") and set(f["type"]) - {"builtin", "custom"}:
            raise InvalidArgument(f"invalid filter: 'type'='{sorted(set(f['type']) - {'builtin', 'custom'})[0]}'")
        out = [self._view(n, members=False) for n in self.nets.list() if self._matches(n, f)]
        return web.json_response(out)

    def _matches(self, n: Network, f: dict[str, builtins.list[str]]) -> bool:
        if f.get("name") and not any(v in n.name for v in f["name"]):
            return False
        if f.get("id") and not any(n.id.startswith(v) for v in f["id"]):
            return False
        if f.get("driver") and n.record["Driver"] not in f["driver"]:
            return False
        if f.get("type") and ("builtin" if n.predefined else "custom") not in f["type"]:
            return False
        if f.get("scope") and "local" not in f["scope"]:
            return False
        if not label_match(n.record.get("Labels") or {}, f.get("label") or []):
            return False
        if f.get("dangling"):
            dangling = f["dangling"][-1].lower() in ("true", "1")
            if dangling != (not n.predefined and not self.containers.net.connected(n)):
                return False
        return True

    async def inspect(self, req: web.Request) -> web.Response:
        """`GET /networks/{id}` (`verbose` and `scope` are swarm's: only local networks here)."""
        scope = req.query.get("scope")
        if scope and scope not in ("local", "global", "swarm"):
            raise InvalidArgument(f"invalid scope {scope!r}: want local, global or swarm")
        n = await self._find(req.match_info["name"])
        if scope and n.record.get("Scope") != scope:   # dockerd: a network of another scope is not found
            raise NotFound(f"network {req.match_info['name']} not found")
        return web.json_response(self._view(n))

    async def create(self, req: web.Request) -> web.Response:
        """`POST /networks/create` → 201 {Id, Warning}."""
        body = await params.json_body(req)
        if not isinstance(body, dict):
            raise InvalidArgument("request body must be a JSON object")
        n = await self.containers.create_network(body, now_iso())
        return web.json_response({"Id": n.id, "Warning": ""}, status=201)

    async def delete(self, req: web.Request) -> web.Response:
        """`DELETE /networks/{id}`: 403 for predefined networks and for one with running containers."""
        await self.containers.remove_network(await self._find(req.match_info["name"]))
        return web.Response(status=204)

    async def prune(self, req: web.Request) -> web.Response:
        """`POST /networks/prune`: user-defined networks no container is connected to."""
        f = params.filters(req, {"until", "label", "label!"})
        try:
            until = min(units.parse_time(v) for v in f["until"]) if f.get("until") else None
        except ValueError as e:
            raise InvalidArgument(f"invalid filter 'until': {e}") from None
        gone = []
        for n in self.nets.list():
            if n.predefined or self.containers.net.connected(n):
                continue
            if until is not None and units.rfc3339_to_ts(n.record["Created"]) >= until:
                continue
            labels = n.record.get("Labels") or {}
            if not labels_pass(labels, f):
                continue
            try:
                await self.containers.remove_network(n)
                gone.append(n.name)
            except PermissionDenied:
                continue
        return web.json_response({"NetworksDeleted": gone or None})

    async def connect(self, req: web.Request) -> web.Response:
        """`POST /networks/{id}/connect` {Container, EndpointConfig}."""
        body = await params.json_body(req)
        if not isinstance(body, dict) or not body.get("Container"):
            raise InvalidArgument("a container to connect is required (Container)")
        net = await self._find(req.match_info["name"])
        await self.containers.connect(str(body["Container"]), net, body.get("EndpointConfig") or {})
        return web.Response(status=200)

    async def disconnect(self, req: web.Request) -> web.Response:
        """`POST /networks/{id}/disconnect` {Container, Force}."""
        body = await params.json_body(req)
        if not isinstance(body, dict) or not body.get("Container"):
            raise InvalidArgument("a container to disconnect is required (Container)")
        net = self.nets.get(req.match_info["name"])
        await self.containers.disconnect(str(body["Container"]), net, bool(body.get("Force")))
        return web.Response(status=200)
