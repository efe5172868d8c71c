"""`docker search`: Docker Hub's v1 search for plain terms, and — what dockerd cannot do (moby
#14081) — a v2 registry's `_catalog` for `host[:port]/term`, matched by substring. Blocking."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from ..errors import InvalidArgument, NotFound
from ..oci import reference
from .client import Registry

HUB = "index.docker.io"


def split_term(term: str) -> tuple[str, str]:
    """(registry, what to look for): `127.0.0.1:5000/bb` → ("127.0.0.1:5000", "bb"), `bb` → Hub."""
    if not term:
        raise InvalidArgument("search term is required")
    host = reference.registry_of(term)
    if host is None:
        return HUB, term
    if not reference.is_domain(host):
        raise InvalidArgument(f"invalid registry address {host!r} in search term")
    return host, term[len(host) + 1:]


def search(term: str, limit: int, creds: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Results in the API's shape (name, description, star_count, is_official, is_automated)."""
    if not 1 <= limit <= 100:
        raise InvalidArgument(f"Limit {limit} is outside the range of [1, 100]")
    host, what = split_term(term)
    if host == HUB:
        reg = Registry(HUB, "", creds)
        with reg.get_root(f"/v1/search?{urllib.parse.urlencode({'q': what, 'n': limit})}") as r:
            body = json.loads(r.read(4 << 20))
        return [{"name": x.get("name", ""), "description": x.get("description", ""),
                 "star_count": int(x.get("star_count", 0)), "is_official": bool(x.get("is_official")),
                 "is_automated": bool(x.get("is_automated"))} for x in body.get("results", [])][:limit]
    try:    # a registry with Docker Hub's search (dockyard-registry) answers with descriptions
        reg = Registry(host, "", creds, scope="catalog")
        with reg.get_root(f"/v1/search?{urllib.parse.urlencode({'q': what, 'n': limit})}") as r:
            body = json.loads(r.read(4 << 20))
        return [{"name": f"{host}/{x.get('name', '')}", "description": x.get("description", ""),
                 "star_count": int(x.get("star_count", 0)), "is_official": bool(x.get("is_official")),
                 "is_automated": bool(x.get("is_automated"))} for x in body.get("results", [])][:limit]
    except (NotFound, ValueError, AttributeError):
        pass
    reg = Registry(host, "", creds, scope="catalog")
    names: list[str] = []
    path = "/v2/_catalog?n=1000"
    while path and len(names) < 100_000:
        with reg.get_root(path) as r:
            names += json.loads(r.read(16 << 20)).get("repositories") or []
            link = r.headers.get("Link", "")
        path = link.split(";")[0].strip("<> ") if 'rel="next"' in link else ""
    hits = [n for n in names if what.lower() in n.lower()]
    return [{"name": f"{host}/{n}", "description": "", "star_count": 0, "is_official": False,
             "is_automated": False} for n in hits[:limit]]
