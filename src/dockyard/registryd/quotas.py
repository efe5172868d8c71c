"""Storage quotas per repository and per namespace (`dockyard.quotas`): what a repository holds is
the size of the blobs it links, each counted once (a namespace: the blobs of all its repositories,
each once). A push that would go past a quota is refused with the spec's DENIED, naming it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..units import bytes_size
from .config import size
from .errors import RegistryError

if TYPE_CHECKING:
    from .server import RegistryApp

CACHE_SECONDS = 30.0


class Quotas:
    def __init__(self, app: RegistryApp) -> None:
        self.app = app
        c = app.config
        self.repos = {k: size(v, f"dockyard.quotas.repositories.{k}")
                      for k, v in (c.get("dockyard.quotas.repositories") or {}).items()}
        self.namespaces = {k.rstrip("/"): size(v, f"dockyard.quotas.namespaces.{k}")
                           for k, v in (c.get("dockyard.quotas.namespaces") or {}).items()}
        self.cache: dict[str, tuple[float, dict[str, int]]] = {}

    def _blobs(self, repo: str) -> dict[str, int]:
        hit = self.cache.get(repo)
        if hit and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        out = {}
        for d in self.app.store.layers(repo):
            st = self.app.store.blob_exists(d)
            if st is not None:
                out[d] = st.size
        self.cache[repo] = (time.monotonic(), out)
        return out

    def usage(self, repos: list[str]) -> int:
        seen: dict[str, int] = {}
        for r in repos:
            seen.update(self._blobs(r))
        return sum(seen.values())

    def forget(self, repo: str) -> None:
        self.cache.pop(repo, None)

    def _check(self, repo: str, adding: int) -> None:
        if repo in self.repos:
            used = self.usage([repo])
            if used + adding > self.repos[repo]:
                raise RegistryError("DENIED", f"quota of repository {repo} exceeded: {bytes_size(used)} used of "
                                              f"{bytes_size(self.repos[repo])}, {bytes_size(adding)} more refused")
        ns = repo.split("/", 1)[0]
        if ns in self.namespaces and "/" in repo:
            members = [r for r in self.app.store.repositories() if r.startswith(ns + "/")]
            used = self.usage(members)
            if used + adding > self.namespaces[ns]:
                raise RegistryError("DENIED", f"quota of namespace {ns} exceeded: {bytes_size(used)} used of "
                                              f"{bytes_size(self.namespaces[ns])}, {bytes_size(adding)} more refused")

    async def check(self, repo: str, adding: int, final: bool = False) -> None:
        if adding > 0:
            await self.app.run(self._check, repo, adding)
