"""A small client of etcd's v3 API through its JSON gateway (`/v3/...`, etcd ≥ 3.4), over aiohttp:
get/put/delete of keys and prefixes, transactions that create a key only where it is absent,
leases (grant, keep alive, revoke) and watches that resume from a revision.

Several endpoints may be given: a request that cannot reach one tries the next (a member lost
from a cluster costs one connection attempt, then the next member answers). Every failure to
reach the store is `Unavailable`, naming the store."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..errors import InvalidArgument, Unavailable

log = logging.getLogger(__name__)


def _b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def _unb64(s: str | None) -> str:
    return base64.b64decode(s or "").decode()


def prefix_end(prefix: str) -> str:
    """The first key after every key that starts with `prefix` (etcd's range_end)."""
    b = bytearray(prefix.encode())
    b[-1] += 1
    return b.decode()


def parse_url(url: str) -> list[str]:
    """`etcd://h1:2379,h2:2379` → ['http://h1:2379', 'http://h2:2379']."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme != "etcd" or not rest.strip("/"):
        raise InvalidArgument(f"--cluster-store {url!r}: want etcd://HOST:PORT[,HOST:PORT...] (only etcd is supported)")
    out = []
    for hp in rest.strip("/").split(","):
        host, colon, port = hp.rpartition(":")
        if not colon or not port.isdigit() or not host:
            raise InvalidArgument(f"--cluster-store {url!r}: {hp!r} is not HOST:PORT")
        out.append(f"http://{hp}")
    return out


@dataclass(frozen=True)
class Event:
    """One change a watch reports: a put (value set) or a delete (value None)."""

    key: str
    value: str | None
    revision: int


class Compacted(Exception):
    """The watch's start revision is gone from the store's history: read everything again."""


class Etcd:
    """One store (one or more members)."""

    def __init__(self, url: str, timeout: float = 3.0) -> None:
        self.url = url
        self.endpoints = parse_url(url)
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._good = 0   # the endpoint that answered last: asked first

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16, force_close=False))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST one gateway request, trying each endpoint once from the last good one."""
        errors = []
        n = len(self.endpoints)
        for i in range(n):
            k = (self._good + i) % n
            try:
                async with self._http().post(self.endpoints[k] + path, json=body,
                                             timeout=aiohttp.ClientTimeout(total=self.timeout,
                                                                           sock_connect=min(1.0, self.timeout))) as r:
                    data = await r.json(content_type=None)
                    if r.status >= 500 and n > 1 and i < n - 1:   # a member without a leader: ask another
                        errors.append(f"{self.endpoints[k]}: {data.get('error') or r.status}")
                        continue
                    if r.status != 200:
                        raise Unavailable(f"cluster store {self.url}: {path}: {data.get('error') or data}")
                    self._good = k
                    return dict(data)
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as e:
                errors.append(f"{self.endpoints[k]}: {e.__class__.__name__} {e}".strip())
        raise Unavailable(f"cluster store {self.url} is unreachable ({'; '.join(errors)})")

    # --- keys ---------------------------------------------------------------------------------------------
    async def get_prefix(self, prefix: str) -> tuple[dict[str, str], int]:
        """Every key under `prefix` with its value, and the store's revision."""
        r = await self.call("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))})
        kvs = {_unb64(kv["key"]): _unb64(kv.get("value")) for kv in r.get("kvs") or []}
        return kvs, int(r["header"]["revision"])

    async def get(self, key: str) -> str | None:
        r = await self.call("/v3/kv/range", {"key": _b64(key)})
        kvs = r.get("kvs") or []
        return _unb64(kvs[0].get("value")) if kvs else None

    async def put(self, key: str, value: str, lease: int = 0) -> None:
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        await self.call("/v3/kv/put", body)

    async def delete(self, key: str) -> None:
        await self.call("/v3/kv/deleterange", {"key": _b64(key)})

    async def create(self, puts: dict[str, str], lease: int = 0) -> bool:
        """Put every key only if none of them exists (one transaction); False when one did."""
        compare = [{"key": _b64(k), "target": "CREATE", "result": "EQUAL", "create_revision": "0"} for k in puts]
        success = [{"request_put": {"key": _b64(k), "value": _b64(v), **({"lease": str(lease)} if lease else {})}}
                   for k, v in puts.items()]
        r = await self.call("/v3/kv/txn", {"compare": compare, "success": success})
        return bool(r.get("succeeded"))

    async def delete_if_empty(self, keys: list[str], empty_prefix: str) -> bool:
        """Delete `keys` only if nothing lies under `empty_prefix`, in one transaction (etcd
        compares one key at a time: the prefix is read at a revision, and the delete requires that
        no key under it was made or changed since — which a range compare on mod_revision says)."""
        kvs, rev = await self.get_prefix(empty_prefix)
        if kvs:
            return False
        compare = [{"key": _b64(empty_prefix), "range_end": _b64(prefix_end(empty_prefix)), "target": "MOD",
                    "result": "LESS", "mod_revision": str(rev + 1)}]
        success = [{"request_delete_range": {"key": _b64(k)}} for k in keys]
        r = await self.call("/v3/kv/txn", {"compare": compare, "success": success})
        return bool(r.get("succeeded"))

    # --- leases --------------------------------------------------------------------------------------------
    async def grant(self, ttl: int) -> int:
        r = await self.call("/v3/lease/grant", {"TTL": str(ttl)})
        return int(r["ID"])

    async def keepalive(self, lease: int) -> int:
        """Renew the lease once: its TTL, 0 when it has expired."""
        r = await self.call("/v3/lease/keepalive", {"ID": str(lease)})
        return int((r.get("result") or {}).get("TTL") or 0)

    async def revoke(self, lease: int) -> None:
        await self.call("/v3/lease/revoke", {"ID": str(lease)})

    async def members(self) -> list[dict[str, Any]]:
        r = await self.call("/v3/cluster/member/list", {})
        return list(r.get("members") or [])

    # --- watches -------------------------------------------------------------------------------------------
    async def watch(self, prefix: str, start: int) -> AsyncIterator[list[Event]]:
        """The changes under `prefix` from revision `start` on, a batch at a time, until the
        connection breaks (Unavailable) or the history is compacted (Compacted)."""
        body = {"create_request": {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix)),
                                   "start_revision": str(start), "progress_notify": True}}
        errors = []
        for i in range(len(self.endpoints)):
            k = (self._good + i) % len(self.endpoints)
            try:
                async with self._http().post(self.endpoints[k] + "/v3/watch", json=body,
                                             timeout=aiohttp.ClientTimeout(total=None, sock_connect=1.0,
                                                                           sock_read=None)) as r:
                    if r.status != 200:
                        errors.append(f"{self.endpoints[k]}: HTTP {r.status}")
                        continue
                    async for line in r.content:
                        if not line.strip():
                            continue
                        res = json.loads(line).get("result") or {}
                        if res.get("compact_revision") and int(res["compact_revision"]) > 0:
                            raise Compacted(int(res["compact_revision"]))
                        if res.get("canceled"):
                            raise Unavailable(f"cluster store {self.url}: watch canceled ({res.get('cancel_reason')})")
                        evs = [Event(_unb64(e["kv"]["key"]),
                                     None if e.get("type") == "DELETE" else _unb64(e["kv"].get("value")),
                                     int(e["kv"].get("mod_revision") or 0)) for e in res.get("events") or []]
                        if evs:
                            yield evs
                    raise Unavailable(f"cluster store {self.url}: the watch on {self.endpoints[k]} ended")
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as e:
                errors.append(f"{self.endpoints[k]}: {e.__class__.__name__} {e}".strip())
        raise Unavailable(f"cluster store {self.url}: watch lost ({'; '.join(errors)})")
