"""Network routes, for the predefined networks only (issue 10's first part): `bridge` (the
default bridge, when the daemon has one), `host` and `none` — list, inspect, prune. Creating,
removing, connecting and disconnecting user-defined networks is refused with a clear error until
they are built; nothing is accepted and ignored."""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from ...containers.service import ContainerService
from ...errors import InvalidArgument, NotFound, NotImplemented_, PermissionDenied
from .. import params
from ..server import Routes

_FILTERS = {"name", "id", "driver", "type", "scope", "label", "dangling"}
_LATER = "user-defined networks are not supported yet (only the predefined bridge, host and none)"


class NetworksRouter:
    """Route table for `/networks`."""

    def __init__(self, containers: ContainerService, created: str) -> None:
        self.containers, self.created = containers, created

    def routes(self, r: Routes) -> None:
        """Register."""
        r.add("GET", "/networks", self.list)
        r.add("POST", "/networks/create", self.create)
        r.add("POST", "/networks/prune", self.prune)
        r.add("GET", "/networks/{name}", self.inspect)
        r.add("DELETE", "/networks/{name}", self.delete)
        r.add("POST", "/networks/{name}/connect", self.connect)
        r.add("POST", "/networks/{name}/disconnect", self.connect)

    def _networks(self) -> list[dict[str, Any]]:
        br = self.containers.bridge
        out = []
        names = (["bridge"] if br is not None else []) + ["host", "none"]
        for name in names:
            ident = hashlib.sha256(f"dockyard-network:{name}:{br.cfg.name if br else ''}".encode()).hexdigest()
            net: dict[str, Any] = {
                "Name": name, "Id": ident, "Created": self.created, "Scope": "local",
                "Driver": {"bridge": "bridge", "host": "host", "none": "null"}[name], "EnableIPv6": False,
                "IPAM": {"Driver": "default", "Options": None, "Config": []}, "Internal": False,
                "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
                "Containers": {}, "Options": {}, "Labels": {}}
            if name == "bridge" and br is not None:
                net["IPAM"]["Config"] = [{"Subnet": br.subnet, "Gateway": br.gateway}]
                net["Options"] = {"com.docker.network.bridge.default_bridge": "true",
                                  "com.docker.network.bridge.enable_icc": str(br.cfg.icc).lower(),
                                  "com.docker.network.bridge.enable_ip_masquerade": "true",
                                  "com.docker.network.bridge.name": br.cfg.name,
                                  "com.docker.network.driver.mtu": str(br.cfg.mtu or 1500)}
            for c in self.containers.list():
                mode = c.cfg.host_config.get("NetworkMode") or "default"
                if not c.state.running or {"default": "bridge"}.get(mode, mode) != name:
                    continue
                ep = c.state.endpoint or {}
                net["Containers"][c.id] = {
                    "Name": c.name, "EndpointID": c.id if ep else "", "MacAddress": ep.get("mac", ""),
                    "IPv4Address": f"{ep['ip']}/{ep['prefix']}" if ep else "", "IPv6Address": ""}
            out.append(net)
        return out

    def _find(self, ref: str) -> dict[str, Any]:
        nets = self._networks()
        for n in nets:
            if ref in (n["Name"], n["Id"]):
                return n
        found = [n for n in nets if n["Id"].startswith(ref)] if ref else []
        if len(found) == 1:
            return found[0]
        raise NotFound(f"network {ref} not found")

    async def list(self, req: web.Request) -> web.Response:
        """`GET /networks?filters=`: name, id (substring/prefix as dockerd), driver, type
        (builtin/custom), scope, label, dangling."""
        f = params.filters(req)
        bad = set(f) - _FILTERS
        if bad:
            raise InvalidArgument(f"invalid filter '{sorted(bad)[0]}'")
        out = []
        for n in self._networks():
            if f.get("name") and not any(v in n["Name"] for v in f["name"]):
                continue
            if f.get("id") and not any(n["Id"].startswith(v) for v in f["id"]):
                continue
            if f.get("driver") and n["Driver"] not in f["driver"]:
                continue
            if f.get("type") and "builtin" not in f["type"]:
                continue
            if f.get("scope") and "local" not in f["scope"]:
                continue
            if f.get("label") or (f.get("dangling") and f["dangling"][-1].lower() in ("true", "1")):
                continue   # predefined networks have no labels and are never dangling
            out.append({k: v for k, v in n.items() if k != "Containers"} | {"Containers": {}})
        return web.json_response(out)

    async def inspect(self, req: web.Request) -> web.Response:
        """`GET /networks/{id}`."""
        return web.json_response(self._find(req.match_info["name"]))

    async def prune(self, req: web.Request) -> web.Response:
        """`POST /networks/prune`: there are only predefined networks, which are never pruned."""
        f = params.filters(req)
        bad = set(f) - {"until", "label", "label!"}
        if bad:
            raise InvalidArgument(f"invalid filter '{sorted(bad)[0]}'")
        return web.json_response({"NetworksDeleted": None})

    async def delete(self, req: web.Request) -> web.Response:
        """`DELETE /networks/{id}`: predefined networks cannot be removed (dockerd's 403)."""
        n = self._find(req.match_info["name"])
        raise PermissionDenied(f"{n['Name']} is a pre-defined network and cannot be removed")

    async def create(self, req: web.Request) -> web.Response:
        """`POST /networks/create`: refused until user-defined networks are built."""
        raise NotImplemented_(_LATER)

    async def connect(self, req: web.Request) -> web.Response:
        """`POST /networks/{id}/connect|disconnect`: refused, as create."""
        self._find(req.match_info["name"])
        raise NotImplemented_(f"connecting and disconnecting containers: {_LATER}")
