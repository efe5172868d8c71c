"""Pull-through caches. `proxy.remoteurl` (distribution's key) mirrors one upstream for every
repository and refuses pushes, as distribution; `dockyard.mirrors` mirrors any number of upstreams,
each under a namespace of its own (`<registry>/registry.k8s.io/pause` → `registry.k8s.io`'s
`pause`), and leaves the other namespaces to ordinary pushes. Manifests fetched by tag are fresh
for `ttl`; digests never change; when the upstream is down, what is cached is served stale.
The upstream is spoken to with the engine's registry client (tokens, TLS), in worker threads."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..errors import EngineError, NotFound
from ..registry.client import Registry
from . import digests, manifests
from .config import duration
from .errors import RegistryError

if TYPE_CHECKING:
    from .server import RegistryApp

log = logging.getLogger("dockyard.registry.proxy")
ACCEPT = ", ".join((manifests.OCI_INDEX, manifests.OCI_MANIFEST, manifests.DOCKER_LIST, manifests.DOCKER_MANIFEST))


@dataclass
class Upstream:
    prefix: str            # the namespace it is mirrored under ('' for proxy.remoteurl)
    remoteurl: str
    creds: dict[str, str] | None
    ttl: float


def _upstream(prefix: str, spec: dict[str, Any]) -> Upstream:
    creds = {"username": spec["username"], "password": spec.get("password", "")} if spec.get("username") else None
    return Upstream(prefix, str(spec["remoteurl"]).rstrip("/"), creds, duration(spec.get("ttl", "168h")))


class Proxy:
    def __init__(self, app: RegistryApp) -> None:
        self.app = app
        self.store = app.store
        c = app.config
        self.all = _upstream("", c.get("proxy")) if c.get("proxy.remoteurl") else None
        self.mirrors = {k: _upstream(k, v or {}) for k, v in (c.get("dockyard.mirrors") or {}).items()}
        for k in self.mirrors:
            digests.check_name(k)

    def covers(self, repo: str) -> bool:
        return self.all is not None or repo.split("/", 1)[0] in self.mirrors

    def _split(self, repo: str) -> tuple[Upstream, str]:
        if self.all is not None:
            return self.all, repo
        host, _, rest = repo.partition("/")
        up = self.mirrors[host]
        if not rest:
            raise RegistryError("NAME_INVALID", f"{repo} names a mirror, not a repository in it")
        if "docker.io" in up.remoteurl and "/" not in rest:
            rest = f"library/{rest}"
        return up, rest

    def _client(self, up: Upstream, urepo: str) -> Registry:
        return Registry(up.remoteurl.split("://", 1)[-1], urepo, up.creds, base=up.remoteurl)

    def refuse_push(self, repo: str) -> None:
        if self.covers(repo):
            up, _ = self._split(repo)
            raise RegistryError("UNSUPPORTED", f"{repo} is a pull-through cache of {up.remoteurl}: pushes are refused")

    # ---- manifests
    def _fetch_manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        up, urepo = self._split(repo)
        with self._client(up, urepo).get(f"manifests/{ref}", {"Accept": ACCEPT}) as r:
            body = r.read(manifests.MAX_SIZE + 1)
            media = (r.headers.get("Content-Type") or "").split(";")[0]
        alg = digests.parse(ref)[0] if digests.is_digest(ref) else "sha256"
        digest = digests.of_bytes(body, alg)
        if digests.is_digest(ref) and digest != ref:
            raise RegistryError("DIGEST_INVALID", f"the upstream's manifest does not match {ref}")
        self.store.cache_manifest(repo, None if digests.is_digest(ref) else ref, body, digest, media)
        return body, media or self.store.media_type(repo, digest, body), digest

    async def manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        up, _ = self._split(repo)
        local: tuple[bytes, str, str] | None = None
        try:
            local = await self.app.run(self.store.get_manifest, repo, ref)
        except RegistryError:
            pass
        if local is not None:
            if digests.is_digest(ref):
                return local
            target = await self.app.run(self.store.tag_target, repo, ref)
            if target and time.time() - target[1] < up.ttl:
                return local
        try:
            return await self.app.run(self._fetch_manifest, repo, ref)
        except (EngineError, OSError) as e:
            if local is not None:
                log.warning("upstream %s failed (%s): serving %s:%s from the cache", up.remoteurl, e, repo, ref)
                return local
            if isinstance(e, NotFound):
                raise RegistryError("MANIFEST_UNKNOWN", "manifest unknown", {"name": repo, "reference": ref}) from None
            raise RegistryError("UNAVAILABLE", f"upstream {up.remoteurl}: {e}", status=503) from None

    # ---- blobs
    def _fetch_blob(self, repo: str, digest: str) -> None:
        up, urepo = self._split(repo)
        alg, _ = digests.parse(digest)
        h = digests.hasher(alg)
        uid = self.store.start_upload(repo)
        upload = self.store.upload(repo, uid)
        try:
            with self._client(up, urepo).get(f"blobs/{digest}") as r:
                while chunk := r.read(self.store.d.append_size):
                    h.update(chunk)
                    self.store.append(upload, [chunk])
            if f"{alg}:{h.hexdigest()}" != digest:
                raise RegistryError("DIGEST_INVALID", f"the upstream's blob does not match {digest}")
            self.store.commit_upload(upload, digest)
        finally:
            self.store.cancel_upload(upload)

    async def blob(self, request: web.Request, repo: str, digest: str) -> web.StreamResponse:
        digests.parse(digest)
        if not await self.app.run(self.store.has_blob, repo, digest):
            try:
                await self.app.run(self._fetch_blob, repo, digest)
            except NotFound:
                raise RegistryError("BLOB_UNKNOWN", "blob unknown to registry", {"digest": digest}) from None
            except (EngineError, OSError) as e:
                raise RegistryError("UNAVAILABLE", f"upstream: {e}", status=503) from None
        return await self.app.blobs.head_or_get(request, repo, digest)
