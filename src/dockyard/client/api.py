"""Typed-ish calls for the Engine API endpoints the CLI uses."""

from __future__ import annotations

import os
import struct

TYPE_CHECKING = False  # typing itself costs ms of start-up; annotations are strings

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

from . import http, jsonlite

DEFAULT_HOST = "unix:///run/dockyard.sock"


class APIError(Exception):
    """A non-2xx answer: status plus the daemon's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def socket_path(host: str | None) -> str:
    """-H / DOCKER_HOST → socket path."""
    h = host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    if not h.startswith("unix://"):
        raise APIError(0, f"only unix:// hosts are supported: {h}")
    return h[len("unix://"):]


class Client:
    """One daemon."""

    def __init__(self, host: str | None = None) -> None:
        self.sock = socket_path(host)

    def call(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
             raw: bytes | Iterator[bytes] | None = None, upgrade: bool = False,
             headers: dict[str, str] | None = None) -> http.Response:
        """Send; raise APIError for an error status."""
        h = dict(headers or {})
        data: bytes | Iterator[bytes] | None = raw
        if body is not None:
            data = jsonlite.dumps(body).encode()
            h["Content-Type"] = "application/json"
        resp = http.request(self.sock, method, path, query, data, h, upgrade)
        if resp.status >= 400:
            text = resp.read()
            resp.close()
            try:
                msg = jsonlite.loads(text).get("message", "")
            except (ValueError, AttributeError):
                msg = text.decode(errors="replace").strip()
            raise APIError(resp.status, msg or resp.reason)
        return resp

    def json(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None) -> Any:
        """Call and decode a JSON answer (None for an empty body)."""
        resp = self.call(method, path, query, body)
        try:
            return resp.json() if resp.status not in (204, 304) else None
        finally:
            resp.close()


def demux(resp: http.Response) -> Iterator[tuple[int, bytes]]:
    """Frames of an 8-byte-header multiplexed stream: (stream, data), parsed out of whatever
    the connection has (a million small frames cost no two reads each)."""
    header = struct.Struct(">BxxxI").unpack_from
    buf, pos = b"", 0
    while True:
        if len(buf) - pos >= 8:
            stream, n = header(buf, pos)
            have = len(buf) - pos - 8
            if have >= n:
                yield stream, buf[pos + 8:pos + 8 + n]
                pos += 8 + n
                continue
            if n - have > 1 << 20:   # a big frame: read its rest at once, not by growing a buffer
                yield stream, buf[pos + 8:] + resp.readexactly(n - have)
                buf, pos = b"", 0
                continue
        more = resp.read1(1 << 20)
        if not more:
            return
        buf, pos = buf[pos:] + more, 0


def filters_param(items: list[str]) -> str | None:
    """`-f k=v` flags → the API's JSON filters."""
    if not items:
        return None
    out: dict[str, dict[str, bool]] = {}
    for it in items:
        k, _, v = it.partition("=")
        out.setdefault(k.strip().lower(), {})[v] = True
    return jsonlite.dumps(out)
