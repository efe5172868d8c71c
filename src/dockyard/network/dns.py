"""The embedded DNS server of user-defined networks, at 127.0.0.11:53 inside every container on
one (UDP and TCP), as dockerd's. The sockets are made inside the container's network namespace
and served by the daemon's event loop — no process, thread or firewall rule per container.

Names of containers on the networks the asking container shares with them (their names, network
aliases and short IDs, and `name.network`) are answered here (A, PTR); everything else is
forwarded from the host's namespace to the upstream servers — the container's `--dns`, else the
host's resolvers (loopback ones included: they are reachable from the host's namespace)."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable
from typing import cast

from dnslib import PTR, QTYPE, RCODE, RR, A, DNSError, DNSRecord

from . import netns

log = logging.getLogger(__name__)
ADDRESS = "127.0.0.11"
TTL = 600
UPSTREAM_TIMEOUT = 2.0

Names = Callable[[str, str], "list[str] | None"]   # (container, name) → its addresses, None if not ours
Reverse = Callable[[str, str], "str | None"]        # (container, address) → a name
Upstream = Callable[[str], "list[str]"]              # container → servers to forward to


class Resolver:
    """Serves the containers' embedded DNS."""

    def __init__(self, names: Names, reverse: Reverse, upstream: Upstream) -> None:
        self.names, self.reverse, self.upstream = names, reverse, upstream
        self.served: dict[str, tuple[asyncio.DatagramTransport, asyncio.Server]] = {}

    async def serve(self, cid: str, sandbox: str) -> None:
        """Listen in the container's namespace (again after a daemon restart)."""
        self.stop(cid)
        udp = await asyncio.to_thread(netns.socket_in, sandbox, socket.AF_INET, socket.SOCK_DGRAM, (ADDRESS, 53))
        try:
            tcp = await asyncio.to_thread(netns.socket_in, sandbox, socket.AF_INET, socket.SOCK_STREAM, (ADDRESS, 53))
        except BaseException:
            udp.close()
            raise
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self, cid), sock=udp)
        server = await asyncio.start_server(lambda r, w: self._tcp(cid, r, w), sock=tcp)
        self.served[cid] = (transport, server)

    def stop(self, cid: str) -> None:
        got = self.served.pop(cid, None)
        if got is not None:
            got[0].close()
            got[1].close()

    def stop_all(self) -> None:
        for cid in list(self.served):
            self.stop(cid)

    async def answer(self, cid: str, data: bytes, tcp: bool = False) -> bytes | None:
        """The reply to one query (None: not a DNS query, dropped)."""
        try:
            q = DNSRecord.parse(data)
        except (DNSError, struct.error, IndexError, ValueError):
            return None
        if q.header.qr or not q.questions:
            return None
        qname = str(q.q.qname).rstrip(".").lower()
        qtype = q.q.qtype
        if qtype == QTYPE.PTR:
            name = self._reverse(cid, qname)
            if name is not None:
                reply = q.reply()
                reply.add_answer(RR(q.q.qname, QTYPE.PTR, rdata=PTR(name + "."), ttl=TTL))
                return bytes(reply.pack())
        else:
            addrs = self.names(cid, qname)
            if addrs is not None:   # ours: A records; AAAA and the rest answered empty, never forwarded
                reply = q.reply()
                for ip in addrs if qtype in (QTYPE.A, QTYPE.ANY) else []:
                    reply.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(ip), ttl=TTL))
                return bytes(reply.pack())
        return await self._forward(cid, q, data, tcp)

    def _reverse(self, cid: str, qname: str) -> str | None:
        if not qname.endswith(".in-addr.arpa"):
            return None
        parts = qname[: -len(".in-addr.arpa")].split(".")
        if len(parts) != 4:
            return None
        return self.reverse(cid, ".".join(reversed(parts)))

    async def _forward(self, cid: str, q: DNSRecord, data: bytes, tcp: bool) -> bytes:
        for server in self.upstream(cid):
            try:
                if tcp:
                    return await asyncio.wait_for(_ask_tcp(server, data), UPSTREAM_TIMEOUT)
                return await asyncio.wait_for(_ask_udp(server, data), UPSTREAM_TIMEOUT)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as e:
                log.debug("DNS forwarder %s: %s", server, e)
        reply = q.reply()
        reply.header.rcode = RCODE.SERVFAIL
        return bytes(reply.pack())

    async def _tcp(self, cid: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                n = struct.unpack("!H", await reader.readexactly(2))[0]
                out = await self.answer(cid, await reader.readexactly(n), tcp=True)
                if out is None:
                    break
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writer.close()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver, cid: str) -> None:
        self.resolver, self.cid = resolver, cid
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)   # uvloop's is no subclass of asyncio's

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        t = asyncio.create_task(self._reply(data, addr))
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        out = await self.resolver.answer(self.cid, data)
        if out is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(out, addr)


class _Once(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.got.done():
            self.got.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.got.done():
            self.got.set_exception(exc)


async def _ask_udp(server: str, data: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Once, remote_addr=(server, 53))
    try:
        transport.sendto(data)
        return await proto.got
    finally:
        transport.close()


async def _ask_tcp(server: str, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(server, 53)
    try:
        writer.write(struct.pack("!H", len(data)) + data)
        await writer.drain()
        n = struct.unpack("!H", await reader.readexactly(2))[0]
        return await reader.readexactly(n)
    finally:
        writer.close()

