"""`GET /v1/search`: Docker Hub's search answer (what `docker search host:port/term` asks a
registry), over the repositories the requester may pull, matched by substring."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from aiohttp import web

from .errors import RegistryError

if TYPE_CHECKING:
    from .server import RegistryApp


def install(app: RegistryApp) -> None:
    async def search(request: web.Request) -> web.StreamResponse:
        request["route"] = "search"
        q = request.query.get("q", "").strip().lower()
        try:
            n = min(max(int(request.query.get("n", 25)), 1), 100)
            page = max(int(request.query.get("page", 1)), 1)
        except ValueError:
            raise RegistryError("PAGINATION_NUMBER_INVALID", "n and page must be numbers") from None
        request["identity"] = await app.auth.identify(request, [])
        names = await app.run(app.store.repositories)
        hits = [r for r in names if q in r.lower() and await app.may(request, r, "pull", quiet=True)]
        describe = getattr(app.auth, "description", None)
        results = [{"name": r, "description": (await describe(r)) if describe else "", "star_count": 0,
                    "is_official": False, "is_automated": False, "is_trusted": False}
                   for r in hits[(page - 1) * n: page * n]]
        return web.json_response({"query": q, "num_results": len(hits), "num_pages": max(math.ceil(len(hits) / n), 1),
                                  "page": page, "page_size": n, "results": results})
    async def ping(request: web.Request) -> web.StreamResponse:
        """Docker's v1 ping, which dockerd sends before it searches a registry."""
        request["route"] = "search"
        return web.json_response({"standalone": True}, headers={"X-Docker-Registry-Standalone": "true"})
    app.extra_routes += [("GET", "/v1/search", search), ("GET", "/v1/_ping", ping)]
