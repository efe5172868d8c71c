"""Overlay networks: one layer-2 network across the hosts of a cluster store, carried by VXLAN.

A network is created once, on any host, by a transaction that takes its name and its VNI in the
store; every host learns of it from its watch and makes its devices (`vxlan.py`): a bridge
`ov-<id>` with no address and a vxlan device `vx-<id>` on it. A container on it gets a veth on
that bridge, an address taken cluster-wide (the endpoint's key in the store, under the host's
lease) and, unless the network is internal, a second interface on the local gateway bridge
`dy_gwbridge` (Docker's `docker_gwbridge`) for the way out and for its published ports. Every
other host programs the endpoint's forwarding and neighbour entries when its watch sees it, and
answers its name from the same copy of the store.

Blocking (netlink, the store from worker threads): run in worker threads."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import logging
import secrets
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, InvalidArgument, NotFound, PermissionDenied, Unavailable
from . import links, vxlan
from .bridge import _mac, veth_name
from .cluster import PREFIX, Cluster
from .ipam import Pool

if TYPE_CHECKING:
    from .bridge import Bridge
    from .networks import Network, Networks

log = logging.getLogger(__name__)
_OPT = "com.docker.network."
VNI_OPT = _OPT + "driver.overlay.vxlanid_list"
MTU_OPT = _OPT + "driver.mtu"
OPTIONS = {VNI_OPT, MTU_OPT}
GWBRIDGE = "dy_gwbridge"
FIRST_VNI = 4096
VXLAN_OVERHEAD = 50   # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8


@dataclass(frozen=True)
class OverlayConfig:
    """What the rest of the engine reads of a network's devices (as of a bridge's BridgeConfig)."""

    name: str          # the bridge
    vxlan: str
    internal: bool
    mtu: int


class Overlay:
    """One overlay network on this host."""

    def __init__(self, record: dict[str, Any], driver: OverlayDriver) -> None:
        self.id = str(record["Id"])
        self.driver = driver
        opts = record.get("Options") or {}
        self.vni = int(opts[VNI_OPT])
        conf = record["IPAM"]["Config"][0]
        self.subnet, self.gateway = str(conf["Subnet"]), str(conf["Gateway"])
        self.prefix = ipaddress.ip_network(self.subnet).prefixlen
        self.subnet6 = self.gateway6 = ""
        self.pool6 = None
        self.pool = Pool(self.subnet, self.gateway, conf.get("IPRange") or "",
                         tuple((conf.get("AuxiliaryAddresses") or {}).values()))
        asked = int(opts.get(MTU_OPT) or 0)
        mtu = asked or max(576, vxlan.underlay_mtu(driver.cluster.addr) - VXLAN_OVERHEAD)
        short = self.id[:12]
        self.cfg = OverlayConfig(f"ov-{short}", f"vx-{short}", bool(record.get("Internal")), mtu)
        self.ns = str(driver.ns_dir / f"ov-{short}")   # the network's own namespace on this host
        self.programmed: dict[str, tuple[str, str]] = {}   # ip → (mac, host) of endpoints on other hosts
        self.lock = threading.Lock()

    # --- devices ---------------------------------------------------------------------------------------
    def setup(self) -> None:
        vxlan.ensure(self.ns, self.cfg.name, self.cfg.vxlan, self.vni, self.driver.cluster.addr,
                     self.driver.cluster.settings.vxlan_port, self.cfg.mtu)
        self.sync()

    def teardown(self) -> None:
        vxlan.remove(self.ns)
        self.programmed = {}

    def intact(self, endpoints: dict[str, dict[str, Any]]) -> bool:
        return vxlan.intact(self.ns, self.cfg.name, self.cfg.vxlan)

    def repair(self, endpoints: dict[str, dict[str, Any]]) -> None:
        self.programmed = {}
        self.setup()

    def sync(self) -> None:
        """Forwarding and neighbour entries for every endpoint on other hosts, as the copy of the
        store has them now (idempotent: what is already programmed is left)."""
        me = self.driver.cluster.node
        want = {ip: (str(r["mac"]), str(r["vtep"])) for ip, r in self.driver.cluster.endpoints(self.id).items()
                if r.get("node") != me and r.get("ready", True)}
        with self.lock:
            ops = [(False, ip, mac, dst) for ip, (mac, dst) in self.programmed.items() if want.get(ip) != (mac, dst)]
            ops += [(True, ip, mac, dst) for ip, (mac, dst) in want.items() if self.programmed.get(ip) != (mac, dst)]
            if ops:
                vxlan.program(self.ns, self.cfg.vxlan, ops)
            self.programmed = want

    # --- endpoints -------------------------------------------------------------------------------------
    def attach(self, cid: str, sandbox: str, ifname: str, ports: list[tuple[str, int, str, int]],
               want_ip: str = "", want_mac: str = "", route: bool = True,
               link_local: tuple[str, ...] = (), want_ip6: str = "", who: dict[str, Any] | None = None,
               used: set[str] | None = None) -> dict[str, Any]:
        """An address taken cluster-wide, a veth on the network's bridge, and (unless internal)
        one on the gateway bridge that carries the default route and the published ports."""
        if want_ip6:
            raise InvalidArgument("overlay networks have no IPv6 here: --ip6 cannot be given")
        if ports and self.cfg.internal:
            raise InvalidArgument("published ports (-p, -P) cannot reach a container on an internal network")
        cluster = self.driver.cluster
        cluster.require()
        ip, rec = self._take(cid, want_ip, want_mac, who or {})
        ep: dict[str, Any] = {"ip": ip, "gateway": "", "prefix": self.prefix, "mac": want_mac or _mac(ip),
                              "veth": veth_name(cid, self.cfg.name), "ifname": ifname, "bridge": self.cfg.name,
                              "ports": [], "overlay": self.id, "name": (who or {}).get("name", ""),
                              "dns_aliases": list((who or {}).get("aliases") or [])}
        try:
            links.plug(sandbox, self.cfg.name, ep["veth"], ifname, ip, self.prefix, "", ep["mac"], self.cfg.mtu,
                       link_local, bridge_ns=self.ns)
            if route and not self.cfg.internal:
                taken = {*(used or set()), ifname}
                gw_if = next(f"eth{i}" for i in range(len(taken) + 1) if f"eth{i}" not in taken)
                gwbr = self.driver.gwbridge()
                assert gwbr is not None
                gw = gwbr.attach(cid, sandbox, gw_if, ports, route=True)
                ep.update(gw=gw, gateway=gw["gateway"], ports=gw["ports"])
            # plugged: now the other hosts may send to it (claimed "not ready", a remote client that
            # resolved it at once would have sent its first SYN into a bridge without its port)
            cluster.call(cluster.update, f"ep/{self.id}/{ip}", {**rec, "ready": True})
        except BaseException:
            self.detach(cid, ep)
            raise
        return ep

    def _take(self, cid: str, want: str, mac: str, who: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        cluster = self.driver.cluster
        net = self.pool.net
        ends = {self.pool.gateway, net.network_address, net.broadcast_address, *self.pool.used}
        if want:
            a = ipaddress.ip_address(want)
            if a not in net or a in ends:
                raise Conflict(f"Address {want} is not a usable address of {net}")
            candidates = [a]
        else:
            taken = {ipaddress.ip_address(ip) for ip in cluster.endpoints(self.id)}
            candidates = [a for a in self.pool.range if a not in ends and a not in taken]
        for a in candidates:
            ip = str(a)
            rec = self._endpoint_record(cid, ip, mac or _mac(ip), who.get("name", ""), who.get("aliases") or [],
                                        ready=False)
            if cluster.call(cluster.claim, f"ep/{self.id}/{ip}", rec):
                return ip, rec
            if want:
                raise Conflict(f"Address already in use: {want}")
        raise Conflict(f"no available IPv4 addresses on this network's address pools: {net}")

    def _endpoint_record(self, cid: str, ip: str, mac: str, name: str, aliases: list[str],
                         ready: bool) -> dict[str, Any]:
        """An endpoint of this host as the store keeps it (what the other hosts program and resolve)."""
        c = self.driver.cluster
        return {"ip": ip, "mac": mac, "node": c.node, "vtep": c.addr, "host": c.hostname, "cid": cid, "name": name,
                "aliases": list(aliases), "ready": ready}

    def detach(self, cid: str, ep: dict[str, Any], unplug: bool = True) -> None:
        if ep.get("gw"):
            gw = self.driver.gwbridge(make=False)
            if gw is not None:
                gw.detach(cid, ep["gw"], unplug=unplug)
        if unplug and ep.get("veth"):
            links.delete_link(ep["veth"], self.ns)
        if ep.get("ip"):
            cluster = self.driver.cluster
            cluster.call(cluster.release, f"ep/{self.id}/{ep['ip']}")

    def restore(self, endpoints: dict[str, dict[str, Any]]) -> None:
        """Start-up: our running containers' endpoints are ours again in the store (under the
        current lease); every other veth on the bridge goes."""
        cluster = self.driver.cluster
        for cid, ep in endpoints.items():
            rec = self._endpoint_record(cid, ep["ip"], ep["mac"], ep.get("name", ""), ep.get("dns_aliases") or [],
                                        ready=True)
            try:
                cluster.call(cluster.adopt, f"ep/{self.id}/{ep['ip']}", rec)
            except Conflict as e:
                log.error("overlay %s: container %s: %s", self.id[:12], cid[:12], e)
        keep = {ep.get("veth") for ep in endpoints.values()}
        for name in links.enslaved_to(self.cfg.name, self.ns):
            if name not in keep and name != self.cfg.vxlan:
                links.delete_link(name, self.ns)
        self.sync()


class OverlayDriver:
    """Overlay networks of the cluster, kept in the daemon's network table as the store has them."""

    def __init__(self, nets: Networks, cluster: Cluster) -> None:
        self.nets, self.cluster = nets, cluster
        self.ns_dir = nets.ns_dir.parent / "overlay"
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._gw_lock = threading.Lock()
        cluster.listeners.append(self._changed)

    # --- following the store ----------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _changed(self, key: str, old: Any, new: Any) -> None:
        """From the watch (on the loop): which network to bring up to date."""
        kind, _, rest = key.partition("/")
        if kind == "networks":
            self.queue.put_nowait(rest)
        elif kind == "ep":
            rec = new or old or {}
            if rec.get("node") != self.cluster.node:
                self.queue.put_nowait(rest.partition("/")[0])

    async def _follow(self) -> None:
        """One change at a time, in a worker thread; changes waiting together are done once."""
        while True:
            ids = {await self.queue.get()}
            while not self.queue.empty():
                ids.add(self.queue.get_nowait())
            for nid in ids:
                try:
                    await asyncio.to_thread(self.reconcile, nid)
                except Exception:
                    log.exception("overlay network %s", nid[:12])

    def reconcile(self, nid: str) -> None:
        """Make this host's view of one network what the store says (blocking)."""
        rec = self.cluster.cache.get(f"{PREFIX}networks/{nid}")
        with self.nets.lock:
            have = self.nets.by_id.get(nid)
            if rec is None:
                if have is not None and isinstance(have.bridge, Overlay):
                    log.info("overlay network %s (%s) was removed from the cluster", have.name, nid[:12])
                    have.bridge.teardown()
                    self.nets.drop(nid)
                return
            if have is None:
                self._add(rec)
                return
        if isinstance(have.bridge, Overlay):
            have.bridge.sync()

    def _add(self, rec: dict[str, Any]) -> Network:
        from .networks import Network
        ov = Overlay(rec, self)
        ov.setup()
        net = Network(rec, ov)   # type: ignore[arg-type]
        self.nets.put(net)
        return net

    async def catch_up(self, refs: list[str]) -> None:
        """Names a request uses that this host does not know yet but the store may (a network made
        on another host a moment ago, whose watch event is on its way): read through, once."""
        for ref in refs:
            if not ref or ref in ("default", "bridge", "host", "none") or ref.startswith("container:"):
                continue
            try:
                self.nets.get(ref)
                continue
            except (NotFound, InvalidArgument):
                pass
            if not self.cluster.up:
                continue
            try:
                nid = await self.cluster.etcd.get(f"{PREFIX}netnames/{ref}")
                text = await self.cluster.etcd.get(f"{PREFIX}networks/{json.loads(nid)}") if nid else None
            except Unavailable:
                continue
            if text is not None:
                key = f"{PREFIX}networks/{json.loads(nid or '')}"
                self.cluster.apply_value(key, text)
                await asyncio.to_thread(self.reconcile, json.loads(nid or ""))

    def adopt_all(self) -> None:
        """Start-up, once the store was read: every network of the cluster on this host."""
        ids = list(self.cluster.items("networks/"))
        for name in vxlan.remove_except(str(self.ns_dir), {f"ov-{nid[:12]}" for nid in ids}):   # while away
            log.info("overlay namespace %s: its network is gone from the cluster; removed", name)
        for nid in ids:
            self.reconcile(nid)

    # --- create and remove ---------------------------------------------------------------------------------
    def create(self, body: dict[str, Any], created: str, opts: dict[str, str], labels: dict[str, Any]) -> Network:
        """`POST /networks/create` with Driver overlay (blocking; the caller checked the common fields)."""
        from .networks import _record, ipv4_pool
        if body.get("EnableIPv6"):
            raise InvalidArgument("EnableIPv6: overlay networks have no IPv6 here")
        for k in opts:
            if k not in OPTIONS:
                raise InvalidArgument(f"network option {k!r} is not supported by the overlay driver "
                                      f"(supported: {', '.join(sorted(OPTIONS))})")
        mtu = opts.get(MTU_OPT)
        if mtu is not None and (not mtu.isdigit() or not 576 <= int(mtu) <= 9000):
            raise InvalidArgument(f"{MTU_OPT}={mtu}: an MTU between 576 and 9000")
        ipam = body.get("IPAM") or {}
        if (ipam.get("Driver") or "default") != "default":
            raise InvalidArgument(f"IPAM driver {ipam['Driver']!r}: only the default IPAM driver is supported")
        if ipam.get("Options"):
            raise InvalidArgument("IPAM.Options: not supported on overlay networks")
        configs = ipam.get("Config") or []
        if not isinstance(configs, list) or len(configs) > 1 or not all(isinstance(c, dict) for c in configs):
            raise InvalidArgument("IPAM.Config: one IPv4 pool per overlay network")
        conf = dict(configs[0]) if configs else {}
        self.cluster.require()
        others = [ipaddress.ip_network(n["IPAM"]["Config"][0]["Subnet"]) for n in self.cluster.items("networks/").values()]
        local = [ipaddress.ip_network(n.bridge.subnet) for n in self.nets.bridges() if n.bridge is not None]
        pool = ipv4_pool(conf, others + local, (ipaddress.ip_network(f"10.0.{n}.0/24") for n in range(256)), [],
                         "no free /24 left in 10.0.0.0/16 for an overlay network: give --subnet")
        name = str(body["Name"])
        ident = secrets.token_hex(32)
        asked_vni = opts.get(VNI_OPT)
        if asked_vni is not None and (not asked_vni.isdigit() or not 1 <= int(asked_vni) < 1 << 24):
            raise InvalidArgument(f"{VNI_OPT}={asked_vni}: one VNI between 1 and 16777215")
        used = {int(v) for v in self.cluster.items("vni/")}
        vnis = iter([int(asked_vni)]) if asked_vni else (v for v in range(FIRST_VNI, 1 << 24) if v not in used)
        for vni in vnis:
            rec = _record(name, ident, created, "overlay", IPAM={"Driver": "default", "Options": None, "Config": [pool]},
                          Internal=body.get("Internal"), Attachable=body.get("Attachable"),
                          Options={**opts, VNI_OPT: str(vni)}, Labels=labels)
            rec["Scope"] = "global"
            if self.cluster.call(self.cluster.create, {f"networks/{ident}": rec, f"netnames/{name}": ident,
                                                             f"vni/{vni}": ident}):
                break
            if name in self.cluster.items("netnames/") or self._name_taken(name):
                raise Conflict(f"network with name {name} already exists")
            if asked_vni:
                raise Conflict(f"VNI {vni} is in use by another network")
        else:
            raise Conflict("no free VNI")
        with self.nets.lock:
            existing = self.nets.by_id.get(ident)
            return existing if existing is not None else self._add(rec)

    def _name_taken(self, name: str) -> bool:
        return self.cluster.call(self.cluster.etcd.get, f"{PREFIX}netnames/{name}") is not None

    def remove(self, net: Network) -> None:
        """Refused while any host has an endpoint on it; then gone from the store (every host
        removes its devices when its watch says so; this one at once)."""
        ov = net.bridge
        assert isinstance(ov, Overlay)
        ok = self.cluster.call(self.cluster.delete_if_empty,
                               [f"networks/{net.id}", f"netnames/{net.name}", f"vni/{ov.vni}"], f"ep/{net.id}/")
        if not ok:
            hosts = sorted({str(r.get("host") or r.get("node")) for r in self.cluster.endpoints(net.id).values()})
            raise PermissionDenied(f"error while removing network: network {net.name} id {net.id} has active "
                                   f"endpoints (on {', '.join(hosts) or 'another host'})")
        with self.nets.lock:   # (the firewall watcher must not make it again meanwhile)
            ov.teardown()
            self.nets.drop(net.id)

    # --- the gateway bridge --------------------------------------------------------------------------------
    def gwbridge(self, make: bool = True) -> Bridge | None:
        """The local bridge overlay containers leave by (made at first use, as dockerd's docker_gwbridge)."""
        with self._gw_lock:
            n = next((n for n in self.nets.by_id.values() if n.name == GWBRIDGE), None)
            if n is None:
                if not make:
                    return None
                n = self.nets.create({"Name": GWBRIDGE, "Options": {_OPT + "bridge.name": GWBRIDGE,
                                                                    _OPT + "bridge.enable_icc": "false"}}, _now())
            assert n.bridge is not None
            return n.bridge

    # --- names --------------------------------------------------------------------------------------------
    def lookup(self, nid: str, name: str) -> list[str]:
        """Addresses of the endpoints of other hosts on the network that answer to `name` — only
        those whose entries this host has programmed: a name that resolves is reachable at once
        (answered before, the container's first ARP would go unanswered and its kernel would wait
        to ask again)."""
        net = self.nets.by_id.get(nid)
        ov = net.bridge if net is not None else None
        if not isinstance(ov, Overlay):
            return []
        ready = ov.programmed
        return [ip for ip, r in self.cluster.endpoints(nid).items() if ip in ready and
                name in {str(r.get("name", "")).lower(), str(r.get("cid", ""))[:12],
                         *(str(a).lower() for a in r.get("aliases") or [])}]

    def reverse(self, nid: str, ip: str) -> str | None:
        r = self.cluster.endpoints(nid).get(ip)
        return str(r["name"]) if r and r.get("node") != self.cluster.node and r.get("name") else None


def _now() -> str:
    t = datetime.datetime.now(datetime.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}000Z"
