"""Manifest, tag, catalog and referrers endpoints."""

from __future__ import annotations

import json
import urllib.parse
from typing import TYPE_CHECKING

from aiohttp import web

from . import digests, manifests
from .errors import RegistryError

if TYPE_CHECKING:
    from .server import RegistryApp


def _page(items: list[str], request: web.Request, path: str, key: str, limit_max: int) -> tuple[list[str], dict[str, str]]:
    """Apply `last` and `n` to a sorted list; a `Link` header when more follow."""
    q = request.query
    last = q.get("last")
    if last:
        items = [i for i in items if i > last]
    headers: dict[str, str] = {}
    if "n" in q:
        try:
            n = int(q["n"])
            if n < 0:
                raise ValueError
        except ValueError:
            raise RegistryError("PAGINATION_NUMBER_INVALID", "invalid number of results requested",
                                {"n": q["n"]}) from None
    else:
        n = limit_max
    n = min(n, limit_max)
    if len(items) > n and n > 0:
        nxt = urllib.parse.urlencode({"last": items[n - 1], "n": n})
        headers["Link"] = f'<{path}?{nxt}>; rel="next"'
    return items[:n], headers


class ContentHandlers:
    """Handlers bound to the app."""

    def __init__(self, app: RegistryApp) -> None:
        self.app = app
        self.store = app.store

    async def get_manifest(self, request: web.Request, repo: str, ref: str) -> web.StreamResponse:
        if not digests.is_digest(ref):
            digests.check_tag(ref)
        body, media, digest = await self.app.manifest(repo, ref)
        headers = {"Docker-Content-Digest": digest, "Content-Type": media, "ETag": f'"{digest}"',
                   "Content-Length": str(len(body))}
        if request.method == "HEAD":
            return web.Response(status=200, headers=headers)
        self.app.notify("pull", request, repo, digest=digest, size=len(body), media_type=media,
                        tag=None if digests.is_digest(ref) else ref)
        self.app.metrics.bytes_out(len(body))
        return web.Response(status=200, body=body, headers=headers)

    async def put_manifest(self, request: web.Request, repo: str, ref: str) -> web.StreamResponse:
        self.app.writable()
        if digests.is_digest(ref):
            digests.parse(ref)
        else:
            digests.check_tag(ref)
        parts, got = [], 0
        async for chunk in request.content.iter_any():     # the whole body (read(n) may stop short of it)
            parts.append(chunk)
            got += len(chunk)
            if got > manifests.MAX_SIZE:
                raise RegistryError("SIZE_INVALID", f"manifest is larger than {manifests.MAX_SIZE} bytes", status=413)
        body = b"".join(parts)
        await self.app.quota_check(repo, len(body))
        digest, m = await self.app.run(self.store.put_manifest, repo, ref, body, request.headers.get("Content-Type", ""))
        headers = {"Location": self.app.url(request, f"/v2/{repo}/manifests/{digest}"), "Docker-Content-Digest": digest,
                   "Content-Length": "0"}
        if m.subject:
            headers["OCI-Subject"] = m.subject
        self.app.notify("push", request, repo, digest=digest, size=len(body), media_type=m.media_type,
                        tag=None if digests.is_digest(ref) else ref)
        self.app.on_manifest_pushed(repo)
        return web.Response(status=201, headers=headers)

    async def delete_manifest(self, request: web.Request, repo: str, ref: str) -> web.StreamResponse:
        if digests.is_digest(ref):
            digests.parse(ref)
        else:
            digests.check_tag(ref)
        if not self.app.config.delete_enabled:
            raise RegistryError("UNSUPPORTED", "deletion is disabled (storage.delete.enabled)")
        self.app.writable()
        digest = await self.app.run(self.store.delete_manifest, repo, ref)
        self.app.notify("delete", request, repo, digest=digest, tag=None if digests.is_digest(ref) else ref)
        return web.Response(status=202, headers={"Content-Length": "0"})

    async def tags(self, request: web.Request, repo: str) -> web.StreamResponse:
        if not await self.app.run(self.store.exists, repo):
            raise RegistryError("NAME_UNKNOWN", "repository name not known to registry", {"name": repo})
        tags = sorted(await self.app.run(self.store.tags, repo))
        page, headers = _page(tags, request, f"/v2/{repo}/tags/list", "tags", 100_000)
        return web.json_response({"name": repo, "tags": page}, headers=headers)

    async def catalog(self, request: web.Request) -> web.StreamResponse:
        repos = await self.app.run(self.store.repositories)
        repos = [r for r in repos if await self.app.may(request, r, "pull", quiet=True)]
        limit = int(self.app.config.get("catalog.maxentries", 1000))
        page, headers = _page(repos, request, "/v2/_catalog", "repositories", limit)
        return web.json_response({"repositories": page}, headers=headers)

    async def referrers(self, request: web.Request, repo: str, digest: str) -> web.StreamResponse:
        digests.parse(digest)
        found = await self.app.run(self.store.referrers, repo, digest)
        headers = {}
        want = request.query.get("artifactType")
        if want:
            found = [d for d in found if d.get("artifactType") == want]
            headers["OCI-Filters-Applied"] = "artifactType"
        found.sort(key=lambda d: d["digest"])
        body = {"schemaVersion": 2, "mediaType": manifests.OCI_INDEX, "manifests": found}
        return web.Response(status=200, body=json.dumps(body).encode(), headers=headers, content_type=manifests.OCI_INDEX)
