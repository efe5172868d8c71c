"""Volume routes: create, list (filters dangling, driver, label, name), inspect, remove (409 in
use, `force`), prune (anonymous only unless `all`, as API 1.42+; every unused one for older
clients, as dockerd)."""

from __future__ import annotations

import asyncio
import builtins
from typing import Any

from aiohttp import web

from ...containers.service import ContainerService
from ...errors import InvalidArgument
from ...images.filters import label_match, labels_pass
from ...images.service import now_iso
from ...volumes.store import Volume, VolumeStore
from .. import params
from ..server import Routes

_FILTERS = {"dangling", "driver", "label", "name"}


class VolumesRouter:
    """Route table for `/volumes`."""

    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers

    @property
    def store(self) -> VolumeStore:
        assert self.containers.volumes is not None
        return self.containers.volumes.store

    def users(self, v: Volume) -> builtins.list[str]:
        assert self.containers.volumes is not None
        return self.containers.volumes.users(v.name)

    def routes(self, r: Routes) -> None:
        """Register."""
        r.add("GET", "/volumes", self.list)
        r.add("POST", "/volumes/create", self.create)
        r.add("POST", "/volumes/prune", self.prune)
        r.add("GET", "/volumes/{name}", self.inspect)
        r.add("DELETE", "/volumes/{name}", self.delete)

    async def create(self, req: web.Request) -> web.Response:
        """`POST /volumes/create` {Name, Driver, DriverOpts, Labels} → 201 with the volume."""
        body = await params.json_body(req)
        if not isinstance(body, dict):
            raise InvalidArgument("request body must be a JSON object")
        for k, v in body.items():
            if k not in ("Name", "Driver", "DriverOpts", "Labels", "ClusterVolumeSpec") and v not in (None, "", {}):
                raise InvalidArgument(f"unknown field {k}")
        if body.get("ClusterVolumeSpec"):
            raise InvalidArgument("ClusterVolumeSpec: cluster volumes are for swarm")
        opts, labels = body.get("DriverOpts") or {}, body.get("Labels") or {}
        if not isinstance(opts, dict) or not isinstance(labels, dict):
            raise InvalidArgument("DriverOpts and Labels must be objects")
        v = await asyncio.to_thread(self.store.create, str(body.get("Name") or ""), str(body.get("Driver") or "local"),
                                    {str(k): str(x) for k, x in opts.items()},
                                    {str(k): str(x) for k, x in labels.items()}, now_iso())
        return web.json_response(v.view(), status=201)

    def _matches(self, v: Volume, f: dict[str, builtins.list[str]]) -> bool:
        if f.get("name") and not any(w in v.name for w in f["name"]):
            return False
        if f.get("driver") and v.driver not in f["driver"]:
            return False
        if f.get("label") and not label_match(v.labels, f["label"]):
            return False
        if f.get("dangling"):
            want = f["dangling"][-1].lower()
            if want not in ("true", "false", "1", "0"):
                raise InvalidArgument(f"invalid filter 'dangling={f['dangling'][-1]}'")
            if (want in ("true", "1")) != (not self.users(v)):
                return False
        return True

    async def list(self, req: web.Request) -> web.Response:
        """`GET /volumes` → {Volumes, Warnings}."""
        f = params.filters(req, _FILTERS)
        vols, warnings = await asyncio.to_thread(self.store.with_plugins)
        return web.json_response({"Volumes": [v.view() for v in vols if self._matches(v, f)],
                                  "Warnings": warnings or None})

    async def inspect(self, req: web.Request) -> web.Response:
        """`GET /volumes/{name}`."""
        return web.json_response((await asyncio.to_thread(self.store.find, req.match_info["name"])).view())

    async def delete(self, req: web.Request) -> web.Response:
        """`DELETE /volumes/{name}?force=`: 409 while a container uses it (force does not change
        that, as with dockerd's local driver; it only makes a missing volume no error)."""
        name = req.match_info["name"]
        if params.qbool(req, "force") and name not in self.store.by_name:
            return web.Response(status=204)
        v = self.store.get(name)
        await asyncio.to_thread(self.store.remove, v, self.users(v), self.containers.paths.data_root / "trash")
        return web.Response(status=204)

    async def prune(self, req: web.Request) -> web.Response:
        """`POST /volumes/prune`: unused volumes; from API 1.42 anonymous ones only unless `all`."""
        f = params.filters(req, {"label", "label!", "all"})
        version = req.match_info.get("api_version") or ""
        every = (f.get("all") or ["false"])[-1].lower() in ("true", "1") or _older_than(version, (1, 42))
        gone, space = [], 0
        for v in self.store.list():
            if self.users(v) or (not every and not v.anonymous):
                continue
            if not labels_pass(v.labels, f):
                continue
            size = await asyncio.to_thread(self.store.size, v)
            await asyncio.to_thread(self.store.remove, v, [], self.containers.paths.data_root / "trash")
            gone.append(v.name)
            space += max(size, 0)
        return web.json_response({"VolumesDeleted": gone or None, "SpaceReclaimed": space})


def _older_than(version: Any, than: tuple[int, int]) -> bool:
    try:
        major, minor = (int(x) for x in str(version).lstrip("v").split(".")[:2])
    except ValueError:
        return False
    return (major, minor) < than
