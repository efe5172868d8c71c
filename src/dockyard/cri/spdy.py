"""SPDY/3.1, the server side as Kubernetes' streaming uses it (kubectl before 1.31, crictl's fallback):
an HTTP/1.1 connection upgraded with `101 Switching Protocols` (`Upgrade: SPDY/3.1`), then frames.

* control frames: `1 | version 3 (15 bits) | type (16) | flags (8) | length (24) | payload`; data frames:
  `0 | stream id (31) | flags (8) | length (24) | data`; FLAG_FIN (1) ends a stream's direction;
* the client opens a stream per channel with SYN_STREAM (its headers say which: `streamtype`, and for
  port forwarding `port` and `requestid`); the server answers SYN_REPLY; PING is echoed; WINDOW_UPDATE
  is sent back for what was received (the 3.1 flow control: 64 KiB per stream and per session);
* header blocks: `count (32) | (name length (32) | name | value length (32) | value)*`, deflated with
  zlib — one compression context per direction for the whole session, primed with the protocol's
  dictionary (`DICTIONARY`, built below from the spec's word list and tail)."""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Callable
from typing import Any

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 1
WINDOW = 64 * 1024

_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language accept-ranges age "
    "allow authorization cache-control connection content-base content-encoding content-language content-length "
    "content-location content-md5 content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location max-forwards pragma "
    "proxy-authenticate proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
    "user-agent vary via warning www-authenticate method get status 200_OK version HTTP/1.1 url public set-cookie "
    "keep-alive origin").split()
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.replace("_", " ").encode() for w in _WORDS) + _TAIL.encode()


def encode_headers(headers: dict[str, str]) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for k, v in headers.items():
        kb, vb = k.lower().encode(), v.encode()
        out += [struct.pack(">I", len(kb)), kb, struct.pack(">I", len(vb)), vb]
    return b"".join(out)


def decode_headers(raw: bytes) -> dict[str, str]:
    (n,), pos = struct.unpack_from(">I", raw), 4
    out: dict[str, str] = {}
    for _ in range(n):
        (kl,) = struct.unpack_from(">I", raw, pos)
        k = raw[pos + 4:pos + 4 + kl].decode()
        pos += 4 + kl
        (vl,) = struct.unpack_from(">I", raw, pos)
        v = raw[pos + 4:pos + 4 + vl].decode()
        pos += 4 + vl
        out[k] = v.split("\x00")[0]   # several values are NUL-separated: the first is enough here
    return out


class Stream:
    """One SPDY stream: what the client sends on it, and writing to it."""

    def __init__(self, session: Session, sid: int, headers: dict[str, str]) -> None:
        self.session, self.id, self.headers = session, sid, headers
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()   # b"": the client finished it
        self.closed = False

    async def read(self) -> bytes:
        return await self.inbox.get()

    def write(self, data: bytes) -> None:
        for i in range(0, len(data), 0xFFFF):
            self.session.send_data(self.id, data[i:i + 0xFFFF])

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.session.send_data(self.id, b"", FLAG_FIN)


class Session(asyncio.Protocol):
    """The server end of a SPDY/3.1 session on a transport taken over after the 101."""

    def __init__(self, transport: Any, on_stream: Callable[[Stream], None]) -> None:
        self.transport = transport
        self.on_stream = on_stream
        self.buf = bytearray()
        self.streams: dict[int, Stream] = {}
        self.deflate = zlib.compressobj(zdict=DICTIONARY)
        self.inflate = zlib.decompressobj(zdict=DICTIONARY)
        self.gone = asyncio.Event()
        self.received = 0   # session-level bytes not acknowledged by a WINDOW_UPDATE yet

    # ---- asyncio.Protocol -------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 8:
            (length,) = struct.unpack(">I", b"\0" + bytes(self.buf[5:8]))
            if len(self.buf) < 8 + length:
                return
            head, payload = bytes(self.buf[:8]), bytes(self.buf[8:8 + length])
            del self.buf[:8 + length]
            try:
                self._frame(head, payload)
            except (zlib.error, struct.error, UnicodeDecodeError):
                self.close()
                return

    def eof_received(self) -> bool:
        self._all_ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._all_ended()
        self.gone.set()

    def _all_ended(self) -> None:
        for s in self.streams.values():
            s.inbox.put_nowait(b"")

    # ---- frames -------------------------------------------------------------------------------
    def _frame(self, head: bytes, payload: bytes) -> None:
        first, flags = struct.unpack(">I", head[:4])[0], head[4]
        if not first & 0x80000000:   # data
            sid = first & 0x7FFFFFFF
            s = self.streams.get(sid)
            if payload:
                self._ack(sid, len(payload))
                if s is not None:
                    s.inbox.put_nowait(payload)
            if flags & FLAG_FIN and s is not None:
                s.inbox.put_nowait(b"")
            return
        kind = first & 0xFFFF
        if kind == SYN_STREAM:
            sid = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            headers = decode_headers(self.inflate.decompress(payload[10:]))
            s = Stream(self, sid, headers)
            self.streams[sid] = s
            self._control(SYN_REPLY, 0, struct.pack(">I", sid) + self._block({}))
            if flags & FLAG_FIN:
                s.inbox.put_nowait(b"")
            self.on_stream(s)
        elif kind == HEADERS:
            self.inflate.decompress(payload[4:])   # keeps the shared context in step
        elif kind == PING:
            self._control(PING, 0, payload[:4])
        elif kind == RST_STREAM:
            sid = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            s = self.streams.get(sid)
            if s is not None:
                s.closed = True
                s.inbox.put_nowait(b"")
        elif kind == GOAWAY:
            self._all_ended()
        # SETTINGS and WINDOW_UPDATE: nothing to do (we never hold back what we send)

    def _ack(self, sid: int, n: int) -> None:
        """WINDOW_UPDATE for the stream at once, and for the session once half its window is used."""
        self._control(WINDOW_UPDATE, 0, struct.pack(">II", sid, n))
        self.received += n
        if self.received >= WINDOW // 2:
            self._control(WINDOW_UPDATE, 0, struct.pack(">II", 0, self.received))
            self.received = 0

    def _block(self, headers: dict[str, str]) -> bytes:
        return self.deflate.compress(encode_headers(headers)) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    def _control(self, kind: int, flags: int, payload: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload)

    def send_data(self, sid: int, data: bytes, flags: int = 0) -> None:
        if not self.transport.is_closing():
            self.transport.write(struct.pack(">II", sid & 0x7FFFFFFF, (flags << 24) | len(data)) + data)

    def close(self) -> None:
        self._control(GOAWAY, 0, struct.pack(">II", max(self.streams, default=0), 0))
        self.transport.close()
