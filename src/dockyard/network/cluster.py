"""This host in a cluster of Dockyard daemons that share one etcd (`--cluster-store`).

What lives in the store, under `/dockyard/v1/`:
  nodes/<node>             {node, name, addr}              under the node's lease
  networks/<id>            an overlay network's record     (no lease: networks outlive hosts)
  netnames/<name>          <id>                            (a name is taken once, by a transaction)
  vni/<vni>                <id>                            (a VNI is taken once, by a transaction)
  ep/<network id>/<ip>     {ip, mac, node, vtep, name, cid, aliases}   under the owner's lease

An endpoint's key is its address: taking an address is creating the key (a transaction that
fails if it exists), and a host that dies loses its endpoints, and its addresses, when its lease
runs out. The daemon keeps a copy of everything under the prefix, made from one read and kept
current by a watch; what the data plane needs (FDB and neighbour entries, names for the DNS) is
read from that copy, so nothing on the data path waits for the store, and the store being down
changes nothing that already works.

The lease is kept in `<data-root>/cluster.json`: a daemon restarted before it runs out takes it
up again, so its endpoints never vanish from the other hosts."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import Conflict, InvalidArgument, Unavailable
from .etcd import Compacted, Etcd, Event, parse_url

log = logging.getLogger(__name__)
PREFIX = "/dockyard/v1/"
_T = TypeVar("_T")


@dataclass(frozen=True)
class Settings:
    """--cluster-store, --cluster-advertise and --cluster-store-opt, checked."""

    url: str
    advertise: str           # an IP or an interface name (resolved at start, in the daemon's namespace)
    lease_ttl: int = 15
    vxlan_port: int = 4789

    @classmethod
    def parse(cls, url: str, advertise: str, opts: dict[str, str]) -> Settings:
        parse_url(url)
        adv = advertise.strip()
        host, colon, port = adv.rpartition(":")
        if colon and port.isdigit() and ":" not in host:   # dockerd's IP:PORT / IFACE:PORT: nothing here uses a port
            raise InvalidArgument(f"--cluster-advertise {adv}: give the IP or interface alone (the port of dockerd's "
                                  f"form was its API's, which other hosts need not reach here)")
        if not adv:
            raise InvalidArgument("--cluster-advertise: want an IP address or an interface name")
        known = {"lease-ttl", "vxlan-port"}
        for k in opts:
            if k not in known:
                raise InvalidArgument(f"--cluster-store-opt {k}: not supported (supported: {', '.join(sorted(known))})")
        try:
            ttl = int(opts.get("lease-ttl", "15"))
            port_n = int(opts.get("vxlan-port", "4789"))
        except ValueError:
            raise InvalidArgument("--cluster-store-opt lease-ttl and vxlan-port take integers") from None
        if not 2 <= ttl <= 3600:
            raise InvalidArgument("--cluster-store-opt lease-ttl: between 2 and 3600 seconds")
        if not 0 < port_n < 65536:
            raise InvalidArgument("--cluster-store-opt vxlan-port: a UDP port (1-65535)")
        return cls(url, adv, ttl, port_n)


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s.strip("[]"))
        return True
    except ValueError:
        return False


def resolve_advertise(what: str) -> str:
    """The advertised IPv4 address: the address itself, or the first one of the named interface."""
    if _is_ip(what):
        if ipaddress.ip_address(what).version != 4:
            raise InvalidArgument(f"--cluster-advertise {what}: an IPv4 address (VXLAN runs over IPv4 here)")
        return what
    from . import vxlan
    addr = vxlan.address_of(what)
    if not addr:
        raise InvalidArgument(f"--cluster-advertise {what}: no such interface with an IPv4 address")
    return addr


Listener = Callable[[str, Any, Any], None]


class Cluster:
    """The store as this daemon sees it."""

    def __init__(self, settings: Settings, data_root: Path, hostname: str) -> None:
        self.settings = settings
        self.etcd = Etcd(settings.url)
        self.file = data_root / "cluster.json"
        saved = _load(self.file)
        self.node: str = saved.get("node") or secrets.token_hex(16)
        self.lease: int = int(saved.get("lease") or 0)
        self.hostname = hostname
        self.addr = ""
        self.cache: dict[str, Any] = {}
        self.revision = 0
        self.mine: dict[str, str] = {}     # keys kept under our lease: our node and our endpoints
        self.listeners: list[Listener] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.up = False
        self.synced = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # --- life -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Join: the lease (the saved one if it still lives), our node, a first read; then keep
        the lease and the copy current in the background. A store that cannot be reached now is
        joined as soon as it can (the daemon starts all the same)."""
        self.loop = asyncio.get_running_loop()
        self.addr = await asyncio.to_thread(resolve_advertise, self.settings.advertise)
        self.mine[self._node_key()] = json.dumps({"node": self.node, "name": self.hostname, "addr": self.addr})
        try:
            await asyncio.wait_for(self._join(), timeout=5)
        except (TimeoutError, Unavailable) as e:
            log.warning("cluster store %s: %s; joining when it answers", self.settings.url, e or "no answer")
        self._tasks = [asyncio.create_task(self._keep_lease()), asyncio.create_task(self._watch())]

    async def stop(self, leave: bool) -> None:
        """Stop watching; `leave`: revoke the lease (our endpoints go at once) — a daemon that
        stops without leaving keeps them until the lease runs out."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if leave and self.lease:
            with contextlib.suppress(Unavailable):
                await self.etcd.revoke(self.lease)
                self.lease = 0
                self._save()
        await self.etcd.close()

    async def _join(self) -> None:
        if not self.lease or await self.etcd.keepalive(self.lease) <= 0:
            self.lease = await self.etcd.grant(self.settings.lease_ttl)
            self._save()
            await self._put_mine()
        else:
            await self.etcd.put(self._node_key(), self.mine[self._node_key()], self.lease)
        await self._resync()
        self.up = True

    def _save(self) -> None:
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"node": self.node, "lease": self.lease}))
        os.replace(tmp, self.file)

    def _node_key(self) -> str:
        return f"{PREFIX}nodes/{self.node}"

    async def _put_mine(self) -> None:
        """Everything of ours again under the (new) lease: an endpoint whose address another host
        took meanwhile is reported, not taken back."""
        for key, value in list(self.mine.items()):
            if key == self._node_key() or await self.etcd.create({key: value}, self.lease):
                if key == self._node_key():
                    await self.etcd.put(key, value, self.lease)
                continue
            now = await self.etcd.get(key)
            if now is not None and json.loads(now).get("node") == self.node:
                await self.etcd.put(key, value, self.lease)
            else:
                log.error("cluster store: %s was taken by another host while this one was away", key)
                self.mine.pop(key, None)

    async def _keep_lease(self) -> None:
        period = max(0.5, self.settings.lease_ttl / 3)
        while True:
            await asyncio.sleep(period if self.up else 1.0)
            try:
                if not self.lease:
                    await self._join()
                elif await self.etcd.keepalive(self.lease) <= 0:
                    log.warning("cluster store: our lease ran out; joining again")
                    self.lease = await self.etcd.grant(self.settings.lease_ttl)
                    self._save()
                    await self._put_mine()
                if not self.up:
                    log.info("cluster store %s answers again", self.settings.url)
                self.up = True
            except Unavailable as e:
                if self.up:
                    log.warning("%s", e)
                self.up = False

    async def _watch(self) -> None:
        while True:
            try:
                if not self.synced.is_set():
                    await self._resync()
                async for events in self.etcd.watch(PREFIX, self.revision + 1):
                    for ev in events:
                        self._apply(ev)
            except Compacted:
                self.synced.clear()
            except Unavailable as e:
                log.debug("cluster watch: %s", e)
                self.synced.clear()
                await asyncio.sleep(0.5)

    async def _resync(self) -> None:
        """Read everything and tell the listeners what changed since the copy was made."""
        kvs, rev = await self.etcd.get_prefix(PREFIX)
        for key in [k for k in self.cache if k not in kvs]:
            self._apply(Event(key, None, rev))
        for key, value in kvs.items():
            self._apply(Event(key, value, rev), only_changed=True)
        self.revision = max(self.revision, rev)
        self.synced.set()

    def _apply(self, ev: Event, only_changed: bool = False) -> None:
        old = self.cache.get(ev.key)
        try:
            new = json.loads(ev.value) if ev.value is not None else None
        except ValueError:
            new = ev.value
        self.revision = max(self.revision, ev.revision)
        if only_changed and old == new:
            return
        if new is None:
            self.cache.pop(ev.key, None)
        else:
            self.cache[ev.key] = new
        for fn in self.listeners:
            try:
                fn(ev.key[len(PREFIX):], old, new)
            except Exception:   # one listener's bug must not stop the watch
                log.exception("cluster listener on %s", ev.key)

    def apply_value(self, key: str, value: str) -> None:
        """A key read outside the watch, into the copy (the watch brings the same value later)."""
        self._apply(Event(key, value, self.revision), only_changed=True)

    # --- from worker threads ---------------------------------------------------------------------------
    def call(self, fn: Callable[..., Awaitable[_T]], *args: Any, timeout: float = 10) -> _T:
        """Run a store operation on the daemon's loop from a worker thread and wait for it."""
        assert self.loop is not None

        async def run() -> _T:
            return await fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    # --- what others read ----------------------------------------------------------------------------
    def items(self, sub: str) -> dict[str, Any]:
        """The copy's keys under `sub` (without the prefix and `sub`)."""
        p = PREFIX + sub
        return {k[len(p):]: v for k, v in list(self.cache.items()) if k.startswith(p)}

    def nodes(self) -> list[dict[str, Any]]:
        return sorted(self.items("nodes/").values(), key=lambda n: str(n.get("name")))

    def endpoints(self, network_id: str) -> dict[str, dict[str, Any]]:
        """ip → endpoint record, every host's."""
        return self.items(f"ep/{network_id}/")

    def require(self) -> None:
        """Refuse a change while the store cannot be reached (what exists keeps working)."""
        if not self.up or not self.synced.is_set():
            raise Unavailable(f"cluster store {self.settings.url} is unreachable: overlay networks cannot be "
                              "created, removed or joined until it answers (running containers keep their traffic)")

    # --- changes --------------------------------------------------------------------------------------------
    async def claim(self, sub: str, value: dict[str, Any]) -> bool:
        """Create a key of ours under our lease; False when it exists."""
        self.require()
        key, text = PREFIX + sub, json.dumps(value)
        if not await self.etcd.create({key: text}, self.lease):
            return False
        self.mine[key] = text
        self._apply(Event(key, text, self.revision))   # our own copy at once, not when the watch says so
        return True

    async def update(self, sub: str, value: dict[str, Any]) -> None:
        """A new value for a key of ours (under our lease)."""
        key, text = PREFIX + sub, json.dumps(value)
        self.mine[key] = text
        self._apply(Event(key, text, self.revision))
        await self.etcd.put(key, text, self.lease)

    async def adopt(self, sub: str, value: dict[str, Any]) -> None:
        """A key of ours from before a restart: kept (under the current lease) unless another
        host holds it now."""
        key, text = PREFIX + sub, json.dumps(value)
        self.mine[key] = text
        if not self.up:
            return   # put when the store answers (_put_mine)
        now = await self.etcd.get(key)
        if now is None:
            if not await self.etcd.create({key: text}, self.lease):
                raise Conflict(f"{sub}: taken by another host")
        elif json.loads(now).get("node") != self.node:
            self.mine.pop(key, None)
            raise Conflict(f"{sub}: taken by another host while this one was away")
        else:
            await self.etcd.put(key, text, self.lease)

    async def release(self, sub: str) -> None:
        key = PREFIX + sub
        self.mine.pop(key, None)
        if key in self.cache:
            self._apply(Event(key, None, self.revision))
        with contextlib.suppress(Unavailable):   # it goes with the lease otherwise
            await self.etcd.delete(key)

    async def create(self, puts: dict[str, Any]) -> bool:
        """Keys (no lease) made together, or none if one exists."""
        self.require()
        return await self.etcd.create({PREFIX + k: json.dumps(v) for k, v in puts.items()})

    async def delete_if_empty(self, subs: list[str], empty: str) -> bool:
        self.require()
        return await self.etcd.delete_if_empty([PREFIX + k for k in subs], PREFIX + empty)


def _load(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def hostname() -> str:
    return socket.gethostname()
